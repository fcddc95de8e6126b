"""Bootstrap ensembles over proxy runs: predicted-loss intervals and risk-aware ranking.

`fit --ensemble B` trains B replicas of the chosen transition form and the endpoint model,
each on M runs drawn with replacement from the M usable runs (runs, not rows: a run's
transitions are correlated, and resampling rows would understate the spread). Replica b uses
the final model's round counts, no early stopping, and the seed (seed, b). Runs a replica did
not draw are its out-of-bag (OOB) runs; their residuals (true - predicted) are summarised as
quantiles in model.json: for every transition (teacher-forced, `next`), for the rollout from
l_1 to each later grid point (`rollout`), and for the endpoint model.

Intervals. A stage's `predicted_loss_interval` is [p10, p50, p90] of the replicas' predictions
for the stage's mixture (offline: each replica rolls its own loss path forward from the
model's initial loss, so uncertainty accumulates over stages). Bootstrap spread measures only
how much the regressor moves when the proxies are resampled, not the proxies' own noise, so
it is widened by the OOB residual spread (see docs/DECISIONS.md for the calibration that
motivated it): the reported interval is the 10th/50th/90th percentile of
{replica prediction + OOB residual quantile} over all replicas and residual levels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from regmixd_cli.errors import ModelError, UsageError
from regmixd_cli.fit.boosters import booster_kinds, booster_task, train_all
from regmixd_cli.fit.files import MODEL_FILE, read_model_dir
from regmixd_cli.fit.model import ENDPOINT, FittedModel, XGBSettings, default_threads
from regmixd_cli.fit.parallel import Executor
from regmixd_cli.fit.transitions import build_loss_table

ENSEMBLE_KEY = "ensemble"
METHOD = "bootstrap over proxy runs"
LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # residual quantile levels stored
INTERVAL = (10.0, 50.0, 90.0)
WIDEN_BOOTSTRAP = "bootstrap"
WIDEN_OOB = "bootstrap+oob"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Ensemble:
    """B replicas of a fitted model (same metadata, resampled boosters) and OOB residuals."""

    replicas: tuple[FittedModel, ...]
    metadata: dict[str, Any]

    @property
    def size(self) -> int:
        """Number of replicas, B."""
        return len(self.replicas)

    def residuals(self, kind: str, index: int = 0) -> np.ndarray:
        """OOB residual quantiles (at LEVELS) of `next`/`rollout` stage `index`, or `endpoint`."""
        oob = self.metadata.get("oob_residual_quantiles", {})
        values = oob.get(kind)
        if values is None:
            return np.zeros(1)
        row = values[index] if kind != ENDPOINT else values
        return np.asarray(row, dtype=np.float64)


def fit_ensemble(
    store: Any,
    model: FittedModel,
    n_replicas: int,
    progress: Progress | None = None,
    where: str = "store",
    pool: Executor | None = None,
) -> Ensemble:
    """Train `n_replicas` bootstrap replicas of `model` on its store's runs (on `pool`)."""

    if n_replicas < 2:
        raise UsageError(f"--ensemble {n_replicas}: give 0 (none) or at least 2 replicas")
    settings = model.settings
    table = build_loss_table(
        store,
        model.target,
        n_switch_points=int(settings["n_switch_points"]),
        intervals=settings.get("intervals"),
        where=where,
    )
    if tuple(table.grid) != tuple(model.grid):
        raise ModelError(f"{where}: the store no longer gives the model's interval grid; refit")
    xgb = XGBSettings(**settings["xgboost"])
    seed = int(settings["seed"])
    rounds = model.report["final_rounds"]
    kinds = booster_kinds(table, (model.form,) if model.form else ())
    n_runs = table.n_runs
    replicas = []
    n_next = table.losses.shape[1] - 1
    res_next: list[list[np.ndarray]] = [[] for _ in range(n_next)]
    res_roll: list[list[np.ndarray]] = [[] for _ in range(n_next)]
    res_end: list[np.ndarray] = []
    draws = [
        np.sort(np.random.default_rng([seed, 8, b]).integers(0, n_runs, size=n_runs))
        for b in range(n_replicas)
    ]
    tasks = [
        booster_task(table, drawn, kind, stage, xgb, _replica_seed(seed, b), int(rounds[name]))
        for b, drawn in enumerate(draws)
        for name, kind, stage in kinds
    ]
    trained = iter(train_all(tasks, pool))
    for b, drawn in enumerate(draws):
        boosters = {}
        for name, _, _ in kinds:
            booster, _ = next(trained)
            booster.set_param({"nthread": default_threads()})
            boosters[name] = booster
        replica = dataclasses.replace(model, boosters=boosters)
        replicas.append(replica)
        oob = np.setdiff1d(np.arange(n_runs), drawn)
        if oob.size:
            m = table.mixtures[oob]
            res_end.append(table.losses[oob, -1] - replica.predict_endpoint(m))
            if model.form is not None:
                path = replica.rollout(m, table.losses[oob, 0])
                for j in range(1, n_next + 1):
                    pred = replica.predict_transition(j, m, table.losses[oob, j - 1])
                    res_next[j - 1].append(table.losses[oob, j] - pred)
                    res_roll[j - 1].append(table.losses[oob, j] - path[:, j])
        if progress is not None:
            progress(b + 1, n_replicas)

    def quantiles(parts: Sequence[np.ndarray]) -> list[float]:
        values = np.concatenate(parts) if parts else np.zeros(1)
        return [round(float(v), 8) for v in np.quantile(values, LEVELS)]

    oob_q: dict[str, Any] = {ENDPOINT: quantiles(res_end)}
    if model.form is not None:
        oob_q["next"] = [quantiles(p) for p in res_next]
        oob_q["rollout"] = [quantiles(p) for p in res_roll]
    metadata = {
        "size": n_replicas,
        "method": METHOD,
        "seed": seed,
        "levels": list(LEVELS),
        "oob_residual_quantiles": oob_q,
        "files": [[_file_name(b, name) for name, _, _ in kinds] for b in range(n_replicas)],
    }
    return Ensemble(tuple(replicas), metadata)


