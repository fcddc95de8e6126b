"""Fit, predict, save and load the transition and endpoint regressors (SPEC 1.3, 3.3).

The only module that imports xgboost, and only inside functions (cross-validation, in
`crossval`, trains through `fit_booster`). A fitted model holds:
- the endpoint booster (mixture -> loss at T_p, plain RegMix), always;
- the transition booster(s) of the chosen form: one per stage (`per-stage`, features m..., loss)
  or one over all stages (`pooled`, features t, m..., loss), predicting the loss at the next
  grid point; or, for `curve-shift`, one booster per grid point t_1..t_N (mixture -> loss at
  t_l; the endpoint booster is t_{N+1}) from which transitions are derived (`curve_shift`).
  Endpoint-only stores (one observation per run) have no transition boosters.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regmixd_cli.domain import Store
from regmixd_cli.errors import ModelError, UsageError
from regmixd_cli.fit.metrics import clean
from regmixd_cli.fit.transitions import LossTable, build_loss_table, resolve_target

PER_STAGE = "per-stage"
POOLED = "pooled"
CURVE_SHIFT = "curve-shift"
AUTO = "auto"
FORMS = (PER_STAGE, POOLED, CURVE_SHIFT)
TREE_FORMS = (PER_STAGE, POOLED)  # forms whose boosters take the current loss as a feature
ENDPOINT = "endpoint"
POINT = "point"  # curve-shift: mixture -> loss at one grid point

Progress = Callable[[int, int], None]


# Training uses one thread on every machine: XGBoost's hist trees depend on the thread count
# (measured: 1 vs 2 threads give different boosters), so a fixed count keeps model bytes
# identical across machines. On these small tables one thread is also faster: 512 runs x 5
# transitions took 10.9 s with one thread and 94.7 s with two on a loaded 2-core machine.
FIT_THREADS = 1


def default_threads() -> int:
    """Threads for prediction (row-parallel, so any count gives the same numbers)."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class XGBSettings:
    """Booster hyperparameters; defaults chosen by measurement (docs/DECISIONS.md)."""

    learning_rate: float = 0.03
    max_depth: int = 3
    max_rounds: int = 2000
    early_stopping_rounds: int = 50
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_fraction: float = 0.2
    residual: bool = True  # transitions learn loss_{l+1} - loss_l, reported as absolute loss
    nthread: int = FIT_THREADS

    def params(self, seed: int) -> dict[str, Any]:
        """The xgboost parameter dict."""
        return {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "nthread": self.nthread,
            "seed": seed,
            "verbosity": 0,
        }


@dataclass(frozen=True, slots=True)
class FitConfig:
    """What `regmixd fit` was asked to do."""

    target: str | None = None
    n_switch_points: int = 5
    intervals: tuple[float, ...] | None = None
    form: str = AUTO
    folds: int = 5
    prior: str | None = None
    seed: int = 0
    xgb: XGBSettings = field(default_factory=XGBSettings)


