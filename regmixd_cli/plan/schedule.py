"""Offline schedules (RegMix-D Algorithm 1), static RegMix, schedule JSON v1.

Conventions recorded in docs/DECISIONS.md:
- Proxy interval ends t_l map to target steps S_l = round_half_up(t_l * T_target / T_p); stages
  are half-open [S_l, S_{l+1}), contiguous, covering [0, T_target). T_target defaults to T_p.
- Weights are written rounded to 6 decimals and still sum to exactly 1 (in millionths): the
  rounding remainder goes to the largest weight. The rounded mixture is the one whose loss is
  predicted, so every number in the file describes exactly the mixture the file prescribes.
- A stage's `predicted_loss` is the predicted target-metric loss at the END of the stage, on the
  proxy scale. Segment 0 runs the prior, and its value is the model's initial loss (the mean
  over proxies of l_1, the loss observed at t_1), which is also where Algorithm 1 starts.
- Unconstrained, every switch point searches ONE candidate pool, drawn from child 0 of
  `SeedSequence(seed)`, and curve-shift's curves are predicted once per candidate
  (`search.CandidatePool`): one pass of the curve boosters per schedule instead of N.
  Constrained searches draw from their own child (child j for switch point j), since each
  stage's feasible region differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from regmixd_cli._version import __version__
from regmixd_cli.domain import (
    FRACTION_DECIMALS,
    LOSS_DECIMALS,
    METHOD_OFFLINE,
    METHOD_STATIC,
    ProgressFn,
    Schedule,
    Stage,
)
from regmixd_cli.errors import ModelError, UsageError
from regmixd_cli.fit.model import PER_STAGE_HISTORY
from regmixd_cli.plan.budget import ConstrainedSearch
from regmixd_cli.plan.constraints import Constraints
from regmixd_cli.plan.guard import (
    VERIFIED,
    Verdict,
    VerifiedRun,
    evidence_from_report,
    judge,
    rollout_step,
    static_rollout,
    weigh_verified,
)
from regmixd_cli.plan.search import CandidatePool, SearchConfig, search_mixture
from regmixd_cli.weights import PROXY_MEAN, Prior, resolve_prior, round_weights

if TYPE_CHECKING:
    import numpy as np




class ScheduleModel(Protocol):
    """What the schedule needs from a fitted model (regmixd_cli.fit.model.FittedModel has it)."""

    @property
    def domains(self) -> tuple[str, ...]: ...
    @property
    def target(self) -> str: ...
    @property
    def targets(self) -> tuple[str, ...]: ...
    @property
    def grid(self) -> tuple[float, ...]: ...
    @property
    def proxy_steps(self) -> float: ...
    @property
    def prior(self) -> dict[str, float]: ...
    @property
    def prior_source(self) -> str: ...
    @property
    def form(self) -> str | None: ...
    @property
    def initial_loss(self) -> float: ...
    @property
    def initial_state(self) -> Any: ...
    @property
    def n_switch_points(self) -> int: ...
    @property
    def has_transitions(self) -> bool: ...

    def predict_transition(self, stage: int, mixtures: np.ndarray, loss: Any) -> np.ndarray: ...

    def predict_state(
        self, stage: int, mixtures: np.ndarray, state: Any, history: Any = None
    ) -> np.ndarray: ...

    def objective_of(self, state: Any) -> Any: ...

    def predict_endpoint(self, mixtures: np.ndarray) -> np.ndarray: ...


def stage_boundaries(grid: Sequence[float], proxy_steps: float, target_steps: int) -> list[int]:
    """[0, S_1, ..., S_N, T]: interval ends mapped to target steps, rounded half up."""
    inner = [math.floor(t * target_steps / proxy_steps + 0.5) for t in grid[:-1]]
    bounds = [0, *inner, target_steps]
    if any(b >= e for b, e in zip(bounds, bounds[1:], strict=False)):
        raise UsageError(
            f"``target_steps`` {target_steps} is too small for {len(bounds) - 1} stages "
            f"(a stage would be empty); give at least {len(bounds) - 1} steps"
        )
    return bounds


def resolve_schedule_prior(spec: str | None, model: ScheduleModel) -> Prior:
    """`--prior` for a schedule: None means the prior recorded in the model."""
    model_prior = tuple(float(model.prior[d]) for d in model.domains)
    if spec is None:
        return Prior(model_prior, model.prior_source)
    if spec == PROXY_MEAN and model.prior_source != PROXY_MEAN:
        raise UsageError(
            f"``prior`` proxy-mean: the model was fitted with prior {model.prior_source!r} and "
            "does not record the proxy mean; refit with ``prior`` proxy-mean, or give FILE or "
            "uniform"
        )
    return resolve_prior(spec, model.domains, proxy_mean=model_prior)


def build_schedule(
    model: ScheduleModel,
    config: SearchConfig,
    prior: Prior,
    target_steps: int | None,
    seed: int,
    progress: ProgressFn | None = None,
    *,
    model_sha256: str = "",
    constraints: Constraints | None = None,
    rank: ScheduleModel | None = None,
) -> Schedule:
    """RegMix-D Algorithm 1: segment 0 = prior, then one search per switch point at (t_j, l).

    With `constraints`, every stage (segment 0 included) satisfies them
    (`plan.constraints`).
    With `rank`, candidates are ranked by that model (e.g. an ensemble quantile) instead.
    """
    import numpy as np

    if not model.has_transitions or model.form is None or model.n_switch_points < 1:
        raise ModelError(
            "the model has no transition regressors (it was fitted on endpoint-only data or with "
            "0 switch points); use `regmixd schedule MODEL --static` for the RegMix mixture"
        )
    steps = _target_steps(model, target_steps)
    bounds = stage_boundaries(model.grid, model.proxy_steps, steps)
    n = model.n_switch_points
    children = np.random.SeedSequence(seed).spawn(n)
    # The state: the loss (one per target for a model of several; `fit.objective`). The
    # search ranks candidates by the objective of the next state.
    state = model.initial_state
    runner = None
    if constraints is not None:
        runner = ConstrainedSearch(constraints, bounds, prior.weights)
    first = round_weights(prior.weights) if runner is None else runner.first()
    ranker: Any = model if rank is None else rank
    # Unconstrained: every switch point searches one pool (child 0), and the model's
    # loss-independent work per candidate (curve-shift's curves) is done once (CandidatePool).
    # The per-stage-history form also reads what the run trained on so far (its average
    # mixture over [0, t_j), proxy steps), which differs per switch point: no shared pool.
    uses_history = model.form == PER_STAGE_HISTORY and rank is None
    pool = None
    if runner is None and not uses_history and hasattr(ranker, "prepare_transitions"):
        pool = CandidatePool(prior.weights, config, children[0], ranker.prepare_transitions)
    stages = [_stage(bounds, 0, steps, first, float(model.initial_loss), _targets(model, state))]
    history_model: Any = model  # a FittedModel: its predict_transition takes `history`
    spans = np.diff([0.0, *model.grid])
    trained = spans[0] * np.asarray(first, dtype=np.float64)
    for j in range(1, n + 1):
        rng = np.random.default_rng(children[j - 1])
        at_loss = state  # bound now: the closures must not see the state updated below
        history = (trained / spans[:j].sum()).astype(np.float32) if uses_history else None

        def score(candidates: np.ndarray, j: int = j, at_loss: Any = at_loss,
                  history: np.ndarray | None = history) -> np.ndarray:
            if history is not None:
                pred: np.ndarray = history_model.predict_transition(
                    j, candidates, at_loss, history=history)
                return pred
            plain: np.ndarray = ranker.predict_transition(j, candidates, at_loss)
            return plain

        def pooled(prepared: Any, c: np.ndarray, j: int = j, at_loss: Any = at_loss) -> Any:
            out: np.ndarray = ranker.predict_prepared(prepared, j, c, at_loss)
            return out

        if pool is not None:
            result = pool.search(pooled)
            weights = round_weights(result.weights)
        elif runner is None:
            result = search_mixture(score, prior.weights, config, rng)
            weights = round_weights(result.weights)
        else:
            result, weights = runner.search(j, score, config, rng)
        mixture = np.asarray([weights], dtype=np.float32)
        if history is not None:
            state = history_model.predict_state(j, mixture, at_loss, history=history)[0]
        else:
            state = np.asarray(model.predict_state(j, mixture, at_loss))[0]
        state = float(state) if np.ndim(state) == 0 else state
        trained = trained + spans[j] * np.asarray(weights, dtype=np.float64)
        stages.append(_stage(bounds, j, steps, weights, float(model.objective_of(state)),
                             _targets(model, state)))
        if progress is not None:
            progress(j, n)
    return Schedule(
        METHOD_OFFLINE,
        tuple(model.domains),
        steps,
        tuple(stages),
        _provenance(model, config, prior, seed, model_sha256, runner),
    )


def build_static(
    model: ScheduleModel,
    config: SearchConfig,
    prior: Prior,
    target_steps: int | None,
    seed: int,
    progress: ProgressFn | None = None,
    *,
    model_sha256: str = "",
    constraints: Constraints | None = None,
    rank: ScheduleModel | None = None,
) -> Schedule:
    """Static RegMix: one search with the endpoint model, one mixture for the whole run."""
    import numpy as np

    steps = _target_steps(model, target_steps)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    score = (model if rank is None else rank).predict_endpoint
    runner = None
    if constraints is not None:
        runner = ConstrainedSearch(constraints, [0, steps], prior.weights)
    if runner is None:
        result = search_mixture(score, prior.weights, config, rng)
        weights = round_weights(result.weights)
    else:
        result, weights = runner.search(0, score, config, rng)
    if progress is not None:
        progress(1, 1)
    return _static_schedule(model, weights, steps,
                            _provenance(model, config, prior, seed, model_sha256, runner))


def _static_schedule(
    model: ScheduleModel, weights: tuple[float, ...], steps: int, provenance: dict[str, Any]
) -> Schedule:
    """One mixture over [0, steps), its loss by the endpoint model (each target's too)."""
    import numpy as np

    mixture = np.asarray([weights], dtype=np.float32)
    loss = float(np.asarray(model.predict_endpoint(mixture)).reshape(-1)[0])
    per_target = None
    if hasattr(model, "predict_endpoint_targets"):
        per_target = _targets(model, model.predict_endpoint_targets(mixture)[0])
    stage = _stage([0, steps], 0, steps, weights, loss, per_target)
    return Schedule(METHOD_STATIC, tuple(model.domains), steps, (stage,), provenance)


def build_guarded(
    model: ScheduleModel,
    config: SearchConfig,
    prior: Prior,
    target_steps: int | None,
    seed: int,
    progress: ProgressFn | None = None,
    *,
    model_sha256: str = "",
    constraints: Constraints | None = None,
    rank: ScheduleModel | None = None,
    force_dynamic: bool = False,
) -> tuple[Schedule, Verdict]:
    """The offline schedule, unless the guard (plan.guard) finds static RegMix better supported,
    or the measured plan of the run that ended lowest (`plan.guard.weigh_verified`).

    Both plans are built from the same model, prior and seed as `build_schedule` and
    `build_static` build them; the plan handed out records the verdict in `provenance.guard`.
    The measured run is a candidate only without constraints, ranking model and
    `force_dynamic`: it was drawn without the user's constraints, and observed, not ranked.
    """
    import dataclasses

    dynamic = build_schedule(
        model, config, prior, target_steps, seed, progress,
        model_sha256=model_sha256, constraints=constraints, rank=rank,
    )  # fmt: skip
    static = build_static(
        model, config, prior, target_steps, seed,
        model_sha256=model_sha256, constraints=constraints, rank=rank,
    )  # fmt: skip
    verdict = guard_verdict(model, dynamic, static, force_dynamic=force_dynamic)
    chosen = dynamic if verdict.keep_dynamic else static
    plain = constraints is None and rank is None and not force_dynamic
    run = best_verified_run(model) if plain else None
    if run is not None:
        verdict = weigh_verified(verdict, interval_mixtures(chosen, model), run, model)
        if verdict.decision == VERIFIED:
            chosen = verified_schedule(model, run, chosen)
    provenance = dict(chosen.provenance) | {"guard": verdict.record()}
    return dataclasses.replace(chosen, provenance=provenance), verdict


def best_verified_run(model: ScheduleModel) -> VerifiedRun | None:
    """The run of the store that ended lowest (`fit --verify-prefix`), if the model's report
    names one over the model's own grid and domains."""
    run = evidence_from_report(getattr(model, "report", None) or {}, model.form).best_verified
    if run is None or len(run.stages) != len(model.grid) or len(run.stages[0]) != len(
        model.domains
    ):
        return None
    return run


def interval_mixtures(schedule: Schedule, model: ScheduleModel) -> list[tuple[float, ...]]:
    """A schedule's mixture over each of the model's grid intervals (a static one: N+1 times)."""
    if len(schedule.stages) == 1:
        return [schedule.stages[0].weights] * len(model.grid)
    return [stage.weights for stage in schedule.stages]


def verified_schedule(model: ScheduleModel, run: VerifiedRun, like: Schedule) -> Schedule:
    """A measured run's plan on `like`'s axis: one static stage, or a stage per grid
    interval with the model's rollout as predicted losses (`like` gives steps and provenance)."""
    steps = like.target_steps
    provenance = dict(like.provenance) | {"verified_run": run.run}
    if run.static:
        return _static_schedule(model, run.stages[0], steps, provenance)
    bounds = stage_boundaries(model.grid, model.proxy_steps, steps)
    state: Any = model.initial_state
    stages = [_stage(bounds, 0, steps, run.stages[0], float(model.initial_loss),
                     _targets(model, state))]
    for j in range(1, model.n_switch_points + 1):
        state = rollout_step(model, run.stages, j, state)
        stages.append(_stage(bounds, j, steps, run.stages[j], float(model.objective_of(state)),
                             _targets(model, state)))
    return Schedule(METHOD_OFFLINE, tuple(model.domains), steps, tuple(stages), provenance)


def guard_verdict(
    model: ScheduleModel, dynamic: Schedule, static: Schedule, *, force_dynamic: bool = False
) -> Verdict:
    """plan.guard.judge on a dynamic schedule and a static one built from the same model."""
    evidence = evidence_from_report(getattr(model, "report", None) or {}, model.form)
    dynamic_loss = dynamic.stages[-1].predicted_loss
    return judge(
        math.nan if dynamic_loss is None else float(dynamic_loss),
        static_rollout(model, static.stages[0].weights),
        evidence,
        force=force_dynamic,
    )


def _target_steps(model: ScheduleModel, target_steps: int | None) -> int:
    """`--target-steps`, defaulting to the proxy length T_p (a schedule on the proxy's own axis)."""
    if target_steps is None:
        return max(1, math.floor(float(model.proxy_steps) + 0.5))
    if target_steps < 1:
        raise UsageError(f"``target_steps`` {target_steps}: must be at least 1")
    return int(target_steps)


def _targets(model: ScheduleModel, state: Any) -> tuple[tuple[str, float], ...] | None:
    """A state's per-target losses, for a model of several targets (else None)."""
    import numpy as np

    targets = getattr(model, "targets", ())
    if len(targets) < 2:
        return None
    values = np.asarray(state, dtype=np.float64).reshape(-1)
    return tuple((t, round(float(v), LOSS_DECIMALS)) for t, v in zip(targets, values,
                                                                      strict=True))


def _stage(
    bounds: Sequence[int],
    i: int,
    steps: int,
    weights: tuple[float, ...],
    loss: float | None,
    targets: tuple[tuple[str, float], ...] | None = None,
) -> Stage:
    start, end = bounds[i], bounds[i + 1]
    return Stage(
        start_step=start,
        end_step=end,
        start_fraction=round(start / steps, FRACTION_DECIMALS),
        end_fraction=round(end / steps, FRACTION_DECIMALS),
        weights=weights,
        predicted_loss=None if loss is None or math.isnan(loss) else round(loss, LOSS_DECIMALS),
        predicted_losses=targets,
    )


def _provenance(
    model: ScheduleModel,
    config: SearchConfig,
    prior: Prior,
    seed: int,
    model_sha256: str,
    runner: ConstrainedSearch | None = None,
) -> dict[str, Any]:
    extra = {} if runner is None else {"constraints": runner.record()}
    return extra | {
        "model": model_sha256,
        "model_form": model.form,
        "target": model.target,
        **_objective_record(model),
        "proxy_steps": float(model.proxy_steps),
        "interval_ends": [float(t) for t in model.grid],
        "prior": dict(zip(model.domains, round_weights(prior.weights), strict=True)),
        "prior_source": prior.source,
        "candidates": config.candidates,
        "top_k": config.top_k,
        "alpha": config.alpha,
        "seed": seed,
        "regmixd_version": __version__,
    }


def _objective_record(model: ScheduleModel) -> dict[str, Any]:
    """A model of several targets: its objective, for the provenance (else nothing)."""
    objective = getattr(model, "objective", None)
    return {} if objective is None else {"objective": objective.record()}


# ---------------------------------------------------------------- schedule JSON v1


