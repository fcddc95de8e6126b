"""The guard for online steering: steer only a model whose evidence backs a schedule.

Online steering searches the same transition model that `schedule` does, so it inherits that
model's blind spots: where the guard (`plan.guard`) finds the model's predicted advantage of a
dynamic plan over static RegMix not credible, steering from it is not credible either. The
verdict is the model's, not the run's: the guarded plan is built once, with the controller's
prior, search settings and seed (`plan.schedule.build_guarded`), and when it is not the
dynamic schedule (static RegMix, or the plan of the run that ended lowest) every
online decision hands out that plan's mixture for its interval instead, with a warning.
`force_dynamic` steers anyway (the verdict is still recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from regmixd_cli.online.decision import Decision
from regmixd_cli.plan.guard import VERIFIED, Verdict, rollout_step
from regmixd_cli.plan.schedule import build_guarded, interval_mixtures
from regmixd_cli.plan.search import SearchConfig
from regmixd_cli.weights import Prior

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from regmixd_cli.fit.objective import AnyModel as FittedModel
    from regmixd_cli.online.decision import Decision
    from regmixd_cli.plan.constraints import Constraints


@dataclass(frozen=True, slots=True)
class OnlineGuard:
    """The model's verdict, and the plan to hold when it is not the dynamic schedule: the
    mixture for each grid interval ([0, t_1), then [t_l, t_{l+1}))."""

    verdict: Verdict
    plan: tuple[Mapping[str, float], ...]

    @property
    def holds_plan(self) -> bool:
        """True when every decision is to be the held plan's mixture (static RegMix or the
        best measured run's plan), not a search."""
        return not self.verdict.keep_dynamic

    def provenance(self) -> dict[str, Any]:
        """`provenance.guard`, and `verified_run` when the held plan is a measured run's (as
        `schedule` writes them)."""
        record = {"guard": self.verdict.record()}
        if self.verdict.decision == VERIFIED:
            record["verified_run"] = self.verdict.evidence["verified_run"]["run"]
        return record


def judge_model(
    model: FittedModel,
    prior: Sequence[float],
    config: SearchConfig,
    seed: int,
    *,
    force_dynamic: bool = False,
    constraints: Constraints | None = None,
) -> OnlineGuard:
    """The guard's verdict on `model`, as `schedule` would give it with these settings."""
    plan_prior = Prior(tuple(float(w) for w in prior), "online")
    chosen, verdict = build_guarded(model, config, plan_prior, None, seed,
                                    force_dynamic=force_dynamic, constraints=constraints)
    plan = tuple(dict(zip(model.domains, weights, strict=True))
                 for weights in interval_mixtures(chosen, model))
    return OnlineGuard(verdict, plan)


def guarded(decision: Decision, guard: OnlineGuard, model: FittedModel) -> Decision:
    """`decision`, or the same decision with the held plan's mixture when the guard says so."""
    import numpy as np

    if not guard.holds_plan:
        return decision
    held = guard.plan[decision.switch]
    state = (decision.corrected_loss if decision.corrected_losses is None else np.asarray(
        [decision.corrected_losses[t] for t in model.targets], dtype=np.float64))
    # As `schedule` rolls the plan out (per-stage-history: what the plan trained on so far).
    stages = [[stage[d] for d in model.domains] for stage in guard.plan]
    after = rollout_step(model, stages, decision.switch, state)
    predicted = float(model.objective_of(after))
    per_target = None
    if decision.corrected_losses is not None:  # a model of several targets: each one's too
        per_target = model.target_losses(after)  # type: ignore[union-attr]
    ratio = decision.predicted_loss / decision.predicted_target_loss
    what = ("the best measured run's plan" if guard.verdict.decision == VERIFIED
            else "the static RegMix mixture")
    note = f"guard: steering with {what}: {guard.verdict.reason} (--force-dynamic overrides)"
    return replace(
        decision,
        weights=dict(held),
        predicted_loss=predicted,
        predicted_target_loss=predicted / ratio,
        warnings=(*decision.warnings, note),
        predicted_losses=per_target,
    )
