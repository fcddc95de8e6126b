"""Grouped cross-validation of the endpoint and transition boosters, and the fit report.

Runs are dealt into folds by a seeded permutation, so a run's rows never span folds. Inside a
fold, early stopping watches runs carved out of the training folds only; the held-out fold is
predicted once, teacher-forced (true l_j -> l_{j+1}) and as a rollout from l_1 to l_{N+1}.
Scores are computed on the out-of-fold predictions of all runs together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from regmixd_cli.errors import UsageError
from regmixd_cli.fit.boosters import booster_kinds, booster_task, train_all
from regmixd_cli.fit.metrics import clean, mae, score, spearman
from regmixd_cli.fit.model import (
    AUTO,
    CURVE,
    CURVE_SHIFT,
    ENDPOINT,
    TREE_FORMS,
    FitConfig,
    FittedModel,
    Progress,
    XGBSettings,
)
from regmixd_cli.fit.parallel import Executor
from regmixd_cli.fit.transitions import LossTable, after_change
from regmixd_cli.weights import round_weights

MIN_RUNS_PER_FOLD = 2
# The faster learning rate cross-validation also tries for the curve booster (`curve`, static
# stores): about half the trees where it costs nothing (`choose_curve_rate`, docs/DECISIONS.md).
CURVE_FAST_RATE = 0.1
FAST_CURVE = "curve@fast"  # its name during cross-validation only
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


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold predictions (teacher-forced and rollout), the best round counts per booster,
    and the settings the refit uses (the curve booster's rate as CV chose it, `curve_rate`)."""

    preds: dict[str, np.ndarray]
    rounds: dict[str, list[int]]
    xgb: XGBSettings
    curve_rate: dict[str, Any] | None = None


def cross_validate(
    table: LossTable,
    config: FitConfig,
    forms: tuple[str, ...],
    progress: Progress | None,
    pool: Executor | None = None,
) -> CrossValidation:
    """Grouped CV of every booster `forms` need (all folds x kinds go to `pool` at once).

    On a store of static runs the `curve` booster is also trained at CURVE_FAST_RATE, and
    `choose_curve_rate` keeps the faster booster where the held-out errors say it costs nothing.
    """
    settings = config.xgb
    n_runs, n_points = table.losses.shape
    fold_of = assign_folds(n_runs, config.folds, config.seed)
    kinds = booster_kinds(table, forms)
    fast = (settings.learning_rate < CURVE_FAST_RATE and table.in_force is None
            and any(kind == CURVE for _, kind, _ in kinds))
    if fast:
        kinds.append((FAST_CURVE, CURVE, 0))
    preds = {ENDPOINT: np.empty(n_runs)}
    for form in (*forms, FAST_CURVE) if fast else forms:
        if n_points > 1:
            preds[f"{form}/next"] = np.empty((n_runs, n_points - 1))
            preds[f"{form}/rollout"] = np.empty(n_runs)
    rounds: dict[str, list[int]] = {name: [] for name, _, _ in kinds}
    fast_settings = replace(settings, curve_learning_rate=CURVE_FAST_RATE)
    tasks = []
    for fold in range(config.folds):
        train = np.flatnonzero(fold_of != fold)
        # Early stopping looks only at runs carved out of the training folds.
        shuffled = np.random.default_rng([config.seed, fold]).permutation(train)
        n_early = max(1, round(settings.early_stopping_fraction * len(train)))
        early, fit = np.sort(shuffled[:n_early]), np.sort(shuffled[n_early:])
        tasks += [
            booster_task(table, fit, kind, stage, fast_settings if name == FAST_CURVE
                         else settings, config.seed, settings.max_rounds, early)
            for name, kind, stage in kinds
        ]
    trained = iter(train_all(tasks, pool))
    for fold in range(config.folds):
        held = np.flatnonzero(fold_of == fold)
        boosters = {}
        for name, _, _ in kinds:
            booster, best = next(trained)
            boosters[name] = booster
            rounds[name].append(best)
        if table.in_force is not None:
            predict_phased(table, forms, boosters, settings.residual, held, preds)
            if progress is not None:
                progress(fold + 1, config.folds + 1)
            continue
        m = table.mixtures[held]
        preds[ENDPOINT][held] = predictor(
            table, None, boosters, settings.residual
        ).predict_endpoint(m)
        variants = [(form, boosters) for form in forms]
        if fast:
            variants.append((FAST_CURVE, {**boosters, CURVE: boosters[FAST_CURVE]}))
        for label, used in variants:
            if n_points == 1:
                continue
            form = CURVE_SHIFT if label == FAST_CURVE else label
            shell = predictor(table, form, used, settings.residual)
            for stage in range(1, n_points):
                preds[f"{label}/next"][held, stage - 1] = shell.predict_transition(
                    stage, m, table.losses[held, stage - 1]
                )
            preds[f"{label}/rollout"][held] = shell.rollout(m, table.losses[held, 0])[:, -1]
        if progress is not None:
            progress(fold + 1, config.folds + 1)
    if not fast:
        return CrossValidation(preds, rounds, settings)
    return choose_curve_rate(table, preds, rounds, settings)


