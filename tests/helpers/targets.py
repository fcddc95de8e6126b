"""A world of three validation metrics for the several-target tests (tests/cli)."""

from __future__ import annotations

import json

import numpy as np

FAST = ("--max-rounds", "40", "--learning-rate", "0.15", "--switch-points", "2", "--folds", "3")
DOMAINS = ("a", "b", "c")
METRICS = ("val/a", "val/b", "val/c")
STEPS = (100, 200, 300, 400, 500, 600)


def true_loss(metric: int, mixture: np.ndarray, step: int) -> float:
    """val/<d> falls fastest on runs that train on domain d (and a little on the others)."""
    useful = 0.15 + mixture[metric] + 0.1 * mixture.sum()
    return 3.0 + (2.0 + metric * 0.3) * (step / 100.0) ** (-0.35 * useful)


def write_logs(path, n_runs: int = 36, seed: int = 0, drop: str | None = None,
               metrics: tuple[str, ...] = METRICS) -> None:
    """A JSONL log of `n_runs` static runs over DOMAINS logging every metric of `metrics`
    (metric k falls like val/<DOMAINS[k % 3]>; `drop`: one metric left out of every run, as a
    log that lacks a target)."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n_runs):
        m = rng.dirichlet(np.ones(len(DOMAINS)))
        run = f"r{i:03d}"
        lines.append({"run": run, "mixture": dict(zip(DOMAINS, m.round(6).tolist(), strict=True))})
        for step in STEPS:
            row: dict[str, object] = {"run": run, "step": step}
            for k, metric in enumerate(metrics):
                if metric != drop:
                    row[metric] = round(true_loss(k % len(DOMAINS), m, step) + rng.normal(0, 0.002),
                                        6)
            lines.append(row)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
