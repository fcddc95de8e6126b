"""Online control (RegMix-D Algorithm 2): a live run's observed loss -> the next mixture.

`decide_online` is one pure decision step; `OnlineController` keeps the decisions of one target
run for training loops and for `regmixd online --follow`. In a training loop:
`from regmixd_cli.online import OnlineController`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli._version import __version__
from regmixd_cli.domain import FRACTION_DECIMALS, LOSS_DECIMALS, METHOD_ONLINE, Schedule, Stage
from regmixd_cli.errors import ModelError, UsageError, param
from regmixd_cli.fit.files import load_model, model_hash
from regmixd_cli.fit.model import PER_STAGE_HISTORY
from regmixd_cli.online.decision import Decision
from regmixd_cli.online.guard import OnlineGuard, guarded, judge_model
from regmixd_cli.plan.budget import BudgetPlan, fit_first, online_region
from regmixd_cli.plan.region import search_region
from regmixd_cli.plan.schedule import stage_boundaries
from regmixd_cli.plan.schedule_file import schedule_to_dict
from regmixd_cli.plan.search import SearchConfig, search_mixture
from regmixd_cli.weights import round_weights

if TYPE_CHECKING:
    import numpy as np

    from regmixd_cli.fit.objective import AnyModel

DEFAULT_PARAM_RATIO = 1000.0  # the paper: 1B target / 1M proxy
DEFAULT_BETA = 0.05


def target_switch_steps(grid: Sequence[float], n_switch: int, target_steps: int) -> tuple[int, ...]:
    """Target-run switch steps S_j = round_half_up(t_j * T_target / T_p), j = 1..N.

    The same mapping `regmixd schedule` uses for its stage boundaries.
    """

    if isinstance(target_steps, bool) or not isinstance(target_steps, int) or target_steps < 1:
        raise UsageError(
            f"{param('target_steps')} must be a positive integer, got {target_steps!r}"
        )
    return tuple(stage_boundaries(grid[: n_switch + 1], float(grid[-1]), target_steps)[1:-1])


def correct_loss(loss: float, param_ratio: float, beta: float) -> float:
    """Cross-scale correction to the proxy scale: l~ = l^ * (P_t / P_p) ** beta."""
    return float(loss) * math.pow(float(param_ratio), float(beta))


def check_online_model(model: AnyModel) -> None:
    """Raise ModelError unless the model has a transition regressor to steer with."""
    if model.form is None or not model.has_transitions or model.n_switch_points < 1:
        raise ModelError(
            "the model has no transition regressor (it was fitted on endpoint-only data), so it "
            "cannot steer a run online; use `regmixd schedule MODEL --static` for one mixture"
        )


def _check_numbers(step: int, loss: float, param_ratio: float, beta: float) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UsageError(f"{param('step')} must be an integer >= 0, got {step!r}")
    if not (math.isfinite(loss) and loss > 0):
        raise UsageError(f"{param('loss')} must be a positive finite number, got {loss!r}")
    if not (math.isfinite(param_ratio) and param_ratio > 0):
        raise UsageError(
            f"{param('param_ratio')} must be a positive finite number, got {param_ratio!r}"
        )
    if not math.isfinite(beta):
        raise UsageError(f"{param('beta')} must be a finite number, got {beta!r}")
    try:
        factor = math.pow(param_ratio, beta)
    except OverflowError:
        factor = math.inf
    if not (math.isfinite(factor) and factor > 0 and math.isfinite(loss * factor)):
        raise UsageError(f"{param('param_ratio')} {param_ratio:g} to the power {param('beta')} "
                         f"{beta:g} is out of range; {param('beta')} is a small exponent "
                         "(default 0.05)")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def observed_losses(model: AnyModel, loss: float | Mapping[str, float]) -> float | np.ndarray:
    """The run's observed loss as the model's state: one number for a model of one target,
    else one per target, in the model's order, from {metric: loss} naming every target."""
    import numpy as np

    targets = model.targets
    if len(targets) < 2:
        if isinstance(loss, Mapping):
            if set(loss) != {targets[0]}:
                raise UsageError(f"{param('loss')} {', '.join(map(str, loss))}: the model has "
                                 f"one target, {targets[0]!r}; give its loss")
            return float(loss[targets[0]])
        return float(loss)
    listed = ", ".join(targets)
    if not isinstance(loss, Mapping):
        raise UsageError(f"the model has {len(targets)} targets ({listed}): give each "
                         f"target's loss as {param('loss')} METRIC=VALUE")
    unknown = [m for m in loss if m not in targets]
    if unknown:
        raise UsageError(f"{param('loss')} {unknown[0]}: not a target of the model; its "
                         f"targets are {listed}")
    missing = [t for t in targets if t not in loss]
    if missing:
        raise UsageError(f"{param('loss')}: no loss for target {missing[0]!r}; the decision "
                         f"needs every target's observed loss ({listed})")
    for target in targets:
        value = float(loss[target])
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{param('loss')} {target}={value!r}: a loss must be a positive "
                             "finite number")
    return np.asarray([float(loss[t]) for t in targets], dtype=np.float64)


