"""A tiny synthetic proxy world and a real fitted model for the online tests (shared helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DOMAINS = ("code", "prose", "web")
TARGET = "val/loss"
PROXY_STEPS = 600


def true_loss(mixture: np.ndarray, step: float) -> float:
    """Loss of a proxy trained on `mixture` for `step` steps: prose-heavy mixtures win."""
    floor = 3.0 + 1.5 * (mixture[0] - 0.2) ** 2 + 2.0 * (mixture[1] - 0.6) ** 2
    return float(floor + 3.0 * np.exp(-step / 200.0))


def build_store(n_runs: int = 24, seed: int = 0, *, endpoint_only: bool = False):
    """An in-memory trajectory store: n_runs Dirichlet mixtures, validation every 50 steps
    (or only at the last step: an endpoint-only store, like RegMix's CSV pair)."""
    import polars as pl

    from regmixd_cli.domain import Store

    rng = np.random.default_rng(seed)
    mixtures = rng.dirichlet(np.ones(len(DOMAINS)), size=n_runs)
    names = [f"p{i:03d}" for i in range(n_runs)]
    runs = pl.DataFrame(
        {
            "run": names,
            **{d: mixtures[:, k] for k, d in enumerate(DOMAINS)},
            "source": ["synthetic"] * n_runs,
            "diverged": [False] * n_runs,
        }
    )
    rows = [
        (name, step, None, TARGET, true_loss(m, step))
        for name, m in zip(names, mixtures, strict=True)
        for step in ([PROXY_STEPS] if endpoint_only else range(50, PROXY_STEPS + 1, 50))
    ]
    trajectories = pl.DataFrame(
        rows,
        schema={
            "run": pl.Utf8,
            "step": pl.Int64,
            "tokens": pl.Int64,
            "metric": pl.Utf8,
            "value": pl.Float64,
        },
        orient="row",
    )
    from regmixd_cli.store.files import build_manifest

    manifest = build_manifest(DOMAINS, runs, trajectories, [])
    return Store(DOMAINS, runs, trajectories, manifest)


def fit_tiny_model(path: Path, n_switch_points: int = 3) -> Path:
    """Fit a small real model (few trees, one thread) and save it to `path`."""
    from regmixd_cli.fit.files import save_model
    from regmixd_cli.fit.model import FitConfig, XGBSettings
    from regmixd_cli.fit.training import fit_model

    settings = XGBSettings(learning_rate=0.3, max_rounds=20, early_stopping_rounds=5, nthread=1)
    config = FitConfig(target=TARGET, n_switch_points=n_switch_points, folds=2, xgb=settings)
    save_model(path, fit_model(build_store(), config))
    return path
