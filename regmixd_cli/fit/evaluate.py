"""Score a fitted model on another store's runs: held-out proxies, or runs at another scale."""

from __future__ import annotations

from typing import Any

import numpy as np

from regmixd_cli.domain import Store
from regmixd_cli.errors import ModelError
from regmixd_cli.fit.metrics import clean, mae, pearson, score, spearman, top_k_overlap
from regmixd_cli.fit.model import FitConfig
from regmixd_cli.fit.objective import (
    AnyModel,
    ObjectiveModel,
    check_common_runs,
    loss_tables,
    objective_table,
)
from regmixd_cli.fit.transitions import build_loss_table

DEFAULT_TOP_K = 10


def _scores(truth: np.ndarray, pred: np.ndarray, top_k: int) -> dict[str, float | None]:
    """Spearman, Pearson, MAE and top-k overlap of predicted vs true losses."""
    return {
        "spearman": clean(spearman(truth, pred)),
        "pearson": clean(pearson(truth, pred)),
        "mae": clean(mae(truth, pred)),
        "top_k_overlap": clean(top_k_overlap(truth, pred, top_k)),
    }


def evaluate_model(
    model: AnyModel, store: Store, *, top_k: int = DEFAULT_TOP_K, where: str = "store"
) -> dict[str, Any]:
    """Predict the store's runs with the model; scores of the endpoint model and the rollout.

    A model of several targets is scored on its objective (over the runs every target can
    use), and each target on its own under `targets`.
    """
    if set(store.domains) != set(model.domains):
        missing = sorted(set(model.domains) - set(store.domains))
        extra = sorted(set(store.domains) - set(model.domains))
        raise ModelError(
            f"{where}: domains do not match the model's (missing {', '.join(missing) or '-'}; "
            f"not in the model {', '.join(extra) or '-'}); evaluate on runs over the same domains"
        )
    for target in model.targets:
        if target not in store.metrics:
            raise ModelError(
                f"{where}: has no {target!r} metric, the model's target; "
                f"it logs {', '.join(store.metrics)}"
            )
    # The grid is the model's: runs must be logged over it (evaluate has no grid options).
    fix = (f"evaluate on runs logged over the model's grid (steps {model.grid[0]:g} to "
           f"{model.grid[-1]:g})")
    if isinstance(model, ObjectiveModel):
        tables, lacking = loss_tables(store, model.targets, FitConfig(intervals=model.grid),
                                      where, ModelError, fix)
        check_common_runs(tables, lacking, model.targets, 0, where, ModelError)
        table = objective_table(tables, model.objective)
        states = np.stack([t.losses for t in tables], axis=-1)  # (runs, points, targets)
    else:
        table = build_loss_table(store, model.target, intervals=model.grid, where=where,
                                 grid_fix=fix)
        states, lacking = table.losses, []
    if table.n_runs == 0:
        raise ModelError(
            f"{where}: no usable run reaches step {model.proxy_steps:g}, the model's T_p; "
            "evaluate on runs of the same length"
        )
    order = [table.domains.index(d) for d in model.domains]
    mixtures = np.ascontiguousarray(table.mixtures[:, order], dtype=np.float32)
    truth = table.losses[:, -1]
    report: dict[str, Any] = {
        "target": model.target,
        "n_runs": table.n_runs,
        "top_k": min(top_k, table.n_runs),
        "excluded": {"diverged": list(table.diverged), "short": list(table.short),
                     **({"lacking_a_target": lacking} if lacking else {})},
        "endpoint": _scores(truth, model.predict_endpoint(mixtures), top_k),
    }
    if model.has_transitions and not table.endpoint_only:
        path = model.rollout(mixtures, states[:, 0])
        report["rollout"] = _scores(truth, path[:, -1], top_k)
        report["transitions"] = [
            {
                "stage": j,
                **score(
                    table.losses[:, j],
                    model.predict_transition(j, mixtures, states[:, j - 1]),
                ),
            }
            for j in range(1, model.n_switch_points + 1)
        ]
    if isinstance(model, ObjectiveModel):
        report["targets"] = {m.target: evaluate_model(m, store, top_k=top_k, where=where)
                             for m in model.members}
    return report
