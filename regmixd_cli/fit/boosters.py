"""Training one XGBoost booster of a kind (endpoint, per-stage, pooled, curve, curve point).

Both cross-validation (`crossval`) and the final refit (`training`) build their work with
`booster_task`, so the two can never build their design matrices differently. A task carries
its design matrix, not the store, and `train_task` turns it into the booster's bytes: a
module-level function of picklable data, so `fit.parallel` can run tasks in any process or on
any Dask worker. Training is single-threaded (`FIT_THREADS`), so the bytes do not depend on
where a task ran; the serial path goes through the same bytes, so it is the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from regmixd_cli.fit.model import (
    CURVE,
    CURVE_SHIFT,
    ENDPOINT,
    HISTORY,
    PER_STAGE,
    PER_STAGE_HISTORY,
    POINT,
    POOLED,
    RESIDUAL_FORMS,
    XGBSettings,
    import_xgboost,
)
from regmixd_cli.fit.parallel import Executor, Serial
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
    if y.ndim == 2:  # a whole curve: one tree per round with vector leaves
        params["multi_strategy"] = "multi_output_tree"
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
    """Features and label of `runs` for a booster kind (stage is 1-based for per-stage).

    Phased stores: transitions see the mixture in force over their interval; the endpoint and
    curve-point boosters see the run's average mixture up to their point (for a static run
    both are its mixture).
    """
    if kind == ENDPOINT:
        return history_at(table, runs, len(table.grid)), table.losses[runs, -1]
    if kind == POINT:
        return history_at(table, runs, stage), table.losses[runs, stage - 1]
    if kind == CURVE:  # static runs: the offsets of l_1..l_N from l_{N+1}, then l_{N+1}
        curve = table.losses[runs].copy()
        curve[:, :-1] -= curve[:, -1:]
        return table.mixtures[runs], curve
    if kind == PER_STAGE:
        loss = table.losses[runs, stage - 1]
        return np.column_stack([in_force_at(table, runs, stage), loss]), table.losses[runs, stage]
    if kind == PER_STAGE_HISTORY:
        loss = table.losses[runs, stage - 1]
        features = [in_force_at(table, runs, stage), history_at(table, runs, stage), loss]
        return np.column_stack(features), table.losses[runs, stage]
    n_stages = table.losses.shape[1] - 1
    blocks = [
        np.column_stack([np.full(len(runs), table.grid[j]), in_force_at(table, runs, j + 1),
                         table.losses[runs, j]])
        for j in range(n_stages)
    ]
    labels = [table.losses[runs, j + 1] for j in range(n_stages)]
    return np.vstack(blocks), np.concatenate(labels)


def in_force_at(table: LossTable, runs: np.ndarray, stage: int) -> np.ndarray:
    """The mixture `runs` train on over [t_stage, t_stage+1) (their mixture if static)."""
    source = table.mixtures if table.in_force is None else table.in_force[:, stage]
    result: np.ndarray = source[runs]
    return result


def history_at(table: LossTable, runs: np.ndarray, point: int) -> np.ndarray:
    """`runs`' average mixture over [0, t_point), point 1..N+1 (their mixture if static)."""
    source = table.mixtures if table.history is None else table.history[:, point - 1]
    result: np.ndarray = source[runs]
    return result


def booster_kinds(table: LossTable, forms: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """(name, kind, stage) of every booster to train for `forms`, endpoint first."""
    n_stages = table.losses.shape[1] - 1
    kinds = [(ENDPOINT, ENDPOINT, 0)]
    if n_stages and PER_STAGE in forms:
        kinds += [(f"stage_{j}", PER_STAGE, j) for j in range(1, n_stages + 1)]
    if n_stages and POOLED in forms:
        kinds.append((POOLED, POOLED, 0))
    if n_stages and CURVE_SHIFT in forms and table.in_force is None:
        kinds.append((CURVE, CURVE, 0))  # a static run's mixture is its history at every point
    elif n_stages and CURVE_SHIFT in forms:
        kinds += [(f"{POINT}_{j}", POINT, j) for j in range(1, n_stages + 1)]
    if n_stages and PER_STAGE_HISTORY in forms:
        kinds += [(f"{HISTORY}_{j}", PER_STAGE_HISTORY, j) for j in range(1, n_stages + 1)]
    return kinds


@dataclass(frozen=True)
class BoosterTask:
    """Everything one booster's training needs, and nothing more (it crosses processes)."""

    settings: XGBSettings
    seed: int
    x: np.ndarray
    y: np.ndarray
    rounds: int
    early: tuple[np.ndarray, np.ndarray] | None = None


def booster_task(
    table: LossTable,
    runs: np.ndarray,
    kind: str,
    stage: int,
    settings: XGBSettings,
    seed: int,
    rounds: int,
    early_runs: np.ndarray | None = None,
) -> BoosterTask:
    """The task training one booster of `kind` on `runs` (residual target for transitions)."""
    residual = kind in RESIDUAL_FORMS and settings.residual
    x, y = _design(table, runs, kind, stage)
    early = None
    if early_runs is not None:
        xe, ye = _design(table, early_runs, kind, stage)
        early = (xe, ye - xe[:, -1] if residual else ye)
    # The loss feature is the last column: a residual booster learns l_{j+1} - l_j.
    return BoosterTask(settings.for_kind(kind), seed, x, y - x[:, -1] if residual else y, rounds,
                       early)


def train_task(task: BoosterTask) -> tuple[bytes, int]:
    """Train a task's booster: its UBJSON bytes and its round count (best, with early stop)."""
    booster, best = _train(task.settings, task.seed, task.x, task.y, task.rounds, task.early)
    return bytes(booster.save_raw("ubj")), best


def load_booster(raw: bytes) -> Any:
    """A booster from `train_task` bytes."""
    booster = import_xgboost().Booster()
    booster.load_model(bytearray(raw))
    return booster


def train_all(tasks: Sequence[BoosterTask], pool: Executor | None = None) -> list[tuple[Any, int]]:
    """Train every task on `pool` (default: here, serially); (booster, rounds) in task order."""
    results = (pool or Serial()).map(train_task, list(tasks))
    return [(load_booster(raw), best) for raw, best in results]


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
    """Train one booster of `kind` on `runs`, here (same bytes as through `train_all`)."""
    task = booster_task(table, runs, kind, stage, settings, seed, rounds, early_runs)
    return train_all([task])[0]
