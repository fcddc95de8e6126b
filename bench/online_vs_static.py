"""Online steering vs static RegMix (and the offline schedule) on synthetic worlds with known truth.

For each world seed: simulate RegMix-designed proxies, fit a model, then compare the TRUE final
loss (proxy scale, lower is better) of three target runs of 25,000 steps:
- static: the RegMix mixture (endpoint model) for the whole run;
- offline: the RegMix-D offline schedule (Algorithm 1);
- online: a run steered by `OnlineController` from its own observed losses (Algorithm 2): at
  each switch point the run's true target-scale loss under the schedule so far, plus the
  world's evaluation noise, is fed to the controller, which picks the next stage's mixture.

Run: python bench/online_vs_static.py [--seeds 10] [--runs 128] [--domains 17]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _harness import report


def one_world(seed: int, n_runs: int, n_domains: int, candidates: int, folds: int) -> dict:
    """Static, offline and online true final losses in the world of `seed`."""
    from regmixd_cli.design import MAX_EPOCHS, caps_from_tokens, design_mixtures
    from regmixd_cli.model import FitConfig, fit_model
    from regmixd_cli.online import OnlineController
    from regmixd_cli.prior import Prior
    from regmixd_cli.schedule import build_schedule, build_static
    from regmixd_cli.search import SearchConfig
    from regmixd_cli.simulate import (
        make_world,
        runs_to_store,
        simulate_runs,
        true_final_loss,
        true_loss_curve,
    )

    world = make_world(n_domains, seed)
    proxy_tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * proxy_tokens for a in world.available], MAX_EPOCHS, proxy_tokens)
    mixtures = design_mixtures(world.prior, n_runs, seed, caps)
    sim = simulate_runs(world, mixtures, seed, eval_every=50)
    started = time.perf_counter()
    model = fit_model(runs_to_store(sim), FitConfig(target=world.target_metric, folds=folds))
    fit_s = time.perf_counter() - started
    config = SearchConfig(candidates=candidates)
    prior = Prior(tuple(model.prior[d] for d in model.domains), model.prior_source)
    target = world.target_steps

    def fractions(schedule) -> list:
        return [(s.start_step / target, s.end_step / target, s.weights) for s in schedule.stages]

    static = build_static(model, config, prior, target, seed)
    offline = build_schedule(model, config, prior, target, seed)

    controller = OnlineController(
        model,
        target,
        param_ratio=world.param_ratio,
        beta=world.beta,
        candidates=candidates,
        seed=seed,
    )
    rng = np.random.default_rng([seed, 99])
    stages = [[0.0, 1.0, prior.weights]]
    started = time.perf_counter()
    for switch_step in controller.switch_steps:
        proxy_step = switch_step * world.proxy_steps / target
        observed = float(true_loss_curve(world, stages, [proxy_step], scale="target")[0])
        observed += rng.normal(0.0, world.dynamics.eval_noise) / world.target_scale
        mixture = controller.mixture_for(switch_step, observed)
        assert mixture is not None
        stages[-1][1] = switch_step / target
        stages.append([switch_step / target, 1.0, [mixture[d] for d in model.domains]])
    online_s = (time.perf_counter() - started) / len(controller.switch_steps)
    return {
        "seed": seed,
        "form": model.form,
        "static": true_final_loss(world, fractions(static)),
        "offline": true_final_loss(world, fractions(offline)),
        "online": true_final_loss(world, [tuple(s) for s in stages]),
        "prior": true_final_loss(world, [(0.0, 1.0, prior.weights)]),
        "fit_s": fit_s,
        "decision_s": online_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=128)
    parser.add_argument("--domains", type=int, default=17)
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        row = one_world(seed, args.runs, args.domains, args.candidates, args.folds)
        row["online_minus_static"] = row["online"] - row["static"]
        row["online_minus_offline"] = row["online"] - row["offline"]
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    wins = sum(r["online"] <= r["static"] for r in rows)
    beats_offline = sum(r["online"] <= r["offline"] for r in rows)
    rows.append(
        {
            "seed": "mean",
            "static": float(np.mean([r["static"] for r in rows])),
            "offline": float(np.mean([r["offline"] for r in rows])),
            "online": float(np.mean([r["online"] for r in rows])),
            "prior": float(np.mean([r["prior"] for r in rows])),
            "online_minus_static": float(np.mean([r["online_minus_static"] for r in rows])),
            "online_minus_offline": float(np.mean([r["online_minus_offline"] for r in rows])),
        }
    )
    report(
        "online_vs_static",
        rows,
        [
            "seed",
            "form",
            "prior",
            "static",
            "offline",
            "online",
            "online_minus_static",
            "online_minus_offline",
            "fit_s",
            "decision_s",
        ],
    )
    print(
        f"\nonline <= static on {wins} of {args.seeds} worlds; "
        f"online <= offline on {beats_offline} of {args.seeds}"
    )


if __name__ == "__main__":
    main()