def _replica_seed(seed: int, b: int) -> int:
    return int(np.random.SeedSequence([seed, 8, b]).generate_state(1)[0] % (2**31 - 1))


def _file_name(b: int, name: str) -> str:
    return f"ens{b:03d}_{name}.ubj"


def ensemble_blobs(ensemble: Ensemble) -> dict[str, bytes]:
    """Booster files of every replica, for the model directory."""
    return {
        _file_name(b, name): bytes(booster.save_raw("ubj"))
        for b, replica in enumerate(ensemble.replicas)
        for name, booster in replica.boosters.items()
    }


def load_ensemble(path: Any, model: FittedModel) -> Ensemble | None:
    """The ensemble stored in a model directory, or None when it was fitted without one."""
    import xgboost


    meta, blobs = read_model_dir(path)
    record = meta.get(ENSEMBLE_KEY)
    if not record:
        return None
    replicas = []
    try:
        for files in record["files"]:
            boosters = {}
            for file in files:
                booster = xgboost.Booster()
                booster.load_model(bytearray(blobs[file]))
                booster.set_param({"nthread": default_threads()})
                name = file.split("_", 1)[1].removesuffix(".ubj")
                boosters[name] = booster
            replicas.append(dataclasses.replace(model, boosters=boosters))
    except (KeyError, TypeError, ValueError, xgboost.core.XGBoostError) as exc:
        raise ModelError(
            f"{path}/{MODEL_FILE}: unreadable ensemble ({exc.__class__.__name__}); "
            "fit again with `regmixd fit --ensemble B`"
        ) from None
    return Ensemble(tuple(replicas), dict(record))


def require_ensemble(ensemble: Ensemble | None, path: Any, what: str) -> Ensemble:
    """The ensemble, or a ModelError saying how to get one."""
    if ensemble is None:
        raise ModelError(
            f"{path}: {what} needs a model with bootstrap replicas; "
            "fit it with `regmixd fit STORE --out MODEL --ensemble 20`"
        )
    return ensemble


# ------------------------------------------------------------------------------ prediction


