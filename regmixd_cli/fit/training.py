"""`fit_model`: a store in, a fitted model out (transition rows, CV, form choice, refit).

The one function `regmixd fit` calls; it builds on `boosters` (training one booster) and
`crossval` (held-out predictions and the report).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from regmixd_cli.domain import Store
from regmixd_cli.errors import UsageError
from regmixd_cli.files import dumps_json
from regmixd_cli.fit.boosters import booster_kinds, booster_task, train_all
from regmixd_cli.fit.crossval import (
    BLIND_WARNING,
    attach_evidence,
    check_folds,
    choose_form_by_evidence,
    cross_validate,
    cv_report,
    phased_evidence,
)
from regmixd_cli.fit.model import (
    AUTO,
    FORMS,
    PHASED_FORMS,
    STATIC_FORMS,
    FitConfig,
    FittedModel,
    Progress,
    default_threads,
)
from regmixd_cli.fit.parallel import Executor
from regmixd_cli.fit.transitions import LossTable, build_loss_table, resolve_target
from regmixd_cli.weights import Prior, resolve_prior


def cv_forms(table: LossTable, requested: str) -> tuple[str, ...]:
    """The forms cross-validated: all on a phased store, RegMix-D's and curve-shift on a
    static one (plus the requested form, if another)."""
    if table.endpoint_only:
        return ()
    forms = PHASED_FORMS if table.in_force is not None else STATIC_FORMS
    if requested != AUTO and requested not in forms:
        forms = (*forms, requested)
    return forms


def fit_model(
    store: Store,
    config: FitConfig,
    progress: Progress | None = None,
    where: str = "store",
    pool: Executor | None = None,
) -> FittedModel:
    """Fit the endpoint model and the transition model(s), with a grouped-CV report.

    `where` names the store in error messages (its path, for the CLI). The independent
    trainings (CV folds x boosters, then the refits) run on `pool` (default: serially); every
    booster trains single-threaded, so the model's bytes do not depend on the pool.
    """
    check_form(config)
    target = resolve_target(store, config.target, where)
    table = build_loss_table(
        store,
        target,
        n_switch_points=config.n_switch_points,
        intervals=config.intervals,
        where=where,
    )
    check_folds(table.n_runs, config.folds, target, where, len(table.short), table.grid[-1])
    prior = resolve_prior(config.prior, table.domains, table.mixtures.mean(axis=0).tolist())
    forms = cv_forms(table, config.form)
    cv = cross_validate(table, config, forms, progress, pool)
    preds, rounds = cv.preds, cv.rounds
    config = replace(config, xgb=cv.xgb)  # the curve booster's rate, as CV chose it
    evidence = phased_evidence(table, forms, preds, config.verify_prefixes)
    chosen, reason, blind = choose_form_by_evidence(config.form, forms, table, preds, evidence)

    boosters, final_rounds = refit_boosters(table, config, chosen, rounds, pool)
    if progress is not None:
        progress(config.folds + 1, config.folds + 1)

    report = cv_report(table, config, forms, preds, rounds, chosen, reason, final_rounds,
                       cv.curve_rate)
    attach_evidence(report, table, evidence, config.verify_prefixes)
    if blind:
        report["warnings"] = [BLIND_WARNING]
    return fitted_from(store, table, config, prior, chosen, report, boosters,
                       {"truth": table.losses, **preds})


def check_form(config: FitConfig) -> None:
    """`--model` names a form, or auto."""
    if config.form not in (AUTO, *FORMS):
        raise UsageError(f"--model {config.form!r}: choose auto, {', '.join(FORMS)}")


def refit_boosters(
    table: LossTable,
    config: FitConfig,
    chosen: str | None,
    rounds: dict[str, list[int]],
    pool: Executor | None = None,
) -> tuple[dict[str, Any], dict[str, int]]:
    """The boosters of `chosen` (and the endpoint) refitted on every usable run, each for the
    median round count CV's early stopping found; and those round counts."""
    everyone = np.arange(table.n_runs)
    boosters: dict[str, Any] = {}
    final_rounds: dict[str, int] = {}
    kinds = booster_kinds(table, (chosen,) if chosen else ())
    for name, _, _ in kinds:
        final_rounds[name] = int(math.ceil(float(np.median(rounds[name]))))
    tasks = [
        booster_task(table, everyone, kind, stage, config.xgb, config.seed, final_rounds[name])
        for name, kind, stage in kinds
    ]
    for (name, _, _), (booster, _) in zip(kinds, train_all(tasks, pool), strict=True):
        booster.set_param({"nthread": default_threads()})  # prediction is row-parallel
        boosters[name] = booster
    return boosters, final_rounds


def loss_ranges(losses: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The (lowest, highest) loss the proxies reached at each grid point."""
    return tuple((float(losses[:, j].min()), float(losses[:, j].max()))
                 for j in range(losses.shape[1]))


def fitted_from(
    store: Store,
    table: LossTable,
    config: FitConfig,
    prior: Prior,
    chosen: str | None,
    report: dict[str, Any],
    boosters: dict[str, Any],
    cv_predictions: dict[str, Any],
) -> FittedModel:
    """The FittedModel of one target's table, report and refitted boosters."""
    settings = config.xgb
    return FittedModel(
        domains=table.domains,
        target=table.target,
        grid=table.grid,
        proxy_steps=table.proxy_steps,
        prior=prior.as_dict(table.domains),
        prior_source=prior.source,
        form=chosen,
        loss_ranges=loss_ranges(table.losses),
        initial_loss=math.nan if table.endpoint_only else float(table.losses[:, 0].mean()),
        report=report,
        boosters=boosters,
        residual=settings.residual,
        # Equals `store_hash(path)`: the manifest file is exactly this canonical JSON.
        store_sha256=hashlib.sha256(dumps_json(store.manifest).encode("utf-8")).hexdigest(),
        settings={
            "xgboost": asdict(settings),
            "folds": config.folds,
            "seed": config.seed,
            "n_switch_points": config.n_switch_points,
            "intervals": list(config.intervals) if config.intervals else None,
            "model": config.form,
        },
        cv_predictions=cv_predictions,
    )