@dataclass(frozen=True)
class FittedModel:
    """A fitted model: metadata, the cross-validation report, and the boosters."""

    domains: tuple[str, ...]
    target: str
    grid: tuple[float, ...]
    proxy_steps: float
    prior: dict[str, float]
    prior_source: str
    form: str | None
    loss_ranges: tuple[tuple[float, float], ...]
    initial_loss: float
    report: dict[str, Any]
    boosters: Mapping[str, Any] = field(repr=False, compare=False)
    residual: bool = True
    store_sha256: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    # Out-of-fold CV predictions and the true losses ("truth"), for `fit --plot`; kept in
    # memory only (not in model.json), so empty for a loaded model.
    cv_predictions: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_switch_points(self) -> int:
        """N, the number of switch points (0 for an endpoint-only model)."""
        return len(self.grid) - 1

    @property
    def has_transitions(self) -> bool:
        """Whether the model can predict transitions (it was fitted on trajectories)."""
        return self.form is not None

    def features(self, kind: str) -> list[str]:
        """Feature order of a booster kind: endpoint, per-stage or pooled."""
        mix = [f"m:{d}" for d in self.domains]
        return {
            ENDPOINT: mix,
            PER_STAGE: [*mix, "loss"],
            POOLED: ["t", *mix, "loss"],
            CURVE_SHIFT: mix,
        }[kind]

    def predict_curves(self, mixtures: np.ndarray) -> np.ndarray:
        """Curve-shift form: each mixture's predicted static loss at t_1..t_{N+1}, (C, N+1)."""
        m = np.asarray(mixtures, dtype=np.float32)
        names = [f"{POINT}_{j}" for j in range(1, self.n_switch_points + 1)] + [ENDPOINT]
        curves = np.empty((m.shape[0], len(names)), dtype=np.float64)
        for column, name in enumerate(names):
            curves[:, column] = self.boosters[name].inplace_predict(m)
        return curves

    def predict_transition(
        self, stage: int, mixtures: np.ndarray, loss: float | np.ndarray
    ) -> np.ndarray:
        """Stage j in 1..N: predicted l_{j+1} from (t_j, m, l_j); mixtures (C, K) float32."""
        if self.form is None:
            raise ModelError(
                "this model was fitted on endpoint losses only and has no transition model; "
                "use --static, or fit on a store with trajectories"
            )
        if not 1 <= stage <= self.n_switch_points:
            raise ValueError(f"stage {stage} outside 1..{self.n_switch_points}")
        if self.form == CURVE_SHIFT:
            curves = self.predict_curves(mixtures)
            return curve_shift(curves, self.grid, stage, loss)
        n_rows, n_domains = mixtures.shape
        # One allocation: the feature matrix in the booster's own column order.
        if self.form == POOLED:
            features = np.empty((n_rows, n_domains + 2), dtype=np.float32)
            features[:, 0] = self.grid[stage - 1]
            features[:, 1:-1] = mixtures
            booster = self.boosters[POOLED]
        else:
            features = np.empty((n_rows, n_domains + 1), dtype=np.float32)
            features[:, :-1] = mixtures
            booster = self.boosters[f"stage_{stage}"]
        features[:, -1] = loss
        pred: np.ndarray = booster.inplace_predict(features)
        if self.residual:
            pred += features[:, -1]
        return pred

    def predict_endpoint(self, mixtures: np.ndarray) -> np.ndarray:
        """RegMix: mixtures (C, K) -> predicted loss at T_p."""
        pred: np.ndarray = self.boosters[ENDPOINT].inplace_predict(
            np.asarray(mixtures, dtype=np.float32)
        )
        return pred

    def rollout(self, mixtures: np.ndarray, initial: np.ndarray | float) -> np.ndarray:
        """Apply the transitions from l_1 to l_{N+1}; returns (C, N+1) losses (column 0 = l_1)."""
        n_rows = mixtures.shape[0]
        path = np.empty((n_rows, self.n_switch_points + 1), dtype=np.float64)
        path[:, 0] = initial
        for stage in range(1, self.n_switch_points + 1):
            path[:, stage] = self.predict_transition(stage, mixtures, path[:, stage - 1])
        return path


def curve_shift(
    curves: np.ndarray, grid: tuple[float, ...], stage: int, loss: float | np.ndarray
) -> np.ndarray:
    """Next loss from (t_j, m, l) by moving along m's own static loss curve.

    The run's state is its loss: a run at loss l that trains on m from now on behaves like m's
    static run from the moment tau at which that run reached l, so the prediction is
    g_m(tau + t_{j+1} - t_j). This extrapolates off the proxies' manifold (a schedule's history
    differs from every static proxy) along a physically meaningful direction, where a tree fed
    (m, l) jointly has no data. Curves are interpolated linearly in log t (loss curves are
    close to power laws; linear in t is measurably worse), made non-increasing, and extended
    past their ends with the end segments' slopes. A run never gets worse by training more.
    """
    n_rows, n_points = curves.shape
    g = np.minimum.accumulate(curves, axis=1)
    # Strictly decreasing, so every loss level has one time (flat stretches are ties).
    g -= 1e-9 * np.arange(n_points)
    log_t = np.log(np.asarray(grid, dtype=np.float64))
    times = np.broadcast_to(log_t, g.shape)
    level = np.broadcast_to(np.asarray(loss, dtype=np.float64), (n_rows,))
    # tau: when m's curve reaches the current loss (descending curve: interpolate on -g).
    tau = _interp_rows(-level, -g, times)
    # Extrapolation far beyond the curve is a guess at best: keep tau within e^5 of the grid.
    tau = np.clip(tau, log_t[0] - 5.0, log_t[-1] + 5.0)
    step = float(grid[stage] - grid[stage - 1])
    ahead = np.log(np.exp(tau) + step)
    result: np.ndarray = np.minimum(_interp_rows(ahead, times, g), level)
    return result