def trained_mixture(
    first: Sequence[float], history: Sequence[tuple[int, Sequence[float]]], until: int
) -> np.ndarray:
    """A run's average mixture over target steps [0, until): `first` from step 0, then each
    (start_step, weights) of `history` from its start (a segment runs until the next one)."""
    import numpy as np

    segments = [(0, np.asarray(first, dtype=np.float64))]
    segments += [(int(s), np.asarray(w, dtype=np.float64)) for s, w in sorted(history,
                                                                          key=lambda sw: sw[0])
                 if int(s) < until]
    total = np.zeros_like(segments[0][1])
    for (start, weights), (end, _) in zip(segments, [*segments[1:], (until, None)],
                                          strict=True):
        total += max(0, end - start) * weights
    result: np.ndarray = (total / max(1, until)).astype(np.float32)
    return result


def decide_online(
    model: AnyModel,
    step: int,
    loss: float | Mapping[str, float],
    target_steps: int,
    *,
    param_ratio: float = DEFAULT_PARAM_RATIO,
    beta: float = DEFAULT_BETA,
    prior: Sequence[float] | None = None,
    search_config: SearchConfig | None = None,
    seed: int = 0,
    switch: int | None = None,
    feasible: Any = None,
    constraints: Any = None,
    history: Sequence[tuple[int, Sequence[float]]] | None = None,
    first: Sequence[float] | None = None,
) -> Decision:
    """One RegMix-D online decision for a run that reported `loss` at target step `step`.

    Without `switch`, the decision is for the first switch point at or after `step` (a step
    that is not a switch point gets a warning). With `switch` (the controller's use), it is
    for that switch point, observed at `step` (at or after it). Past the last switch point
    there is nothing to decide: UsageError. The search's random stream is derived from
    (seed, switch), so a decision never depends on what was decided before it.
    With `constraints` (regmixd_cli.plan.constraints), the mixture satisfies them given `history`,
    the (start_step, weights) of the segments decided since segment 0 (see `online_region`).
    """
    import numpy as np


    check_online_model(model)
    observed = observed_losses(model, loss)
    for value in np.asarray(observed, dtype=np.float64).reshape(-1):
        _check_numbers(step, float(value), param_ratio, beta)
    steps = target_switch_steps(model.grid, model.n_switch_points, target_steps)
    warnings: list[str] = []
    if switch is None:
        if step >= target_steps:
            raise UsageError(
                f"{param('step')} {step} is at or past {param('target_steps')} {target_steps}"
            )
        after = [j for j, s in enumerate(steps, start=1) if s >= step]
        if not after:
            raise UsageError(
                f"{param('step')} {step} is after the last switch point (step {steps[-1]} of "
                f"{target_steps}); there is nothing left to decide"
            )
        switch = after[0]
        if steps[switch - 1] != step:
            warnings.append(
                f"step {step} is not a switch point; the decision applies from the next one, "
                f"step {steps[switch - 1]} (switch points: {', '.join(map(str, steps))})"
            )
    elif not 1 <= switch <= len(steps):
        raise UsageError(f"switch {switch} is not in 1..{len(steps)}")

    factor = math.pow(float(param_ratio), float(beta))
    corrected = observed * factor
    members = getattr(model, "members", (model,))
    values = np.asarray(observed, dtype=np.float64).reshape(-1)
    for member, seen in zip(members, values, strict=True):
        fixed = correct_loss(float(seen), param_ratio, beta)
        low, high = member.loss_ranges[switch - 1]
        if not low <= fixed <= high:
            which = f" of {member.target}" if len(members) > 1 else ""
            warnings.append(
                f"corrected loss{which} {_fmt(fixed)} (observed {_fmt(float(seen))} x "
                f"{_fmt(param_ratio)}^{_fmt(beta)}) is outside the range the model saw at "
                f"switch point {switch} ({_fmt(low)}..{_fmt(high)}): the prediction is an "
                "extrapolation; check ``param_ratio``/``beta`` and that "
                + ("``metric`` is the model's target" if len(members) == 1 else
                   f"the value logged as {member.target} is that target's loss")
            )

    config = search_config if search_config is not None else SearchConfig()
    if prior is None:
        prior = [model.prior[d] for d in model.domains]
    prior_arr = np.asarray(prior, dtype=np.float64)
    # Switch point j draws the same candidates as the offline schedule's search j (unconstrained:
    # the one pool of child 0; constrained: child j - 1): the decision depends on (seed, j) only,
    # and equals the offline stage when the run's corrected loss equals the loss the offline
    # schedule predicted.
    # The per-stage-history form also reads what the run trained on so far: segment 0's
    # mixture (`first`) and the segments decided since (`history`), averaged over [0, S_j).
    # Offline, that form searches child j - 1 at switch point j (no shared pool): so here.
    trained = None
    if model.form == PER_STAGE_HISTORY and first is not None:
        trained = trained_mixture(first, history or [], steps[switch - 1])
    child = 0 if constraints is None and trained is None else switch - 1
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(len(steps))[child])
    extra = {} if trained is None else {"history": trained}

    def score(candidates: Any) -> Any:
        return model.predict_transition(switch, candidates, corrected, **extra)

    if constraints is None:
        result = search_mixture(score, prior_arr, config, rng, feasible=feasible)
        weights = round_weights(result.weights)
    else:

        if history is None and switch == 1:
            history = []
        if history is None and constraints.max_change is not None:
            warnings.append(
                "max_change is not checked: a one-shot decision past the first switch point "
                "does not know the previous mixture (use ``follow``, which does)"
            )
        region, _, _ = online_region(
            constraints, target_steps, prior_arr, history, steps[switch - 1]
        )
        result, _ = search_region(score, prior_arr, config, rng, region)
        weights = region.round(result.weights)
    # The loss the chosen (rounded, averaged) mixture leads to, as in Algorithm 1's update.
    mixture = np.asarray([weights], dtype=np.float32)
    predicted = float(np.asarray(model.predict_transition(switch, mixture, corrected,
                                                          **extra))[0])
    ratio = math.pow(float(param_ratio), float(beta))
    start = steps[switch - 1]
    end = steps[switch] if switch < len(steps) else target_steps
    return Decision(
        switch=switch,
        start_step=start,
        end_step=end,
        step=step,
        proxy_step=step * float(model.proxy_steps) / target_steps,
        # An excess loss (worst - reference) is on the run's scale only as corrected / ratio
        # (the reference is a proxy's loss), as predicted_target_loss is.
        loss=(float(model.objective_of(corrected)) / ratio
              if getattr(getattr(model, "objective", None), "reference", None) is not None
              else float(model.objective_of(observed))),
        corrected_loss=float(model.objective_of(corrected)),
        weights={d: float(w) for d, w in zip(model.domains, weights, strict=True)},
        predicted_loss=predicted,
        predicted_target_loss=predicted / ratio,
        warnings=tuple(warnings),
        losses=None if len(members) < 2 else model.target_losses(observed),  # type: ignore[union-attr]
        corrected_losses=None if len(members) < 2 else model.target_losses(corrected),  # type: ignore[union-attr]
        predicted_losses=None if len(members) < 2 else model.target_losses(  # type: ignore[union-attr]
            model.predict_state(switch, mixture, corrected, **extra)[0]),
    )


