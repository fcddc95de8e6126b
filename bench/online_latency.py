"""Latency of one online decision (`decide_online`, 100,000 candidates) vs its bare predictions.

A RegMix-sized model: 17 domains, 128 proxies, 5 switch points, the default XGBoost settings.
Reports the median wall time of one decision, of the bare `predict_transition` call on the same
100,000 candidates (the floor), and of the whole one-shot `regmixd online` command.

Run: python bench/online_latency.py [--repeats 5] [--candidates 100000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from _harness import median, report, time_call, time_command


def world_store(n_runs: int = 128, n_domains: int = 17, seed: int = 0):
    """A smooth synthetic proxy world: loss curves whose floor and speed depend on the mixture."""
    import polars as pl

    from regmixd_cli.domain import Store
    from regmixd_cli.store.files import build_manifest

    rng = np.random.default_rng(seed)
    domains = tuple(f"d{k:02d}" for k in range(n_domains))
    weights = rng.dirichlet(np.ones(n_domains), size=n_runs)
    floor = 3.0 + ((weights - 1.0 / n_domains) ** 2) @ np.linspace(0.5, 2.0, n_domains) * 4.0
    rate = 0.3 + 0.4 * weights[:, 0]
    steps = np.arange(100, 1001, 100, dtype=np.float64)
    curves = floor[:, None] + 4.0 * (steps[None, :] / 100.0) ** -rate[:, None]
    curves += rng.normal(0.0, 0.002, size=curves.shape)
    names = [f"p{i:03d}" for i in range(n_runs)]
    runs = pl.DataFrame({"run": names}).with_columns(
        [pl.Series(d, weights[:, k]) for k, d in enumerate(domains)]
        + [pl.lit("bench").alias("source"), pl.lit(False).alias("diverged")]
    )
    trajectories = pl.DataFrame(
        {
            "run": np.repeat(names, steps.size),
            "step": np.tile(steps.astype(np.int64), n_runs),
            "tokens": pl.Series([None] * (n_runs * steps.size), dtype=pl.Int64),
            "metric": ["val/loss"] * (n_runs * steps.size),
            "value": curves.reshape(-1),
        }
    )
    return Store(domains, runs, trajectories, build_manifest(domains, runs, trajectories, []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=100_000)
    args = parser.parse_args()

    from regmixd_cli.fit.files import load_model, save_model
    from regmixd_cli.fit.model import FitConfig
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.online.controller import decide_online, target_switch_steps
    from regmixd_cli.plan.search import SearchConfig

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        save_model(model_dir, fit_model(world_store(), FitConfig(target="val/loss", folds=3)))
        model = load_model(model_dir)
        config = SearchConfig(candidates=args.candidates)
        loss = float(model.loss_ranges[2][0] + model.loss_ranges[2][1]) / 2.0
        target = 25_000
        step = target_switch_steps(model.grid, model.n_switch_points, target)[2]  # switch 3
        rng = np.random.default_rng(0)
        mixtures = rng.dirichlet(np.ones(len(model.domains)), size=args.candidates)
        mixtures = mixtures.astype(np.float32)

        def decide() -> None:
            decide_online(model, step, loss / 1000**0.05, target, search_config=config, seed=0)

        decide()  # warm-up: first XGBoost call pays for thread pools
        bare = median(time_call(lambda: model.predict_transition(3, mixtures, loss), args.repeats))
        one = median(time_call(decide, args.repeats))
        rows = [
            {"what": f"bare predict_transition ({args.candidates} rows)", "median_s": bare},
            {
                "what": f"decide_online ({args.candidates} candidates)",
                "median_s": one,
                "ratio_to_bare": one / bare,
            },
        ]
        exe = shutil.which("regmixd")
        if exe is not None:
            argv = [
                exe,
                "online",
                str(model_dir),
                "--step",
                str(step),
                "--loss",
                "3.5",
                "--target-steps",
                str(target),
                "--candidates",
                str(args.candidates),
            ]
            rows.append(
                {
                    "what": "regmixd online (one-shot command, wall)",
                    "median_s": median(time_command(argv, args.repeats)),
                }
            )
        print(f"model form: {model.form}; domains: {len(model.domains)}", file=sys.stderr)
        report("online_latency", rows, ["what", "median_s", "ratio_to_bare"])


if __name__ == "__main__":
    main()
