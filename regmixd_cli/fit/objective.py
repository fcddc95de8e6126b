"""Several target metrics and one objective: `fit --target A=2 --target 'val/*' --objective`.

A model of several targets keeps one complete single-target model per metric (`members`, all
of one form, on one grid and one set of runs), so every target's prediction can be shown, and
an `Objective` that folds the targets' losses into the one number a schedule minimises:

- `mean`: the weighted mean of the targets' losses (weights normalised to sum to 1; none given
  means equal), as the RegMix-D paper averages its downstream tasks and olmix its tasks.
- `worst`: the largest of the targets' losses, each first measured against a reference loss
  when one is given (`--reference`: DoReMi's excess loss, loss minus the reference's loss) and
  scaled by its weight x the number of targets (equal weights: the plain maximum).

The state a schedule carries is then one loss per target (`initial_state`, `predict_state`);
`predict_transition` and `predict_endpoint` return the objective, so the search ranks
candidates by it exactly as it ranks one target's loss. Cross-validation uses the same folds
for every target (same runs, same seed), so the objective of the targets' out-of-fold
predictions is the objective's own out-of-fold prediction: the objective report has the same
shape as one target's, and `auto`, the guard and `--plot` read it unchanged.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regmixd_cli.domain import Store
from regmixd_cli.errors import InputError, ModelError, RegmixdError, UsageError
from regmixd_cli.fit.crossval import (
    BLIND_WARNING,
    MIN_RUNS_PER_FOLD,
    attach_evidence,
    check_folds,
    choose_form_by_evidence,
    cross_validate,
    cv_report,
    phased_evidence,
)
from regmixd_cli.fit.metrics import clean
from regmixd_cli.fit.model import AUTO, FitConfig, FittedModel, Progress
from regmixd_cli.fit.parallel import Executor
from regmixd_cli.fit.training import (
    check_form,
    cv_forms,
    fitted_from,
    loss_ranges,
    refit_boosters,
)
from regmixd_cli.fit.transitions import LossTable, build_loss_table, name_some
from regmixd_cli.weights import resolve_prior

MEAN = "mean"
WORST = "worst"
OBJECTIVES = (MEAN, WORST)
GLOB_CHARS = "*?["
MIN_WEIGHT = 1e-9  # a normalised weight below this is a target that counts for nothing


@dataclass(frozen=True, slots=True)
class Objective:
    """How the targets' losses fold into one number (lower is better)."""

    kind: str
    metrics: tuple[str, ...]
    weights: tuple[float, ...]  # normalised: they sum to 1
    reference: tuple[float, ...] | None = None  # worst only: each target's reference loss
    reference_source: str | None = None

    def combine(self, losses: np.ndarray) -> np.ndarray:
        """(..., T) per-target losses -> (...) objective values."""
        values = np.asarray(losses, dtype=np.float64)
        w = np.asarray(self.weights, dtype=np.float64)
        if self.kind == MEAN:
            result: np.ndarray = values @ w
            return result
        if self.reference is not None:
            values = values - np.asarray(self.reference, dtype=np.float64)
        worst: np.ndarray = (values * (w * len(w))).max(axis=-1)
        return worst

    @property
    def label(self) -> str:
        """A name for the objective where one metric name used to be (tables, provenance)."""
        equal = len(set(self.weights)) == 1
        parts = [m if equal else f"{m}={w:.4g}" for m, w in zip(self.metrics, self.weights,
                                                                  strict=True)]
        excess = " - reference" if self.reference is not None else ""
        return f"{self.kind}({', '.join(parts)}{excess})"

    def record(self) -> dict[str, Any]:
        """JSON-ready: what model.json, reports and schedules record."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "metrics": list(self.metrics),
            "weights": [round(w, 12) for w in self.weights],
        }
        if self.reference is not None:
            out["reference"] = dict(zip(self.metrics, self.reference, strict=True))
            out["reference_source"] = self.reference_source
        return out

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Objective:
        """The inverse of `record` (ValueError on anything else)."""
        def number(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise ValueError(f"objective: {value!r} is not a finite number")
            return float(value)

        kind, names, reference = data["kind"], data["metrics"], data.get("reference")
        if not isinstance(names, list) or not all(isinstance(m, str) and m for m in names) \
                or len(set(names)) != len(names):
            raise ValueError("objective: `metrics` is not a list of distinct metric names")
        metrics = tuple(names)
        weights = tuple(number(w) for w in data["weights"])
        if kind not in OBJECTIVES or len(metrics) < 2 or len(weights) != len(metrics):
            raise ValueError("objective: kind, metrics and weights do not agree")
        if min(weights) <= 0 or max(weights) > 1 \
                or not math.isclose(math.fsum(weights), 1.0, abs_tol=1e-9):
            raise ValueError("objective: `weights` are not positive numbers summing to 1")
        if reference is not None and (kind != WORST or not isinstance(reference, dict)):
            raise ValueError("objective: `reference` is not {metric: loss} of a worst objective")
        ref = None if reference is None else tuple(number(reference[m]) for m in metrics)
        return cls(kind, metrics, weights, ref, data.get("reference_source"))


def parse_targets(
    specs: Sequence[str], metrics: Sequence[str], where: str
) -> list[tuple[str, float]]:
    """`--target METRIC[=W]` values -> [(metric, weight)] in the order given.

    A pattern with `*`, `?` or `[` selects every store metric it matches (in store order), each
    with the pattern's weight. A store metric named exactly as given (with or without `=W`) is
    that metric, even when its name holds `=`, `*`, `?` or `[`. Unknown metrics, globs that
    match nothing, a metric named twice and weights that are not positive finite numbers are
    UsageErrors naming what was given.
    """
    chosen: list[tuple[str, float]] = []
    seen: set[str] = set()
    known = set(metrics)
    for spec in specs:
        name, weight = spec, 1.0
        if "=" in spec and spec not in known:  # a metric may itself be named 'a=b'
            name, _, text = spec.rpartition("=")
            try:
                weight = float(text)
            except ValueError:
                raise UsageError(f"--target {spec!r}: the weight after '=' must be a number, "
                                 "e.g. --target val/pile_cc=2") from None
            if not math.isfinite(weight) or weight <= 0:
                raise UsageError(f"--target {spec!r}: a weight must be a positive number")
        if not name:
            raise UsageError(f"--target {spec!r}: give a metric name"
                             + (" before '='" if "=" in spec else ""))
        if name not in known and any(c in name for c in GLOB_CHARS):
            matched = [m for m in metrics if fnmatch.fnmatchcase(m, name)]
            if not matched:
                raise UsageError(f"{where}: --target {name!r} matches no metric; the store has "
                                 f"{', '.join(metrics)}")
        elif name not in metrics:
            raise UsageError(f"{where}: no metric {name!r} (--target); choose from "
                             f"{', '.join(metrics)}")
        else:
            matched = [name]
        for metric in matched:
            if metric in seen:
                raise UsageError(f"--target: metric {metric!r} is selected twice; name each "
                                 "metric once")
            seen.add(metric)
            chosen.append((metric, weight))
    return chosen


def make_objective(
    targets: Sequence[tuple[str, float]],
    kind: str,
    reference: Mapping[str, float] | None = None,
    reference_source: str | None = None,
) -> Objective:
    """The objective over `targets` (weights normalised); `reference` only for `worst`."""
    if kind not in OBJECTIVES:
        raise UsageError(f"--objective {kind!r}: choose {' or '.join(OBJECTIVES)}")
    if reference is not None and kind != WORST:
        raise UsageError("--reference measures each target against a reference loss for "
                         "--objective worst; give --objective worst, or drop --reference")
    metrics = tuple(m for m, _ in targets)
    largest = max(w for _, w in targets)  # scaled first: weights of 1e308 do not overflow
    total = math.fsum(w / largest for _, w in targets)
    weights = tuple(w / largest / total for _, w in targets)
    for metric, weight in zip(metrics, weights, strict=True):
        if weight < MIN_WEIGHT:  # model.json keeps 12 digits: it would read as 0
            raise UsageError(f"--target {metric}: its weight is {weight:.3g} of the total, so "
                             "the target counts for nothing; raise its weight or drop it")
    ref = None
    if reference is not None:
        missing = [m for m in metrics if m not in reference]
        if missing:
            raise UsageError(f"--reference {reference_source}: has no loss for "
                             f"{name_some(missing)}; give one for every target")
        ref = tuple(float(reference[m]) for m in metrics)
        if not all(math.isfinite(r) for r in ref):
            raise UsageError(f"--reference {reference_source}: reference losses must be finite")
    return Objective(kind, metrics, weights, ref, reference_source)


@dataclass(frozen=True)
class ObjectiveModel:
    """One fitted model per target and the objective over them; reads like a FittedModel.

    The state carried from switch point to switch point is a vector of per-target losses
    (`initial_state`, `predict_state`); `predict_transition`, `predict_endpoint`, `rollout`
    and `initial_loss` speak the objective.
    """

    objective: Objective
    members: tuple[FittedModel, ...]
    report: dict[str, Any]
    loss_ranges: tuple[tuple[float, float], ...]
    cv_predictions: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- what every consumer of a model reads, shared by the members
    @property
    def domains(self) -> tuple[str, ...]:
        return self.members[0].domains

    @property
    def grid(self) -> tuple[float, ...]:
        return self.members[0].grid

    @property
    def proxy_steps(self) -> float:
        return self.members[0].proxy_steps

    @property
    def prior(self) -> dict[str, float]:
        return self.members[0].prior

    @property
    def prior_source(self) -> str:
        return self.members[0].prior_source

    @property
    def form(self) -> str | None:
        return self.members[0].form

    @property
    def residual(self) -> bool:
        return self.members[0].residual

    @property
    def store_sha256(self) -> str:
        return self.members[0].store_sha256

    @property
    def settings(self) -> dict[str, Any]:
        return self.members[0].settings

    @property
    def n_switch_points(self) -> int:
        return self.members[0].n_switch_points

    @property
    def has_transitions(self) -> bool:
        return self.members[0].has_transitions

    @property
    def boosters(self) -> Mapping[str, Any]:
        """Every member's boosters, named `t<i>_<name>` (i from 1, in target order)."""
        return {f"t{i}_{name}": b for i, m in enumerate(self.members, start=1)
                for name, b in m.boosters.items()}

    @property
    def target(self) -> str:
        return self.objective.label

    @property
    def targets(self) -> tuple[str, ...]:
        return self.objective.metrics

    def features(self, kind: str) -> list[str]:
        return self.members[0].features(kind)

    # ---- the state: one loss per target
    @property
    def initial_state(self) -> np.ndarray:
        return np.asarray([m.initial_loss for m in self.members], dtype=np.float64)

    @property
    def initial_loss(self) -> float:
        return float(self.objective.combine(self.initial_state))

    def objective_of(self, state: Any) -> Any:
        """Per-target losses (..., T) -> the objective (...)."""
        return self.objective.combine(np.asarray(state, dtype=np.float64))

    def predict_state(
        self, stage: int, mixtures: np.ndarray, state: Any, history: np.ndarray | None = None
    ) -> np.ndarray:
        """(C, T): every target's predicted loss at t_{j+1} from its own loss in `state`
        ((T,) for all candidates alike, or (C, T))."""
        losses = np.asarray(state, dtype=np.float64)
        out = np.empty((mixtures.shape[0], len(self.members)), dtype=np.float64)
        for i, member in enumerate(self.members):
            out[:, i] = member.predict_transition(stage, mixtures, losses[..., i], history)
        return out

    def predict_transition(
        self, stage: int, mixtures: np.ndarray, loss: Any, history: np.ndarray | None = None
    ) -> np.ndarray:
        """The objective at t_{j+1} from the per-target state `loss`."""
        result: np.ndarray = self.objective.combine(
            self.predict_state(stage, mixtures, loss, history))
        return result

    def prepare_transitions(self, mixtures: np.ndarray) -> Any:
        return [m.prepare_transitions(mixtures) for m in self.members]

    def predict_prepared(
        self, prepared: Any, stage: int, mixtures: np.ndarray, loss: Any
    ) -> np.ndarray:
        losses = np.asarray(loss, dtype=np.float64)
        columns = [m.predict_prepared(p, stage, mixtures, losses[..., i])
                   for i, (m, p) in enumerate(zip(self.members, prepared, strict=True))]
        result: np.ndarray = self.objective.combine(np.stack(columns, axis=-1))
        return result

    def predict_endpoint_targets(self, mixtures: np.ndarray) -> np.ndarray:
        """(C, T): every target's RegMix endpoint prediction."""
        return np.stack([np.asarray(m.predict_endpoint(mixtures), dtype=np.float64)
                         for m in self.members], axis=-1)

    def predict_endpoint(self, mixtures: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.objective.combine(self.predict_endpoint_targets(mixtures))
        return result

    def rollout_states(self, mixtures: np.ndarray, initial: Any) -> np.ndarray:
        """(C, N+1, T): every target's loss from the state `initial` on, mixtures held."""
        n_rows = mixtures.shape[0]
        paths = np.empty((n_rows, self.n_switch_points + 1, len(self.members)))
        paths[:, 0] = np.asarray(initial, dtype=np.float64)
        for stage in range(1, self.n_switch_points + 1):
            paths[:, stage] = self.predict_state(stage, mixtures, paths[:, stage - 1])
        return paths

    def rollout(self, mixtures: np.ndarray, initial: Any) -> np.ndarray:
        """(C, N+1) objective values along the rollout from the per-target state `initial`."""
        result: np.ndarray = self.objective.combine(self.rollout_states(mixtures, initial))
        return result

    def target_losses(self, state: Any) -> dict[str, float]:
        """{metric: loss} of one state (T,)."""
        values = np.asarray(state, dtype=np.float64).reshape(-1)
        return {m: float(v) for m, v in zip(self.targets, values, strict=True)}


def objective_table(tables: Sequence[LossTable], objective: Objective) -> LossTable:
    """A LossTable whose losses are the objective of the targets' losses (same runs)."""
    stacked = np.stack([t.losses for t in tables], axis=-1)
    return dataclasses.replace(tables[0], target=objective.label,
                               losses=objective.combine(stacked))


def _restrict(table: LossTable, runs: Sequence[str]) -> LossTable:
    index = {r: i for i, r in enumerate(table.runs)}
    rows = np.asarray([index[r] for r in runs], dtype=np.int64)
    return dataclasses.replace(
        table,
        runs=tuple(runs),
        mixtures=table.mixtures[rows],
        losses=table.losses[rows],
        in_force=None if table.in_force is None else table.in_force[rows],
        history=None if table.history is None else table.history[rows],
        on_grid=None if table.on_grid is None else table.on_grid[rows],
        grid_plans=None if table.grid_plans is None else table.grid_plans[rows],
    )


def loss_tables(
    store: Store, metrics: Sequence[str], config: FitConfig, where: str,
    error: type[RegmixdError] = UsageError,
    grid_fix: str | None = None,
) -> tuple[list[LossTable], list[str]]:
    """One LossTable per target on ONE grid (the first target's) and ONE set of runs (those
    usable for every target), and the runs left out because some target cannot use them.

    A target logged once per run (endpoint only) next to one with a loss curve is an `error`
    unless one grid point was asked for (`--switch-points 0`): the targets share one grid."""
    first = build_loss_table(store, metrics[0], n_switch_points=config.n_switch_points,
                             intervals=config.intervals, where=where, grid_fix=grid_fix)
    grid = config.intervals if config.intervals is not None else first.grid
    tables = [first] + [
        build_loss_table(store, m, n_switch_points=config.n_switch_points, intervals=grid,
                         where=where, grid_fix=grid_fix)
        for m in metrics[1:]
    ]
    one_point = (len(config.intervals) == 1 if config.intervals is not None
                 else config.n_switch_points == 0)
    logs = {t.endpoint_logs for t in tables}
    if len(logs) > 1 and not one_point:
        point = next(t.target for t in tables if t.endpoint_logs)
        curve = next(t.target for t in tables if not t.endpoint_logs)
        raise error(f"{where}: target {point!r} is logged once per run (endpoint only) but "
                    f"{curve!r} along the run; the targets of one model share one grid: give "
                    f"--switch-points 0 (the endpoint model for every target) or drop {point}")
    common = set(first.runs)
    for table in tables[1:]:
        common &= set(table.runs)
    runs = [r for r in first.runs if r in common]
    dropped = sorted({r for t in tables for r in t.runs} - common)
    return [_restrict(t, runs) for t in tables], dropped


def check_common_runs(
    tables: Sequence[LossTable], dropped: Sequence[str], metrics: Sequence[str], folds: int,
    where: str, error: type[RegmixdError] = InputError,
) -> None:
    """Enough runs log every target (`folds` = 0: at least one), or an `error` that says the
    runs were left out for lacking a target (not for being short)."""
    need = MIN_RUNS_PER_FOLD * folds if folds >= 2 else 1
    if not dropped or tables[0].n_runs >= need:
        return
    raise error(
        f"{where}: only {tables[0].n_runs} run(s) log every target ({', '.join(metrics)}); "
        f"{len(dropped)} run(s) lack one of them ({name_some(dropped)})"
        + (f", and {folds}-fold cross-validation needs at least {need}" if folds >= 2 else "")
        + "; log every target in the same runs, or drop a --target"
    )


def check_reference(objective: Objective, tables: Sequence[LossTable]) -> None:
    """A `--reference` on the scale of the losses: loss - reference keeps the losses' precision
    (a reference of 1e308 would make every run's excess loss the same number) and the scaled
    excess losses are finite; else a UsageError naming the reference and the metric."""
    if objective.reference is None:
        return
    scale = np.asarray(objective.weights, dtype=np.float64) * len(objective.weights)
    for i, (metric, ref, table) in enumerate(zip(objective.metrics, objective.reference,
                                                 tables, strict=True)):
        losses = table.losses[np.isfinite(table.losses)]
        if not losses.size:
            continue
        excess = losses - ref
        lost = np.abs((excess + ref) - losses) > 1e-9 * np.maximum(1.0, np.abs(losses))
        if lost.any() or not np.isfinite(excess * scale[i]).all():
            raise UsageError(
                f"--reference {objective.reference_source}: the reference loss of {metric!r} "
                f"({ref:g}) is far off the scale of its losses ({losses.min():.4g}.."
                f"{losses.max():.4g}); give a reference loss on the losses' scale"
            )


def fit_objective(
    store: Store,
    config: FitConfig,
    objective: Objective,
    progress: Progress | None = None,
    where: str = "store",
    pool: Executor | None = None,
) -> ObjectiveModel:
    """Fit one model per target on the same runs and folds, and choose ONE form for all of
    them by the objective's held-out evidence (as `fit_model` chooses for one target)."""
    check_form(config)
    tables, dropped = loss_tables(store, objective.metrics, config, where)
    check_common_runs(tables, dropped, objective.metrics, config.folds, where)
    check_reference(objective, tables)
    table = objective_table(tables, objective)
    check_folds(table.n_runs, config.folds, objective.label, where, len(table.short),
                table.grid[-1])
    prior = resolve_prior(config.prior, table.domains, table.mixtures.mean(axis=0).tolist())
    forms = cv_forms(table, config.form)
    n_targets, steps = len(tables), config.folds + 1

    def tick(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total: progress(offset * steps + min(done, steps - 1),
                                            n_targets * steps)

    cvs = [cross_validate(t, config, forms, tick(i), pool) for i, t in enumerate(tables)]
    preds = {key: objective.combine(np.stack([cv.preds[key] for cv in cvs], axis=-1))
             for key in cvs[0].preds}
    evidence = phased_evidence(table, forms, preds, config.verify_prefixes)
    chosen, reason, blind = choose_form_by_evidence(config.form, forms, table, preds, evidence)
    if config.form == AUTO and chosen is not None:
        reason = f"{reason}; one form for every target, by the objective's evidence"

    members = []
    for t, cv in zip(tables, cvs, strict=True):
        # Each target's curve booster rate, as its CV chose it.
        member_config = dataclasses.replace(config, xgb=cv.xgb)
        boosters, final_rounds = refit_boosters(t, member_config, chosen, cv.rounds, pool)
        member_report = cv_report(t, member_config, forms, cv.preds, cv.rounds, chosen, reason,
                                  final_rounds, cv.curve_rate)
        members.append(fitted_from(store, t, member_config, prior, chosen, member_report,
                                   boosters, {"truth": t.losses, **cv.preds}))
    if progress is not None:
        progress(n_targets * steps, n_targets * steps)

    report = cv_report(table, config, forms, preds, {}, chosen, reason, {})
    report["objective"] = objective.record()
    report["targets"] = {m.target: _target_summary(m.report, chosen) for m in members}
    attach_evidence(report, table, evidence, config.verify_prefixes)
    warnings = [BLIND_WARNING] if blind else []
    if dropped:
        warnings.append(f"{len(dropped)} run(s) lack a usable value of some target and were "
                        f"left out of every target: {name_some(dropped)}")
    if warnings:
        report["warnings"] = warnings
    return ObjectiveModel(
        objective=objective,
        members=tuple(members),
        report=report,
        loss_ranges=loss_ranges(table.losses),
        cv_predictions={"truth": table.losses, **preds},
    )


def _target_summary(report: Mapping[str, Any], form: str | None) -> dict[str, Any]:
    """One target's held-out scores in the objective's report."""
    endpoint = report["endpoint"]
    out: dict[str, Any] = {"endpoint": endpoint["endpoint"]}
    if form is not None and "rollout" in endpoint:
        out["rollout"] = endpoint["rollout"][form]
    return out


def reference_losses(model: FittedModel | ObjectiveModel) -> dict[str, float]:
    """`--reference MODEL`: each of its targets' predicted loss at T_p for its own prior
    mixture (a run trained on the reference mixture, as DoReMi's reference model)."""
    prior = np.asarray([[model.prior[d] for d in model.domains]], dtype=np.float32)
    if isinstance(model, ObjectiveModel):
        values = model.predict_endpoint_targets(prior)[0]
        return {m: float(v) for m, v in zip(model.targets, values, strict=True)}
    return {model.target: float(np.asarray(model.predict_endpoint(prior)).reshape(-1)[0])}


def check_reference_file(data: Any, where: str) -> dict[str, float]:
    """`--reference FILE`: a JSON object {metric: loss} of finite numbers."""
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{where}: a reference file is a JSON object {{metric: loss}}")
    out: dict[str, float] = {}
    for metric, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise UsageError(f"{where}: reference loss of {metric!r} must be a finite number")
        out[str(metric)] = float(value)
    return out


def check_same_members(members: Sequence[FittedModel], where: str) -> None:
    """Members of one model share domains, grid, form and prior, or the file is corrupt."""
    first = members[0]
    for member in members[1:]:
        if (member.domains, member.grid, member.form, member.prior) != (
                first.domains, first.grid, first.form, first.prior):
            raise ModelError(f"{where}: its targets disagree on domains, grid, form or prior "
                             "(edited or corrupt); fit it again")


def clean_state(values: Any) -> list[float | None]:
    """Per-target losses for JSON."""
    return [clean(float(v)) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


# Every model a command may load: one target, or several and their objective.
AnyModel = FittedModel | ObjectiveModel
