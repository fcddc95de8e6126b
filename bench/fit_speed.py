"""`fit` at the published scale: 512 proxies x 5 transitions, 17 domains, 5-fold CV (target 60 s).

Proxies come from a simulated world (`make_world(17, seed)`, RegMix's design of 512 mixtures,
logged every 50 of 1000 steps). `fit_model` with the CLI's defaults (`FitConfig()`: form auto,
5 folds, target = the store's first val/ metric) trains, per fold and again on all runs, the
endpoint booster and all three transition forms (5 per-stage + 1 pooled + 5 curve-point
boosters), then refits the chosen form. Reports the median wall and CPU seconds over --repeats
(the fit always uses one XGBoost thread, see model.FIT_THREADS) and the report's held-out scores.

With --jobs 1 2 (the default) every repeat fits once per job count, alternated so load drift
hits both, and the table adds the speed-up over --jobs 1 and whether the models are identical
(their boosters' bytes). CPU seconds count this process only (not the worker processes).

Run: python bench/fit_speed.py [--runs 512] [--switch-points 5] [--repeats 3] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _harness import median, report

from regmixd_cli.fit.model import FitConfig
from regmixd_cli.fit.parallel import executor
from regmixd_cli.fit.training import fit_model
from regmixd_cli.sim.design import MAX_EPOCHS, caps_from_tokens, design_mixtures
from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
from regmixd_cli.sim.world import make_world

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=512)
    parser.add_argument("--switch-points", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    world = make_world(17, args.seed)
    proxy_tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * proxy_tokens for a in world.available], MAX_EPOCHS, proxy_tokens)
    mixtures = design_mixtures(world.prior, args.runs, args.seed, caps)
    store = runs_to_store(simulate_runs(world, mixtures, args.seed, eval_every=50))
    config = FitConfig(n_switch_points=args.switch_points)
    load_before = os.getloadavg()
    pools = {jobs: executor(jobs) for jobs in args.jobs}
    wall: dict[int, list[float]] = {j: [] for j in args.jobs}
    cpu: dict[int, list[float]] = {j: [] for j in args.jobs}
    fitted = {}
    for _ in range(args.repeats):
        for jobs, pool in pools.items():
            w, c = time.perf_counter(), time.process_time()
            fitted[jobs] = fit_model(store, config, pool=pool)
            wall[jobs].append(time.perf_counter() - w)
            cpu[jobs].append(time.process_time() - c)
    for pool in pools.values():
        pool.close()

    def raw(model: object) -> dict[str, bytes]:
        boosters = getattr(model, "boosters")  # noqa: B009
        return {k: bytes(b.save_raw("ubj")) for k, b in boosters.items()}

    first = args.jobs[0]
    rows = []
    for jobs in args.jobs:
        rep = fitted[jobs].report
        form = rep["choice"]["form"]
        rows.append({
            "runs": args.runs,
            "transitions": args.switch_points,
            "folds": config.folds,
            "jobs": jobs,
            "wall_s": round(median(wall[jobs]), 2),
            "cpu_s": round(median(cpu[jobs]), 2),
            "speedup": round(median(wall[first]) / median(wall[jobs]), 2),
            "identical": raw(fitted[jobs]) == raw(fitted[first]),
            "target_s": TARGET_S,
            "meets": "yes" if median(wall[jobs]) < TARGET_S else "NO",
            "form": form,
            "mean_transition_rho": round(
                float(np.mean([r[form]["spearman"] for r in rep["transitions"]])), 4
            ),
            "rollout_rho": rep["endpoint"]["rollout"][form]["spearman"],
            "endpoint_rho": rep["endpoint"]["endpoint"]["spearman"],
            "repeats": args.repeats,
            "wall_samples": [round(t, 2) for t in wall[jobs]],
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        })  # fmt: skip
    report("fit_speed", rows, ["runs", "transitions", "folds", "jobs", "wall_s", "cpu_s",
                               "speedup", "identical", "target_s", "meets", "form",
                               "mean_transition_rho", "rollout_rho", "endpoint_rho",
                               "repeats"])  # fmt: skip


if __name__ == "__main__":
    main()
