"""Quality on synthetic worlds with a known truth: RegMix-D vs static RegMix vs the oracles.

For each world seed (`regmixd simulate`'s world: the best mixture moves during training):
512 proxies designed the RegMix way (`regmixd design`'s procedure, with the world's caps) are
simulated; the first 128 of them are the 128-proxy set. A model is fitted on each set with
`fit`'s defaults (FitConfig(): `--model auto`, 5-fold CV, default XGBoost settings), and the
schedules are built with `schedule`'s defaults (SearchConfig(): 100,000 candidates, top 128,
alpha 1) and the world's prior.json as `--prior`, exactly as the CLI would:

    regmixd simulate --runs 512 --domains K --seed S --out W
    regmixd fit W/store --out M --prior W/prior.json
    regmixd schedule M --prior W/prior.json [--static] --target-steps 25000 --seed S

Reported: the TRUE final loss (proxy scale, lower is better) of the prior; static RegMix from
512 (and 128) proxies; RegMix-D offline from 128 and 512 proxies; RegMix-D online from 128 and
512 proxies (a target run steered by `OnlineController` from its own observed loss at each
switch point: the world's target-scale loss under the schedule so far plus evaluation noise);
the oracle static mixture and oracle schedule (`regmixd simulate oracle`); and the share of the
static-to-oracle gap that RegMix-D offline (512) closes:
(static512 - offline512) / (static512 - oracle schedule).

Run: python bench/quality.py [--seeds 5] [--domains 17] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import RESULTS, report

COLUMNS = [
    "seed",
    "form",
    "prior",
    "static_128",
    "static_512",
    "offline_128",
    "offline_512",
    "online_128",
    "online_512",
    "oracle_static",
    "oracle_schedule",
    "gap_closed_512",
    "seconds",
]


def _stages(schedule: Any) -> list[tuple[float, float, tuple[float, ...]]]:
    steps = schedule.target_steps
    return [(s.start_step / steps, s.end_step / steps, s.weights) for s in schedule.stages]


def _online(world: Any, model: Any, prior: Any, config: Any, seed: int) -> float:
    """True final loss of a target run steered online from its own observed losses."""
    from regmixd_cli.online.controller import OnlineController
    from regmixd_cli.sim.world import true_final_loss, true_loss_curve

    steps = world.target_steps
    controller = OnlineController(
        model,
        steps,
        param_ratio=world.param_ratio,
        beta=world.beta,
        prior=dict(zip(model.domains, prior.weights, strict=True)),
        prior_source=prior.source,
        candidates=config.candidates,
        top_k=config.top_k,
        alpha=config.alpha,
        seed=seed,
    )
    rng = np.random.default_rng([seed, 99])
    stages: list[list[Any]] = [[0.0, 1.0, tuple(prior.weights)]]
    for switch_step in controller.switch_steps:
        proxy_step = switch_step * world.proxy_steps / steps
        observed = float(true_loss_curve(world, stages, [proxy_step], scale="target")[0])
        observed += rng.normal(0.0, world.dynamics.eval_noise) / world.target_scale
        mixture = controller.mixture_for(switch_step, observed)
        if mixture is None:  # cannot happen: every switch step is evaluated
            raise RuntimeError(f"no decision at switch step {switch_step}")
        stages[-1][1] = switch_step / steps
        stages.append([switch_step / steps, 1.0, tuple(mixture[d] for d in model.domains)])
    return true_final_loss(world, [(a, b, w) for a, b, w in stages])


def one_world(seed: int, n_domains: int, candidates: int | None, workdir: Path) -> dict[str, Any]:
    """Every method's true final loss in the world of `seed`."""
    from regmixd_cli.fit.model import FitConfig
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.plan.schedule import build_schedule, build_static, resolve_schedule_prior
    from regmixd_cli.plan.search import SearchConfig
    from regmixd_cli.sim.design import MAX_EPOCHS, caps_from_tokens, design_mixtures
    from regmixd_cli.sim.oracle import find_oracle
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
    from regmixd_cli.sim.world import make_world, true_final_loss

    started = time.perf_counter()
    world = make_world(n_domains, seed)
    prior_file = workdir / f"prior-{seed}.json"  # what `simulate` writes as W/prior.json
    prior_file.write_text(json.dumps(dict(zip(world.domains, world.prior, strict=True))))
    proxy_tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * proxy_tokens for a in world.available], MAX_EPOCHS, proxy_tokens)
    mixtures = design_mixtures(world.prior, 512, seed, caps)
    config = SearchConfig() if candidates is None else SearchConfig(candidates=candidates)
    row: dict[str, Any] = {"seed": seed}
    for n_runs in (128, 512):
        # Run i's noise depends on (seed, i) only: 128 runs are the first 128 of the 512.
        sim_n = simulate_runs(world, mixtures[:n_runs], seed, eval_every=50)
        model = fit_model(
            runs_to_store(sim_n), FitConfig(target=world.target_metric, prior=str(prior_file))
        )
        prior = resolve_schedule_prior(str(prior_file), model)
        static = build_static(model, config, prior, world.target_steps, seed)
        offline = build_schedule(model, config, prior, world.target_steps, seed)
        row[f"static_{n_runs}"] = true_final_loss(world, _stages(static))
        row[f"offline_{n_runs}"] = true_final_loss(world, _stages(offline))
        row[f"online_{n_runs}"] = _online(world, model, prior, config, seed)
        row["form"] = model.form
    oracle = find_oracle(world, 5, seed)
    row["prior"] = oracle.prior_loss
    row["oracle_static"] = oracle.static_loss
    row["oracle_schedule"] = oracle.schedule_loss
    gap = row["static_512"] - oracle.schedule_loss
    row["gap_closed_512"] = (row["static_512"] - row["offline_512"]) / gap if gap > 0 else None
    row["seconds"] = time.perf_counter() - started
    return row


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The mean row and the win counts the issues ask for."""
    n = len(rows)
    mean: dict[str, Any] = {"seed": "mean"}
    for column in COLUMNS[2:]:
        values = [r[column] for r in rows if r.get(column) is not None]
        mean[column] = float(np.mean(values)) if values else None

    def wins(a: str, b: str) -> str:
        return f"{sum(r[a] < r[b] for r in rows)}/{n}"

    counts = {
        "seed": "wins",
        "static_128": "",
        "offline_128": f"{wins('offline_128', 'static_512')} vs static_512",
        "offline_512": f"{wins('offline_512', 'static_512')} vs static_512",
        "online_128": f"{wins('online_128', 'static_512')} vs static_512",
        "online_512": f"{sum(r['online_512'] <= r['static_512'] for r in rows)}/{n} <= static_512",
    }
    return [mean, counts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--domains", type=int, default=17)
    parser.add_argument(
        "--candidates", type=int, default=None, help="default: SearchConfig's (100,000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="20,000 candidates (a smoke run; numbers are noisier)"
    )
    args = parser.parse_args()
    candidates = 20_000 if args.quick and args.candidates is None else args.candidates
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            row = one_world(seed, args.domains, candidates, Path(tmp))
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    table = rows + summary(rows)
    # The harness prints 3 significant digits; these losses differ in the third decimal.
    shown = [{k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in table]
    report("quality", shown, COLUMNS)
    path = RESULTS / "quality.json"  # the same file, with numbers instead of display strings
    payload = json.loads(path.read_text())
    payload["rows"] = table
    payload["settings"] = {
        "seeds": args.seeds,
        "domains": args.domains,
        "candidates": candidates or 100_000,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(
        f"\n{args.seeds} worlds, {args.domains} domains, "
        f"{candidates or 100_000} candidates; true final loss at proxy scale (lower is better)"
    )


if __name__ == "__main__":
    main()
