"""Small trajectory stores for the fit/evaluate tests, built in memory with polars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from regmixd_cli.domain import Store
from regmixd_cli.store.files import build_manifest, write_store


def smooth_world(
    n_runs: int = 40,
    n_domains: int = 4,
    steps: Sequence[int] = tuple(range(50, 501, 50)),
    seed: int = 0,
    noise: float = 0.002,
    metrics: Sequence[str] = ("val/loss",),
) -> tuple[tuple[str, ...], np.ndarray, dict[str, np.ndarray]]:
    """Mixtures and trajectories from a known smooth rule.

    loss(t) = floor(m) + 4 (t/50)^-rate(m): each transition l_j -> l_{j+1} is the smooth map
    floor + (l_j - floor) (t_{j+1}/t_j)^-rate, so a regressor can learn it from (t, m, l_j).
    """
    rng = np.random.default_rng(seed)
    domains = tuple(f"d{k}" for k in range(n_domains))
    weights = rng.dirichlet(np.ones(n_domains), size=n_runs)
    scale = np.linspace(0.5, 2.0, n_domains)
    floor = 3.0 + ((weights - 1.0 / n_domains) ** 2) @ scale * 4.0
    rate = 0.3 + 0.4 * weights[:, 0]
    t = np.asarray(steps, dtype=np.float64)
    curves = {
        name: floor[:, None]
        + 4.0 * (t[None, :] / 50.0) ** -rate[:, None]
        + rng.normal(0.0, noise, size=(n_runs, len(t)))
        for name in metrics
    }
    return domains, weights, curves


def make_store(
    domains: tuple[str, ...],
    weights: np.ndarray,
    curves: dict[str, np.ndarray],
    steps: Sequence[int],
    *,
    diverged: Sequence[int] = (),
    last_step: dict[int, int] | None = None,
    prefix: str = "r",
) -> Store:
    """A Store of runs `prefix000`.. with the given curves; `last_step` truncates some runs."""
    names = [f"{prefix}{i:03d}" for i in range(len(weights))]
    runs = pl.DataFrame({"run": names}).with_columns(
        [pl.Series(d, weights[:, k], dtype=pl.Float64) for k, d in enumerate(domains)]
        + [
            pl.lit("test").alias("source"),
            pl.Series("diverged", [i in set(diverged) for i in range(len(names))]),
        ]
    )
    rows: dict[str, list] = {"run": [], "step": [], "metric": [], "value": []}
    for metric, values in curves.items():
        for i, name in enumerate(names):
            for j, step in enumerate(steps):
                if last_step and i in last_step and step > last_step[i]:
                    break
                rows["run"].append(name)
                rows["step"].append(int(step))
                rows["metric"].append(metric)
                rows["value"].append(float(values[i, j]))
    trajectories = (
        pl.DataFrame(rows)
        .with_columns(pl.col("step").cast(pl.Int64), pl.lit(None, dtype=pl.Int64).alias("tokens"))
        .select(["run", "step", "tokens", "metric", "value"])
    )
    return Store(domains, runs, trajectories, build_manifest(domains, runs, trajectories, []))


def smooth_store(path: Path | None = None, **kwargs) -> Store:
    """The smooth world as a Store (written to `path` when given)."""
    steps = kwargs.pop("steps", tuple(range(50, 501, 50)))
    extra = {k: kwargs.pop(k) for k in ("diverged", "last_step", "prefix") if k in kwargs}
    domains, weights, curves = smooth_world(steps=steps, **kwargs)
    store = make_store(domains, weights, curves, steps, **extra)
    return write_store(path, store) if path is not None else store