class OnlineController:
    """Steers one target run: call `mixture_for(step, loss)` after each evaluation.

    It returns the new mixture {domain: weight} the first time an evaluation lands at or after
    a switch point, and None otherwise; decisions are remembered (`decisions`) and can be
    written as a schedule (`to_schedule`). Build it from a model directory
    (`OnlineController("model/", target_steps=25_000)`) or from a loaded FittedModel.
    Past `decisions` (e.g. from a state file) are kept as they are and never re-decided.
    """

    def __init__(
        self,
        model: str | Path | AnyModel,
        target_steps: int,
        *,
        param_ratio: float = DEFAULT_PARAM_RATIO,
        beta: float = DEFAULT_BETA,
        prior: Mapping[str, float] | None = None,
        prior_source: str | None = None,
        candidates: int = 100_000,
        top_k: int = 128,
        alpha: float = 1.0,
        seed: int = 0,
        decisions: Sequence[Decision] = (),
        force_dynamic: bool = False,
    ) -> None:

        if isinstance(model, str | Path):

            self.model: AnyModel = load_model(Path(model))
            self.model_hash: str | None = model_hash(Path(model))
        else:
            self.model = model
            self.model_hash = None
        check_online_model(self.model)
        self.target_steps = target_steps
        self.param_ratio = float(param_ratio)
        self.beta = float(beta)
        self.prior: dict[str, float] | None = dict(prior) if prior is not None else None
        self.prior_source = prior_source or ("custom" if prior is not None else None)
        self.candidates = int(candidates)
        self.top_k = int(top_k)
        self.alpha = float(alpha)
        self.seed = int(seed)
        self.search_config = SearchConfig(self.candidates, self.top_k, self.alpha)  # checks them
        self.switch_steps = target_switch_steps(
            self.model.grid, self.model.n_switch_points, target_steps
        )
        _check_numbers(0, 1.0, self.param_ratio, self.beta)
        self.decisions: list[Decision] = sorted(decisions, key=lambda d: d.switch)
        # regmixd_cli.plan.constraints.Constraints, or None; set it before the first decision.
        self.constraints: Any = None
        self.force_dynamic = bool(force_dynamic)
        self._guard: OnlineGuard | None = None

    def guard(self) -> OnlineGuard:
        """The guard's verdict on the model with these settings (searched once, then kept)."""
        if self._guard is None:
            self._guard = judge_model(
                self.model, [self.prior_weights[d] for d in self.model.domains],
                self.search_config, self.seed, force_dynamic=self.force_dynamic,
                constraints=self.constraints,
            )  # fmt: skip
        return self._guard

    @property
    def prior_weights(self) -> dict[str, float]:
        """The prior mixture m0 (segment 0, and the centre of the candidate search)."""
        if self.prior is not None:
            return dict(self.prior)
        return {d: float(self.model.prior[d]) for d in self.model.domains}

    @property
    def done(self) -> bool:
        """True once the last switch point is decided (nothing is left to decide)."""
        return bool(self.decisions) and self.decisions[-1].switch == len(self.switch_steps)

    def pending_switch(self, step: int) -> int | None:
        """The switch point an evaluation at `step` decides, or None.

        It is the latest switch point at or before `step` that comes after the last decision;
        evaluations at or past the end of training decide nothing.
        """
        if step >= self.target_steps:
            return None
        last = self.decisions[-1].switch if self.decisions else 0
        reached = [j for j, s in enumerate(self.switch_steps, start=1) if s <= step and j > last]
        return reached[-1] if reached else None

    def decide_once(
        self,
        step: int,
        loss: float | Mapping[str, float],
        switch: int | None = None,
        history: Sequence[tuple[int, Sequence[float]]] | None = None,
    ) -> Decision:
        """The decision for an evaluation (`step`, `loss`) with this controller's settings.

        Nothing is remembered: a one-shot `regmixd online --step S --loss L` call. When the
        guard (online.guard) finds the model's schedule not credible against static RegMix,
        the decision is the static RegMix mixture.
        """
        decision = decide_online(
            self.model,
            int(step),
            loss,
            self.target_steps,
            param_ratio=self.param_ratio,
            beta=self.beta,
            prior=[self.prior_weights[d] for d in self.model.domains],
            search_config=self.search_config,
            seed=self.seed,
            switch=switch,
            constraints=self.constraints,
            history=history,
            first=[self.first_weights()[d] for d in self.model.domains],
        )
        return guarded(decision, self.guard(), self.model)

    def decide(self, step: int, loss: float | Mapping[str, float]) -> Decision | None:
        """The Decision an evaluation (`step`, `loss`) triggers, or None; remembered."""
        switch = self.pending_switch(int(step))
        if switch is None:
            return None
        last = self.decisions[-1].switch if self.decisions else 0
        decision = self.decide_once(step, loss, switch, history=[
            (d.start_step, [d.weights[k] for k in self.model.domains]) for d in self.decisions
        ])
        if switch > last + 1:
            skipped = ", ".join(str(s) for s in self.switch_steps[last : switch - 1])
            note = (
                f"no evaluation between switch point(s) at step {skipped} and step {step}; "
                "those segments keep the previous mixture (evaluate at every switch point)"
            )
            decision = _with_warning(decision, note)
        self.decisions.append(decision)
        return decision

    def mixture_for(
        self, step: int, loss: float | Mapping[str, float]
    ) -> dict[str, float] | None:
        """The new mixture {domain: weight} at a switch point (`step`, `loss`), else None."""
        decision = self.decide(step, loss)
        return dict(decision.weights) if decision is not None else None

    def first_weights(self) -> dict[str, float]:
        """Segment 0's mixture: the prior, or with constraints the nearest feasible mixture.

        When the guard holds a plan (online.guard: static RegMix, or the best verification
        run's plan), segment 0 is that plan's too, so the run trains on it throughout.
        """
        if self.guard().holds_plan:
            return dict(self.guard().plan[0])
        if self.constraints is None:
            return self.prior_weights

        prior = [self.prior_weights[d] for d in self.model.domains]
        first, _ = fit_first(BudgetPlan(self.constraints, self.target_steps), prior)
        return dict(zip(self.model.domains, first, strict=True))

    def provenance(self) -> dict[str, Any]:
        """What the decisions depend on, for schedule and state files."""

        extra = {} if self.constraints is None else {"constraints": self.constraints.record}
        return extra | {
            "model": self.model_hash or "",
            "model_form": self.model.form,
            "target": self.model.target,
            "proxy_steps": float(self.model.proxy_steps),
            "interval_ends": [float(t) for t in self.model.grid],
            "prior": self.prior_weights,
            "prior_source": self.prior_source or self.model.prior_source,
            "candidates": self.candidates,
            "top_k": self.top_k,
            "alpha": self.alpha,
            "seed": self.seed,
            "param_ratio": self.param_ratio,
            "beta": self.beta,
            "regmixd_version": __version__,
        } | ({} if self._guard is None else self._guard.provenance())

    def to_schedule(self) -> dict[str, Any]:
        """The decisions so far as schedule JSON v1 (method regmix-d-online; segment 0 = prior)."""
        return build_online_schedule(
            self.model.domains,
            self.target_steps,
            self.first_weights(),
            float(self.model.initial_loss),
            self.decisions,
            self.provenance(),
            initial_losses=getattr(self.model, "target_losses", lambda _s: None)(
                self.model.initial_state),
        )


