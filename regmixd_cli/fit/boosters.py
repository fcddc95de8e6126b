"""Training one XGBoost booster of a kind (endpoint, per-stage, pooled, curve point).

Both cross-validation (`crossval`) and the final refit (`training`) train through
`fit_booster`, so the two can never build their design matrices differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from regmixd_cli.fit.model import (
    CURVE_SHIFT,
    ENDPOINT,
    PER_STAGE,
    POINT,
    POOLED,
    TREE_FORMS,
    XGBSettings,
    import_xgboost,
)
from regmixd_cli.fit.transitions import LossTable


def _train(
    settings: XGBSettings,
    seed: int,
    x: np.ndarray,
    y: np.ndarray,
    rounds: int,
    early: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Any, int]:
    """Train one booster; with `early`, stop on that split and return the best round count."""
    xgb = import_xgboost()
    params = settings.params(seed)
    train = xgb.DMatrix(x.astype(np.float32), label=y, nthread=settings.nthread)
    if early is None:
        return xgb.train(params, train, num_boost_round=rounds, verbose_eval=False), rounds
    stop = xgb.DMatrix(early[0].astype(np.float32), label=early[1], nthread=settings.nthread)
    booster = xgb.train(
        params,
        train,
        num_boost_round=rounds,
        evals=[(stop, "early_stopping")],
        early_stopping_rounds=settings.early_stopping_rounds,
        verbose_eval=False,
    )
    best = int(booster.best_iteration) + 1
    return booster[:best], best


def _design(
    table: LossTable, runs: np.ndarray, kind: str, stage: int = 0
) -> tuple[np.ndarray, ...]:
    """Features and label of `runs` for a booster kind (stage is 1-based for per-stage)."""
    m = table.mixtures[runs]
    if kind == ENDPOINT:
        return m, table.losses[runs, -1]
    if kind == POINT:
        return m, table.losses[runs, stage - 1]
    if kind == PER_STAGE:
        loss = table.losses[runs, stage - 1]
        return np.column_stack([m, loss]), table.losses[runs, stage]
    n_stages = table.losses.shape[1] - 1
    blocks = [
        np.column_stack([np.full(len(runs), table.grid[j]), m, table.losses[runs, j]])
        for j in range(n_stages)
    ]
    labels = [table.losses[runs, j + 1] for j in range(n_stages)]
    return np.vstack(blocks), np.concatenate(labels)


def booster_kinds(table: LossTable, forms: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """(name, kind, stage) of every booster to train for `forms`, endpoint first."""
    n_stages = table.losses.shape[1] - 1
    kinds = [(ENDPOINT, ENDPOINT, 0)]
    if n_stages and PER_STAGE in forms:
        kinds += [(f"stage_{j}", PER_STAGE, j) for j in range(1, n_stages + 1)]
    if n_stages and POOLED in forms:
        kinds.append((POOLED, POOLED, 0))
    if n_stages and CURVE_SHIFT in forms:
        kinds += [(f"{POINT}_{j}", POINT, j) for j in range(1, n_stages + 1)]
    return kinds


def fit_booster(
    table: LossTable,
    runs: np.ndarray,
    kind: str,
    stage: int,
    settings: XGBSettings,
    seed: int,
    rounds: int,
    early_runs: np.ndarray | None = None,
) -> tuple[Any, int]:
    """Train one booster of `kind` on `runs` (residual target for transitions)."""
    residual = kind in TREE_FORMS and settings.residual
    x, y = _design(table, runs, kind, stage)
    early = None
    if early_runs is not None:
        xe, ye = _design(table, early_runs, kind, stage)
        early = (xe, ye - xe[:, -1] if residual else ye)
    # The loss feature is the last column: a residual booster learns l_{j+1} - l_j.
    return _train(settings, seed, x, y - x[:, -1] if residual else y, rounds, early)