@dataclass(frozen=True)
class QuantileModel(FittedModel):
    """A fitted model whose predictions are the q-quantile over an ensemble's replicas
    (`schedule --risk q` ranks candidates with it)."""

    replicas: tuple[FittedModel, ...] = ()
    quantile: float = 0.5

    def predict_transition(
        self,
        stage: int,
        mixtures: np.ndarray,
        loss: float | np.ndarray,
        history: np.ndarray | None = None,
    ) -> np.ndarray:
        """q-quantile of the replicas' next-interval predictions."""
        preds = np.stack([r.predict_transition(stage, mixtures, loss, history)
                          for r in self.replicas])
        out: np.ndarray = np.quantile(preds, self.quantile, axis=0)
        return out

    def prepare_transitions(self, mixtures: np.ndarray) -> Any:
        """Every replica's reusable part (see FittedModel.prepare_transitions)."""
        return [r.prepare_transitions(mixtures) for r in self.replicas]

    def predict_prepared(
        self, prepared: Any, stage: int, mixtures: np.ndarray, loss: float | np.ndarray
    ) -> np.ndarray:
        """q-quantile of the replicas' next-interval predictions, from their prepared parts."""
        preds = np.stack(
            [
                r.predict_prepared(p, stage, mixtures, loss)
                for r, p in zip(self.replicas, prepared, strict=True)
            ]
        )
        out: np.ndarray = np.quantile(preds, self.quantile, axis=0)
        return out

    def predict_endpoint(self, mixtures: np.ndarray) -> np.ndarray:
        """q-quantile of the replicas' endpoint predictions."""
        preds = np.stack([r.predict_endpoint(mixtures) for r in self.replicas])
        out: np.ndarray = np.quantile(preds, self.quantile, axis=0)
        return out


def quantile_model(model: FittedModel, ensemble: Ensemble, q: float) -> QuantileModel:
    """`model`, ranking by the q-quantile of `ensemble`."""
    if not 0.0 < q < 1.0:
        raise UsageError(f"--risk {q}: give a quantile strictly between 0 and 1")
    base = {f.name: getattr(model, f.name) for f in dataclasses.fields(FittedModel)}
    return QuantileModel(**base, replicas=ensemble.replicas, quantile=float(q))


def interval(
    predictions: np.ndarray, residuals: np.ndarray | None = None
) -> tuple[float, float, float]:
    """[p10, p50, p90] of replica predictions, convolved with residual quantiles if given."""
    values = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if residuals is not None:
        values = (values[:, None] + np.asarray(residuals)[None, :]).reshape(-1)
    p10, p50, p90 = np.percentile(values, INTERVAL)
    return (round(float(p10), 6), round(float(p50), 6), round(float(p90), 6))


def schedule_intervals(
    schedule: Any, model: FittedModel, ensemble: Ensemble, widen: bool = True
) -> list[tuple[float, float, float] | None]:
    """Per-stage intervals of an offline or static schedule (None for segment 0 of offline).

    Offline: every replica rolls its own loss forward from the model's initial loss through
    the schedule's stages 1..N. Static: the replicas' endpoint predictions.
    """
    weights = np.asarray([s.weights for s in schedule.stages], dtype=np.float32)
    if len(schedule.stages) == 1:
        preds = np.asarray([r.predict_endpoint(weights)[0] for r in ensemble.replicas])
        res = ensemble.residuals(ENDPOINT) if widen else None
        return [interval(preds, res)]
    n = model.n_switch_points
    paths = np.full((ensemble.size, n + 1), float(model.initial_loss))
    for j in range(1, n + 1):
        for b, replica in enumerate(ensemble.replicas):
            paths[b, j] = replica.predict_transition(j, weights[j : j + 1], paths[b, j - 1])[0]
    out: list[tuple[float, float, float] | None] = [None]
    for j in range(1, n + 1):
        out.append(interval(paths[:, j], ensemble.residuals("rollout", j - 1) if widen else None))
    return out


def next_interval(
    model: FittedModel,
    ensemble: Ensemble,
    switch: int,
    weights: Sequence[float],
    loss: float,
    widen: bool = True,
) -> tuple[float, float, float]:
    """Interval of the loss at the next grid point from an observed `loss` (online mode)."""
    m = np.asarray([weights], dtype=np.float32)
    preds = np.asarray([r.predict_transition(switch, m, loss)[0] for r in ensemble.replicas])
    return interval(preds, ensemble.residuals("next", switch - 1) if widen else None)


def with_intervals(schedule: Any, intervals: Sequence[tuple[float, float, float] | None]) -> Any:
    """The schedule with `predicted_loss_interval` set on each stage."""
    stages = tuple(
        dataclasses.replace(s, predicted_loss_interval=i)
        for s, i in zip(schedule.stages, intervals, strict=True)
    )
    return dataclasses.replace(schedule, stages=stages)


def settings_record(ensemble: Ensemble, widen: bool, risk: float | None) -> dict[str, Any]:
    """What the intervals and ranking used, for a schedule's provenance."""
    record: dict[str, Any] = {
        "size": ensemble.size,
        "interval": "p10/p50/p90 of " + (WIDEN_OOB if widen else WIDEN_BOOTSTRAP),
    }
    if risk is not None:
        record["risk"] = risk
    return record