def _with_warning(decision: Decision, note: str) -> Decision:
    return replace(decision, warnings=(*decision.warnings, note))


def build_online_schedule(
    domains: Sequence[str],
    target_steps: int,
    prior: Mapping[str, float],
    initial_loss: float,
    decisions: Sequence[Decision],
    provenance: Mapping[str, Any],
    initial_losses: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Schedule JSON v1 (method regmix-d-online) from online decisions.

    Stage 0, [0, first decision), runs the prior with the model's initial loss as its
    prediction (as offline); then one stage per decision up to the next one (a switch point
    that was never decided keeps the mixture before it). A stage's `predicted_loss` is the
    decision's prediction for the end of its interval, on the proxy scale.
    """

    ordered = sorted(decisions, key=lambda d: d.switch)
    starts = [0, *(d.start_step for d in ordered)]
    ends = [*starts[1:], target_steps]
    mixtures: list[Mapping[str, float]] = [prior, *(d.weights for d in ordered)]
    first = None if not math.isfinite(initial_loss) else initial_loss
    losses: list[float | None] = [first, *(d.predicted_loss for d in ordered)]
    # A model of several targets: each target's prediction too (stage 0: the initial losses).
    per_target = [initial_losses, *(d.predicted_losses for d in ordered)]
    stages = tuple(
        Stage(
            start_step=start,
            end_step=end,
            start_fraction=round(start / target_steps, FRACTION_DECIMALS),
            end_fraction=round(end / target_steps, FRACTION_DECIMALS),
            weights=round_weights([float(m[d]) for d in domains]),
            predicted_loss=None if loss is None else round(loss, LOSS_DECIMALS),
            predicted_losses=None if targets is None else tuple(
                (t, round(float(v), LOSS_DECIMALS)) for t, v in targets.items()),
        )
        for start, end, m, loss, targets in zip(starts, ends, mixtures, losses, per_target,
                                                strict=True)
        if end > start
    )
    schedule = Schedule(METHOD_ONLINE, tuple(domains), target_steps, stages, dict(provenance))
    return schedule_to_dict(schedule)