def choose_curve_rate(
    table: LossTable,
    preds: dict[str, np.ndarray],
    rounds: dict[str, list[int]],
    settings: XGBSettings,
) -> CrossValidation:
    """Keep the curve booster trained at CURVE_FAST_RATE (fewer trees: every schedule predicts
    it once per candidate) only where cross-validation says it costs nothing.

    Costs nothing: on both scores curve-shift is judged by, the held-out next-interval error
    (per run, mean over stages) and the rollout error at T_p, the faster booster's mean absolute
    error exceeds the default's by no more than one standard error of the paired per-run
    difference. Otherwise the default stays. Either way the report shows both.
    """
    truth_next, truth_end = table.losses[:, 1:], table.losses[:, -1]
    checks = {}
    for key, truth in (("next", truth_next), ("rollout", truth_end)):
        base = np.abs(truth - preds[f"{CURVE_SHIFT}/{key}"])
        quick = np.abs(truth - preds[f"{FAST_CURVE}/{key}"])
        if base.ndim == 2:
            base, quick = base.mean(axis=1), quick.mean(axis=1)
        diff = quick - base
        se = float(diff.std(ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf
        checks[key] = (float(base.mean()), float(quick.mean()), se)
    keep_fast = all(q - b <= se for b, q, se in checks.values())
    fast_rounds = rounds.pop(FAST_CURVE)
    fast_preds = {key: preds.pop(f"{FAST_CURVE}/{key}") for key in ("next", "rollout")}
    record = {
        "learning_rate": CURVE_FAST_RATE if keep_fast else settings.learning_rate,
        "tried": [
            {"learning_rate": rate, "next_mae": clean(checks["next"][i]),
             "rollout_mae": clean(checks["rollout"][i]),
             "median_rounds": int(math.ceil(float(np.median(r))))}
            for i, (rate, r) in enumerate(((settings.learning_rate, rounds[CURVE]),
                                           (CURVE_FAST_RATE, fast_rounds)))
        ],
        "standard_error": {key: clean(se) for key, (_, _, se) in checks.items()},
    }
    if not keep_fast:
        return CrossValidation(preds, rounds, settings, record)
    for key, values in fast_preds.items():
        preds[f"{CURVE_SHIFT}/{key}"] = values
    rounds[CURVE] = fast_rounds
    return CrossValidation(preds, rounds, replace(settings, curve_learning_rate=CURVE_FAST_RATE),
                           record)


def predict_phased(
    table: LossTable,
    forms: tuple[str, ...],
    boosters: Mapping[str, Any],
    residual: bool,
    held: np.ndarray,
    preds: dict[str, np.ndarray],
) -> None:
    """Held-out predictions on a phased store: each run under its own mixture per interval.

    Teacher-forced rows see (mixture in force, history, true l_j); the rollout walks the run's
    real phases from l_1, so a phased run's rollout scores what a schedule does.
    """
    assert table.in_force is not None and table.history is not None
    n_points = table.losses.shape[1]
    preds[ENDPOINT][held] = predictor(table, None, boosters, residual).predict_endpoint(
        table.history[held, -1]
    )
    for form in forms:
        if n_points == 1:
            continue
        shell = predictor(table, form, boosters, residual)
        path = table.losses[held, 0].copy()
        for stage in range(1, n_points):
            m = table.in_force[held, stage].astype(np.float32)
            h = table.history[held, stage - 1].astype(np.float32)
            preds[f"{form}/next"][held, stage - 1] = shell.predict_transition(
                stage, m, table.losses[held, stage - 1], history=h
            )
            path = shell.predict_transition(stage, m, path, history=h).astype(np.float64)
        preds[f"{form}/rollout"][held] = path


# Verification runs of `design --refine` are named <prefix>d000... (they follow the recommended
# schedule or its neighbours) and <prefix>s000... (static RegMix or its neighbours).
VERIFY_DYNAMIC_TAG = "d"
VERIFY_STATIC_TAG = "s"


def attach_evidence(
    report: dict[str, Any], table: LossTable, evidence: dict[str, Any], prefixes: tuple[str, ...]
) -> None:
    """Add to a fit report what phased proxies and verification runs show: `evidence` (held-out
    errors per form) and `verification` (what the runs observed), where there is any."""
    if table.in_force is not None or prefixes:
        report["evidence"] = evidence
    observed = observed_verification(table, prefixes)
    if observed is not None:
        report["verification"] = observed


def observed_verification(table: LossTable, prefixes: tuple[str, ...]) -> dict[str, Any] | None:
    """What the verification runs observed: mean final loss of the runs around the schedule
    and around static RegMix, and the standard error of their difference (None with fewer than
    two runs on either side); and `best`, the run of the store that ended lowest (verification
    runs and proxies alike, among runs that change mixture only at grid points), with the
    mixture it trained on over each grid interval: a plan that was measured, not predicted.
    The guard (plan.guard) lets this overrule the model."""
    if not prefixes:
        return None
    final = table.losses[:, -1]
    masks = [
        np.array([any(r.startswith(p + tag) for p in prefixes) for r in table.runs], dtype=bool)
        for tag in (VERIFY_DYNAMIC_TAG, VERIFY_STATIC_TAG)
    ]
    dynamic, static = (final[mask] for mask in masks)
    if len(dynamic) < 2 or len(static) < 2:
        return None
    sd = math.sqrt(float(dynamic.var(ddof=1)) / len(dynamic)
                   + float(static.var(ddof=1)) / len(static))
    measured = np.flatnonzero(np.ones(len(final), bool) if table.on_grid is None
                              else table.on_grid)
    observed: dict[str, Any] = {"dynamic": round(float(dynamic.mean()), 6),
                "static": round(float(static.mean()), 6),
                "sd": round(sd, 6), "n_dynamic": len(dynamic), "n_static": len(static)}
    if measured.size:
        best = int(measured[np.argmin(final[measured])])  # ties: the first run by name
        stages = (np.repeat(table.mixtures[best : best + 1], len(table.grid), axis=0)
                  if table.grid_plans is None else table.grid_plans[best])
        observed["best"] = {"run": table.runs[best], "loss": round(float(final[best]), 6),
                            "stages": [list(round_weights(w)) for w in stages]}
    return observed


def phased_evidence(
    table: LossTable,
    forms: tuple[str, ...],
    preds: dict[str, np.ndarray],
    prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Held-out errors on what a schedule needs, per form (JSON-ready).

    `after_change`: teacher-forced next-interval rows whose mixture differs from the run's
    history (only phased proxies have them); `phased_rollout`: the final loss of phased runs
    rolled out from l_1 through their own phases; `verification_rollout`: the same on runs
    named with a verification prefix (`fit --verify-prefix`).
    """
    changed = after_change(table)
    phased = changed.any(axis=1)
    verify = np.array([r.startswith(prefixes) for r in table.runs], dtype=bool) if prefixes \
        else np.zeros(table.n_runs, dtype=bool)
    result: dict[str, Any] = {
        "n_after_change_rows": int(changed.sum()),
        "n_phased_runs": int(phased.sum()),
        "verify_prefixes": list(prefixes),
        "n_verification_runs": int(verify.sum()),
        "forms": {},
    }
    truth = table.losses[:, 1:]
    for form in forms:
        entry: dict[str, Any] = {}
        if changed.any():
            entry["after_change"] = score(truth[changed], preds[f"{form}/next"][changed])
            entry["no_change"] = score(truth[~changed], preds[f"{form}/next"][~changed])
        if phased.any():
            entry["phased_rollout"] = score(table.losses[phased, -1],
                                            preds[f"{form}/rollout"][phased])
        if verify.any():
            entry["verification_rollout"] = score(table.losses[verify, -1],
                                                  preds[f"{form}/rollout"][verify])
        result["forms"][form] = entry
    return result


# The evidence `auto` ranks forms by, strongest first: verification runs (schedule-shaped runs
# of a second round), then transitions after a mixture change.
EVIDENCE = (("verification_rollout", "held-out rollout MAE on verification runs"),
            ("after_change", "held-out next-interval MAE after a mixture change"))
BLIND_WARNING = (
    "the store has static proxies only, so no held-out evidence scores what a schedule needs "
    "(a mixture change): the form choice is blind; design phased proxies "
    "(`regmixd design --proxy-steps T`) to choose by evidence"
)


def choose_form_by_evidence(
    requested: str,
    forms: tuple[str, ...],
    table: LossTable,
    preds: dict[str, np.ndarray],
    evidence: dict[str, Any],
) -> tuple[str | None, str, bool]:
    """(form, reason, blind): by held-out evidence when the store has any, else `choose_form`.

    With phased runs (or verification runs), `auto` keeps the form with the lowest held-out
    error on the strongest evidence available (EVIDENCE); ties keep the earlier form in FORMS.
    With static proxies only the choice is blind and falls back to `choose_form`'s rule.
    """
    blind = not any(key in entry for entry in evidence["forms"].values() for key, _ in EVIDENCE)
    if requested != AUTO or table.endpoint_only or blind:
        chosen, reason = choose_form(requested, forms, table, preds)
        return chosen, reason, blind and requested == AUTO and chosen is not None
    for key, what in EVIDENCE:
        errors = {f: e[key]["mae"] for f, e in evidence["forms"].items()
                  if key in e and e[key]["mae"] is not None}
        if errors:
            best = min(errors, key=lambda f: (errors[f], forms.index(f)))
            numbers = ", ".join(f"{f} {errors[f]:.5f}" for f in forms if f in errors)
            return best, f"auto: {best}, the lowest {what} ({numbers})", False
    raise AssertionError("unreachable: evidence without errors")


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
    curve_rate: dict[str, Any] | None = None,
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
    report = {
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
    if curve_rate is not None:
        report["curve_learning_rate"] = curve_rate
    return report


def check_folds(
    n_runs: int, folds: int, target: str, where: str = "store", n_short: int = 0,
    proxy_steps: float | None = None,
) -> None:
    """Enough usable runs for `folds`-fold cross-validation, or a clear error (that says how
    many runs were left out for stopping before T_p, and how to keep them)."""
    if folds < 2:
        raise UsageError(f"--folds {folds}: cross-validation needs at least 2 folds")
    need = MIN_RUNS_PER_FOLD * folds
    if n_runs < need:
        why = ""
        if n_short and proxy_steps is not None:
            why = (f" ({n_short} run(s) stop before step {proxy_steps:g}, the grid's end, and "
                   "were left out: give --intervals ending at a step they reach)")
        raise UsageError(
            f"{where}: only {n_runs} usable run(s) for target {target!r}{why}, and {folds}-fold "
            f"cross-validation needs at least {need}; add runs or lower --folds"
        )
