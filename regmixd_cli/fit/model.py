"""The fitted model: its forms, settings, and prediction (docs/explanation/method.md).

xgboost is imported only inside functions (`import_xgboost`), so `regmixd --help` stays
instant. Training lives in `boosters` and `training`, files in `fit.files`. A fitted model
holds:
- the endpoint booster (mixture -> loss at T_p, plain RegMix), always;
- the transition booster(s) of the chosen form: one per stage (`per-stage`, features m..., loss)
  or one over all stages (`pooled`, features t, m..., loss), predicting the loss at the next
  grid point; or, for `curve-shift`, the mixture's static loss curve at t_1..t_{N+1}, from which
  transitions are derived (`curve_shift`): on a store of static runs ONE multi-output booster
  (`curve`, vector leaves: the offsets of t_1..t_N from the loss at T_p, and that loss), on a phased
  store (and in models fitted before the `curve` booster) one booster per grid point t_1..t_N
  (`point_l`, mixture so far -> loss at t_l; the endpoint booster is t_{N+1}).
  Endpoint-only stores (one observation per run) have no transition boosters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from regmixd_cli.errors import ModelError

PER_STAGE = "per-stage"
POOLED = "pooled"
CURVE_SHIFT = "curve-shift"
# One booster per stage over (mixture in force, the run's cumulative mixture, loss): the form
# that can tell two runs at one loss apart by what they trained on (phased proxies).
PER_STAGE_HISTORY = "per-stage-history"
AUTO = "auto"
FORMS = (PER_STAGE, POOLED, CURVE_SHIFT, PER_STAGE_HISTORY)
# Forms cross-validated by `auto` on a store of static runs (per-stage-history equals
# per-stage there: a static run's history is its mixture) and on a phased store.
STATIC_FORMS = (PER_STAGE, POOLED, CURVE_SHIFT)
PHASED_FORMS = FORMS
TREE_FORMS = (PER_STAGE, POOLED)  # forms whose boosters take the current loss as a feature
RESIDUAL_FORMS = (PER_STAGE, POOLED, PER_STAGE_HISTORY)  # boosters whose last feature is loss
HISTORY = "history"  # per-stage-history booster names: history_1..history_N
ENDPOINT = "endpoint"
POINT = "point"  # curve-shift: mixture -> loss at one grid point
CURVE = "curve"  # curve-shift on static runs: mixture -> the whole curve, one multi-output booster

Progress = Callable[[int, int], None]


# Training uses one thread on every machine: XGBoost's hist trees depend on the thread count
# (measured: 1 vs 2 threads give different boosters), so a fixed count keeps model bytes
# identical across machines. On these small tables one thread is also faster: 512 runs x 5
# transitions took 10.9 s with one thread and 94.7 s with two on a loaded 2-core machine.
# The cores are used by training independent boosters in parallel processes (`fit.parallel`).
FIT_THREADS = 1

_prediction_threads = 0  # 0: every available core


def set_prediction_threads(threads: int) -> None:
    """Threads of every booster loaded or trained from now on (`--jobs`); 0 = all cores."""
    global _prediction_threads
    _prediction_threads = max(0, int(threads))


def default_threads() -> int:
    """Threads for prediction (row-parallel, so any count gives the same numbers)."""
    from regmixd_cli.cores import available_cores

    return _prediction_threads or available_cores()


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
    # The `curve` booster's own rate, when cross-validation chose one (fit.crossval's
    # `choose_curve_rate`); None: `learning_rate`.
    curve_learning_rate: float | None = None

    def for_kind(self, kind: str) -> XGBSettings:
        """The settings one booster kind trains with (the curve booster may have its own rate)."""
        if kind == CURVE and self.curve_learning_rate is not None:
            return replace(self, learning_rate=self.curve_learning_rate)
        return self

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
    # Run-name prefixes of verification runs (`design --refine`): reported apart, and
    # preferred as evidence by `auto`.
    verify_prefixes: tuple[str, ...] = ()


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
            PER_STAGE_HISTORY: [*mix, *(f"h:{d}" for d in self.domains), "loss"],
        }[kind]

    def predict_curves(self, mixtures: np.ndarray) -> np.ndarray:
        """Curve-shift form: each mixture's predicted static loss at t_1..t_{N+1}, (C, N+1)."""
        m = np.asarray(mixtures, dtype=np.float32)
        if CURVE in self.boosters:  # one pass: offsets of t_1..t_N from the loss at T_p, then it
            curves = np.asarray(self.boosters[CURVE].inplace_predict(m), dtype=np.float64)
            curves = curves.reshape(m.shape[0], -1)
            curves[:, :-1] += curves[:, -1:]
            return curves
        names = [f"{POINT}_{j}" for j in range(1, self.n_switch_points + 1)] + [ENDPOINT]
        curves = np.empty((m.shape[0], len(names)), dtype=np.float64)
        for column, name in enumerate(names):
            curves[:, column] = self.boosters[name].inplace_predict(m)
        return curves

    def predict_transition(
        self,
        stage: int,
        mixtures: np.ndarray,
        loss: float | np.ndarray,
        history: np.ndarray | None = None,
    ) -> np.ndarray:
        """Stage j in 1..N: predicted l_{j+1} from (t_j, m, l_j); mixtures (C, K) float32.

        `history` ((K,) or (C, K)): the run's average mixture over [0, t_j), read by the
        per-stage-history form only; None takes each candidate as its own history (a run
        that trained on m all along).
        """
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
        elif self.form == PER_STAGE_HISTORY:
            features = np.empty((n_rows, 2 * n_domains + 1), dtype=np.float32)
            features[:, :n_domains] = mixtures
            features[:, n_domains:-1] = mixtures if history is None else history
            booster = self.boosters[f"{HISTORY}_{stage}"]
        else:
            features = np.empty((n_rows, n_domains + 1), dtype=np.float32)
            features[:, :-1] = mixtures
            booster = self.boosters[f"stage_{stage}"]
        features[:, -1] = loss
        pred: np.ndarray = booster.inplace_predict(features)
        if self.residual:
            pred += features[:, -1]
        return pred

    def prepare_transitions(self, mixtures: np.ndarray) -> Any:
        """The loss- and stage-independent part of the transitions of `mixtures`, to reuse
        across the switch points of a schedule (curve-shift: each mixture's curve; else None)."""
        if self.form == CURVE_SHIFT:
            return self.predict_curves(mixtures)
        return None

    def predict_prepared(
        self, prepared: Any, stage: int, mixtures: np.ndarray, loss: float | np.ndarray
    ) -> np.ndarray:
        """`predict_transition(stage, mixtures, loss)` from `prepare_transitions(mixtures)`:
        the same numbers, without predicting the curves again."""
        if prepared is None or self.form != CURVE_SHIFT:
            return self.predict_transition(stage, mixtures, loss)
        if not 1 <= stage <= self.n_switch_points:
            raise ValueError(f"stage {stage} outside 1..{self.n_switch_points}")
        return curve_shift(prepared, self.grid, stage, loss)

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

    # The state a schedule carries between switch points (fit.objective.ObjectiveModel carries
    # one loss per target; one target's state is its loss).
    @property
    def targets(self) -> tuple[str, ...]:
        """The target metrics: this one."""
        return (self.target,)

    @property
    def initial_state(self) -> float:
        """The state at t_1: the mean l_1 over the proxies."""
        return self.initial_loss

    def predict_state(
        self, stage: int, mixtures: np.ndarray, state: Any, history: np.ndarray | None = None
    ) -> np.ndarray:
        """The state at t_{j+1}: for one target, `predict_transition`."""
        return self.predict_transition(stage, mixtures, state, history)

    def objective_of(self, state: Any) -> Any:
        """The loss a state stands for: for one target, the state itself."""
        return state


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


def import_xgboost() -> Any:
    import xgboost

    return xgboost


# --------------------------------------------------------------------------- files