def _interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation of (xp[i], fp[i]) at x[i], extended by the end slopes."""
    n_rows, n_points = xp.shape
    right = np.clip((xp < x[:, None]).sum(axis=1), 1, n_points - 1)
    rows = np.arange(n_rows)
    x0, x1 = xp[rows, right - 1], xp[rows, right]
    f0, f1 = fp[rows, right - 1], fp[rows, right]
    span = np.where(x1 > x0, x1 - x0, 1e-12)
    result: np.ndarray = f0 + (f1 - f0) / span * (x - x0)
    return result


# --------------------------------------------------------------------------- fitting


def _xgb() -> Any:
    import xgboost

    return xgboost


def _train(
    settings: XGBSettings,
    seed: int,
    x: np.ndarray,
    y: np.ndarray,
    rounds: int,
    early: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Any, int]:
    """Train one booster; with `early`, stop on that split and return the best round count."""
    xgb = _xgb()
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


def fit_model(
    store: Store, config: FitConfig, progress: Progress | None = None, where: str = "store"
) -> FittedModel:
    """Fit the endpoint model and the transition model(s), with a grouped-CV report.

    `where` names the store in error messages (its path, for the CLI).
    """
    # crossval builds on this module's boosters, so it is imported here, not at the top.
    from regmixd_cli.fit.crossval import check_folds, choose_form, cross_validate, cv_report
    from regmixd_cli.files import dumps_json
    from regmixd_cli.weights import resolve_prior

    if config.form not in (AUTO, *FORMS):
        raise UsageError(f"--model {config.form!r}: choose auto, {', '.join(FORMS)}")
    target = resolve_target(store, config.target, where)
    table = build_loss_table(
        store,
        target,
        n_switch_points=config.n_switch_points,
        intervals=config.intervals,
        where=where,
    )
    check_folds(table.n_runs, config.folds, target, where)
    prior = resolve_prior(config.prior, table.domains, table.mixtures.mean(axis=0).tolist())
    forms: tuple[str, ...] = () if table.endpoint_only else FORMS
    preds, rounds = cross_validate(table, config, forms, progress)
    chosen, reason = choose_form(config.form, forms, table, preds)

    # Refit on every usable run, for the median round count CV's early stopping found.
    settings = config.xgb
    everyone = np.arange(table.n_runs)
    boosters: dict[str, Any] = {}
    final_rounds: dict[str, int] = {}
    for name, kind, stage in booster_kinds(table, (chosen,) if chosen else ()):
        n_rounds = int(math.ceil(float(np.median(rounds[name]))))
        boosters[name], _ = fit_booster(
            table, everyone, kind, stage, settings, config.seed, n_rounds
        )
        boosters[name].set_param({"nthread": default_threads()})  # prediction is row-parallel
        final_rounds[name] = n_rounds
    if progress is not None:
        progress(config.folds + 1, config.folds + 1)

    report = cv_report(table, config, forms, preds, rounds, chosen, reason, final_rounds)
    ranges = tuple(
        (float(table.losses[:, j].min()), float(table.losses[:, j].max()))
        for j in range(table.losses.shape[1])
    )
    return FittedModel(
        domains=table.domains,
        target=target,
        grid=table.grid,
        proxy_steps=table.proxy_steps,
        prior=prior.as_dict(table.domains),
        prior_source=prior.source,
        form=chosen,
        loss_ranges=ranges,
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
        cv_predictions={"truth": table.losses, **preds},
    )


# --------------------------------------------------------------------------- files


def _versions() -> dict[str, str]:
    from regmixd_cli._version import __version__

    return {"regmixd": __version__, "xgboost": _xgb().__version__, "numpy": np.__version__}


def model_metadata(model: FittedModel) -> dict[str, Any]:
    """Everything in model.json except the booster file hashes."""
    kinds = [ENDPOINT] + ([model.form] if model.form else [])
    return {
        "domains": list(model.domains),
        "target": model.target,
        "grid": list(model.grid),
        "proxy_steps": model.proxy_steps,
        "prior": model.prior,
        "prior_source": model.prior_source,
        "form": model.form,
        "residual": model.residual,
        "features": {kind: model.features(kind) for kind in kinds},
        "loss_ranges": [list(r) for r in model.loss_ranges],
        "initial_loss": clean(model.initial_loss, 12),
        "report": model.report,
        "store_sha256": model.store_sha256,
        "settings": model.settings,
        "versions": _versions(),
    }


def save_model(
    path: Path,
    model: FittedModel,
    extra: Mapping[str, Any] | None = None,
    extra_blobs: Mapping[str, bytes] | None = None,
) -> None:
    """Write the model directory (model.json + one .ubj per booster) atomically.

    `extra` adds keys to model.json and `extra_blobs` files (e.g. an ensemble's replicas).
    """
    from regmixd_cli.fit.files import write_model_dir

    blobs = {f"{name}.ubj": bytes(b.save_raw("ubj")) for name, b in model.boosters.items()}
    blobs.update(extra_blobs or {})
    write_model_dir(Path(path), model_metadata(model) | dict(extra or {}), blobs)


def load_model(path: Path) -> FittedModel:
    """Read and verify a model directory; any problem is a ModelError naming the file."""
    from regmixd_cli.fit.files import MODEL_FILE, read_model_dir

    path = Path(path)
    meta, blobs = read_model_dir(path)
    xgb = _xgb()
    try:
        domains = tuple(str(d) for d in meta["domains"])
        grid = tuple(float(t) for t in meta["grid"])
        form = meta["form"]
        if form not in (None, *FORMS):
            raise ValueError(f"unknown form {form!r}")
        names = [ENDPOINT]
        if form == POOLED:
            names.append(POOLED)
        elif form == PER_STAGE:
            names += [f"stage_{j}" for j in range(1, len(grid))]
        elif form == CURVE_SHIFT:
            names += [f"{POINT}_{j}" for j in range(1, len(grid))]
        boosters = {}
        for name in names:
            booster = xgb.Booster()
            booster.load_model(bytearray(blobs[f"{name}.ubj"]))
            widths = {len(f) for f in meta.get("features", {}).values()}
            if widths and booster.num_features() not in widths:  # booster of another model
                raise ValueError(f"{name}.ubj has {booster.num_features()} features, "
                                 f"model.json lists {sorted(widths)}")
            booster.set_param({"nthread": default_threads()})
            boosters[name] = booster
        initial = meta["initial_loss"]
        return FittedModel(
            domains=domains,
            target=str(meta["target"]),
            grid=grid,
            proxy_steps=float(meta["proxy_steps"]),
            prior={str(k): float(v) for k, v in meta["prior"].items()},
            prior_source=str(meta["prior_source"]),
            form=form,
            loss_ranges=tuple((float(a), float(b)) for a, b in meta["loss_ranges"]),
            initial_loss=math.nan if initial is None else float(initial),
            report=dict(meta["report"]),
            boosters=boosters,
            residual=bool(meta["residual"]),
            store_sha256=str(meta["store_sha256"]),
            settings=dict(meta["settings"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, xgb.core.XGBoostError) as exc:
        raise ModelError(
            f"{path / MODEL_FILE}: incomplete or unreadable model ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); fit it again with `regmixd fit`"
        ) from None


def model_hash(path: Path) -> str:
    """The sha256 of model.json, which records every booster's hash."""
    from regmixd_cli.files import sha256_file
    from regmixd_cli.fit.files import MODEL_FILE

    return sha256_file(Path(path) / MODEL_FILE)
