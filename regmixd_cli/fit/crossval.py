"""Grouped cross-validation of the endpoint and transition boosters, and the fit report.

Runs are dealt into folds by a seeded permutation, so a run's rows never span folds. Inside a
fold, early stopping watches runs carved out of the training folds only; the held-out fold is
predicted once, teacher-forced (true l_j -> l_{j+1}) and as a rollout from l_1 to l_{N+1}.
Scores are computed on the out-of-fold predictions of all runs together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from regmixd_cli.errors import UsageError
from regmixd_cli.fit.boosters import booster_kinds, booster_task, train_all
from regmixd_cli.fit.metrics import mae, score, spearman
from regmixd_cli.fit.model import (
    AUTO,
    CURVE_SHIFT,
    ENDPOINT,
    TREE_FORMS,
    FitConfig,
    FittedModel,
    Progress,
)
from regmixd_cli.fit.parallel import Executor
from regmixd_cli.fit.transitions import LossTable

MIN_RUNS_PER_FOLD = 2
# `auto` keeps curve-shift unless its held-out next-interval ranking is worse than this
# (mean Spearman over stages): then its curve regressors are not to be trusted.
CURVE_SHIFT_MIN_SPEARMAN = 0.95


def assign_folds(n_runs: int, folds: int, seed: int) -> np.ndarray:
    """Fold number of each run: a seeded permutation dealt round-robin."""
    order = np.random.default_rng(seed).permutation(n_runs)
    fold_of = np.empty(n_runs, dtype=np.int64)
    fold_of[order] = np.arange(n_runs) % folds
    return fold_of


def predictor(
    table: LossTable, form: str | None, boosters: Mapping[str, Any], residual: bool
) -> FittedModel:
    """A minimal FittedModel used to predict during cross-validation."""
    return FittedModel(
        domains=table.domains,
        target=table.target,
        grid=table.grid,
        proxy_steps=table.proxy_steps,
        prior={},
        prior_source="",
        form=form,
        loss_ranges=(),
        initial_loss=math.nan,
        report={},
        boosters=boosters,
        residual=residual,
    )


def cross_validate(
    table: LossTable,
    config: FitConfig,
    forms: tuple[str, ...],
    progress: Progress | None,
    pool: Executor | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """Out-of-fold predictions (teacher-forced and rollout) and best round counts per booster.

    The folds x booster kinds trainings are independent: all of them go to `pool` at once.
    """
    settings = config.xgb
    n_runs, n_points = table.losses.shape
    fold_of = assign_folds(n_runs, config.folds, config.seed)
    kinds = booster_kinds(table, forms)
    preds = {ENDPOINT: np.empty(n_runs)}
    for form in forms:
        if n_points > 1:
            preds[f"{form}/next"] = np.empty((n_runs, n_points - 1))
            preds[f"{form}/rollout"] = np.empty(n_runs)
    rounds: dict[str, list[int]] = {name: [] for name, _, _ in kinds}
    tasks = []
    for fold in range(config.folds):
        train = np.flatnonzero(fold_of != fold)
        # Early stopping looks only at runs carved out of the training folds.
        shuffled = np.random.default_rng([config.seed, fold]).permutation(train)
        n_early = max(1, round(settings.early_stopping_fraction * len(train)))
        early, fit = np.sort(shuffled[:n_early]), np.sort(shuffled[n_early:])
        tasks += [
            booster_task(table, fit, kind, stage, settings, config.seed, settings.max_rounds, early)
            for _, kind, stage in kinds
        ]
    trained = iter(train_all(tasks, pool))
    for fold in range(config.folds):
        held = np.flatnonzero(fold_of == fold)
        boosters = {}
        for name, _, _ in kinds:
            booster, best = next(trained)
            boosters[name] = booster
            rounds[name].append(best)
        m = table.mixtures[held]
        preds[ENDPOINT][held] = predictor(
            table, None, boosters, settings.residual
        ).predict_endpoint(m)
        for form in forms:
            if n_points == 1:
                continue
            shell = predictor(table, form, boosters, settings.residual)
            for stage in range(1, n_points):
                preds[f"{form}/next"][held, stage - 1] = shell.predict_transition(
                    stage, m, table.losses[held, stage - 1]
                )
            preds[f"{form}/rollout"][held] = shell.rollout(m, table.losses[held, 0])[:, -1]
        if progress is not None:
            progress(fold + 1, config.folds + 1)
    return preds, rounds


def choose_form(
    requested: str, forms: tuple[str, ...], table: LossTable, preds: dict[str, np.ndarray]
) -> tuple[str | None, str]:
    """The form to keep and why (see below for `auto`).

    Held-out CV on static proxies only sees states ON the proxies' manifold (a run's loss is a
    function of its mixture and step), where the tree forms win by construction: they are told
    the run's true current loss. A schedule queries states OFF it (its history differs from
    every proxy), where the trees extrapolate blindly and, on synthetic worlds with known truth,
    rank candidates with Spearman 0.0-0.8 against 0.8-0.99 for curve-shift (docs/DECISIONS.md).
    So `auto` keeps curve-shift unless CV shows its curve regressors failing (mean held-out
    next-interval Spearman below CURVE_SHIFT_MIN_SPEARMAN); then the tree form with the lower
    held-out next-interval MAE (ties: pooled).
    """
    if table.endpoint_only and table.endpoint_logs:
        return None, "endpoint-only store (one observation per run): no transition model"
    if table.endpoint_only:
        return None, "one grid point (--switch-points 0): the endpoint model alone (RegMix)"
    truth = table.losses[:, 1:]
    errors = {form: mae(truth, preds[f"{form}/next"]) for form in forms}
    if requested != AUTO:
        return requested, f"forced by --model {requested}"
    ranks = {
        form: float(
            np.mean(
                [spearman(truth[:, j], preds[f"{form}/next"][:, j]) for j in range(truth.shape[1])]
            )
        )
        for form in forms
    }
    numbers = ", ".join(f"{f} {errors[f]:.5f}" for f in forms)
    if ranks[CURVE_SHIFT] >= CURVE_SHIFT_MIN_SPEARMAN:
        return CURVE_SHIFT, (
            f"auto: curve-shift (held-out next-interval rho {ranks[CURVE_SHIFT]:.4f} >= "
            f"{CURVE_SHIFT_MIN_SPEARMAN}); it extrapolates to the states a schedule reaches, "
            f"which CV on static proxies cannot score (held-out next-interval MAE: {numbers})"
        )
    best = min(TREE_FORMS[::-1], key=lambda f: errors[f])
    return best, (
        f"auto: {best}, because curve-shift's held-out next-interval rho "
        f"{ranks[CURVE_SHIFT]:.4f} < {CURVE_SHIFT_MIN_SPEARMAN}; {best} has the lower "
        f"held-out next-interval MAE ({numbers})"
    )


def cv_report(
    table: LossTable,
    config: FitConfig,
    forms: tuple[str, ...],
    preds: dict[str, np.ndarray],
    rounds: dict[str, list[int]],
    chosen: str | None,
    reason: str,
    final_rounds: dict[str, int],
) -> dict[str, Any]:
    """The cross-validation report, JSON-ready and deterministic."""
    truth_end = table.losses[:, -1]
    transitions = []
    for stage in range(1, table.losses.shape[1]):
        row: dict[str, Any] = {
            "stage": stage,
            "t_from": table.grid[stage - 1],
            "t_to": table.grid[stage],
        }
        for form in forms:
            row[form] = score(table.losses[:, stage], preds[f"{form}/next"][:, stage - 1])
        transitions.append(row)
    endpoint: dict[str, Any] = {ENDPOINT: score(truth_end, preds[ENDPOINT])}
    if not table.endpoint_only:
        endpoint["rollout"] = {form: score(truth_end, preds[f"{form}/rollout"]) for form in forms}
    return {
        "target": table.target,
        "n_runs": table.n_runs,
        "excluded": {"diverged": list(table.diverged), "short": list(table.short)},
        "endpoint_only": table.endpoint_only,
        "grid": list(table.grid),
        "proxy_steps": table.proxy_steps,
        "folds": config.folds,
        "seed": config.seed,
        "transitions": transitions,
        "endpoint": endpoint,
        "choice": {"requested": config.form, "form": chosen, "reason": reason},
        "cv_rounds": {name: sorted(v) for name, v in sorted(rounds.items())},
        "final_rounds": dict(sorted(final_rounds.items())),
        "summary": {
            "endpoint_spearman": endpoint[ENDPOINT]["spearman"],
            "endpoint_mae": endpoint[ENDPOINT]["mae"],
        },
    }


def check_folds(n_runs: int, folds: int, target: str, where: str = "store") -> None:
    """Enough usable runs for `folds`-fold cross-validation, or a clear error."""
    if folds < 2:
        raise UsageError(f"--folds {folds}: cross-validation needs at least 2 folds")
    need = MIN_RUNS_PER_FOLD * folds
    if n_runs < need:
        raise UsageError(
            f"{where}: only {n_runs} usable run(s) for target {target!r}, and {folds}-fold "
            f"cross-validation needs at least {need}; add runs or lower --folds"
        )
