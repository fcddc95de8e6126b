"""The guard: hand out a dynamic schedule only when the evidence says it beats static RegMix.

`schedule` must never hand the user a plan the evidence says is worse than static RegMix
(docs/explanation/quality.md). Both plans are scored by the SAME transition model: the dynamic
plan's rollout (its last stage's predicted loss) and the static RegMix mixture held from t_1 on,
rolled out from the same l_1 (as `compare` does). Their difference is the predicted advantage.
It is credible only when it exceeds what the model gets wrong on held-out runs:

    advantage >= GUARD_K x error,   error = the largest held-out error the report offers

`error` is the held-out rollout MAE at T_p of the chosen form (5-fold CV on the proxies), or,
when the report has them (phased proxies, `fit`'s `report["evidence"]["forms"][form]`), the
held-out error on transitions after a mixture change (`after_change`) and the held-out rollout
error on verification runs (`verification_rollout`, runs of a second round named by `fit
--verify-prefix`) -- the largest of them, because a schedule lives after changes. A held-out
rank correlation of the rollout below GUARD_MIN_SPEARMAN also makes the advantage not credible.
Verification runs (`report["verification"] = {"dynamic": loss, "static": loss, "sd": noise}`,
losses observed at proxy scale for the two plans) override the model: static wins when the
observed dynamic loss is not lower than static's by more than `sd`.

`judge` is the one decision; everything it used goes into `provenance.guard`.

A measured plan beats a predicted one. With verification runs the report also names the run
of the store that ENDED LOWEST, verification run or proxy (`report["verification"]["best"]`:
its mixture over each grid interval and its observed loss). `weigh_verified` hands out that
run's plan instead of the plan `judge` chose, unless the same model predicts the chosen plan
to end lower by at least the same threshold (k x held-out error): a searched plan is only a
prediction, the run was observed.
Both are scored alike (two static plans by the endpoint model, as static RegMix is searched;
otherwise both rolled out by the transition model from the same l_1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from regmixd_cli.weights import round_weights

# k: chosen by measurement on four world families (docs/explanation/quality.md, bench/quality.py's
# k sweep). The held-out rollout MAE measures level errors, most of which cancel between two
# plans under one model, so the advantage need only be a fraction of it. On 16 worlds (4 per
# family) k in (0.17, 0.28) blocked every world where the schedule truly lost to static RegMix
# by more than 0.01 and kept every world where it won by more than 0.03.
GUARD_K = 0.2
GUARD_MIN_SPEARMAN = 0.5
DYNAMIC = "dynamic"
STATIC = "static"
FORCED = "dynamic-forced"
VERIFIED = "verified"  # the plan of the run that ended lowest (weigh_verified)


class RolloutModel(Protocol):
    """What the guard needs from a model (plan.schedule.ScheduleModel has it)."""

    @property
    def initial_state(self) -> Any: ...
    @property
    def n_switch_points(self) -> int: ...

    @property
    def form(self) -> str | None: ...
    @property
    def grid(self) -> tuple[float, ...]: ...

    def predict_state(
        self, stage: int, mixtures: Any, state: Any, history: Any = None
    ) -> Any: ...

    def objective_of(self, state: Any) -> Any: ...

    def predict_endpoint(self, mixtures: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class VerifiedRun:
    """The run of the store that ended lowest (`fit --verify-prefix`; a proxy or a
    verification run): its name, observed final loss, and mixture over each grid interval
    ([0, t_1), then [t_l, t_{l+1}); model domain order)."""

    run: str
    loss: float
    stages: tuple[tuple[float, ...], ...]

    @property
    def static(self) -> bool:
        """One mixture for the whole run."""
        return len(set(self.stages)) == 1


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the model report (and later, verification runs) says about the model's errors."""

    rollout_mae: float | None = None  # held-out rollout MAE at T_p, chosen form
    rollout_spearman: float | None = None
    endpoint_mae: float | None = None  # held-out MAE of the endpoint model (static RegMix)
    after_change_mae: float | None = None  # held-out MAE on after-change transitions
    verification_mae: float | None = None  # held-out rollout MAE on verification runs
    verification: Mapping[str, float] | None = None  # observed {"dynamic", "static", "sd"}
    best_verified: VerifiedRun | None = None  # the run of the store that ended lowest

    def record(self) -> dict[str, Any]:
        """JSON-ready; only what is known."""
        out = {
            "rollout_mae": self.rollout_mae,
            "rollout_spearman": self.rollout_spearman,
            "endpoint_mae": self.endpoint_mae,
            "after_change_mae": self.after_change_mae,
            "verification_mae": self.verification_mae,
            "verification": None if self.verification is None else dict(self.verification),
        }
        return {k: _clean(v) for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's decision: which plan to hand out, and why."""

    decision: str  # DYNAMIC, STATIC or FORCED
    predicted_advantage: float  # static's predicted final loss - the dynamic plan's (same model)
    threshold: float | None  # the advantage needed (None: no error estimate available)
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def keep_dynamic(self) -> bool:
        """Whether the dynamic plan is handed out."""
        return self.decision in (DYNAMIC, FORCED)

    def record(self) -> dict[str, Any]:
        """`provenance.guard` of the schedule handed out."""
        return {
            "decision": self.decision,
            "predicted_advantage": round(self.predicted_advantage, 6),
            "threshold": None if self.threshold is None else round(self.threshold, 6),
            "k": GUARD_K,
            "reason": self.reason,
            "evidence": self.evidence,
        }


def evidence_from_report(report: Mapping[str, Any], form: str | None) -> Evidence:
    """The model's cross-validation report as Evidence (absent keys stay None)."""
    rollout = _get(report, "endpoint", "rollout", form or "")
    phased = _get(report, "evidence", "forms", form or "")
    after = _get(phased, "after_change") or _get(report, "after_change", form or "")
    verification = report.get("verification")
    ok = isinstance(verification, Mapping) and all(
        _number(verification.get(k)) for k in ("dynamic", "static")
    )
    return Evidence(
        rollout_mae=_number(_get(rollout, "mae")),
        rollout_spearman=_number(_get(rollout, "spearman")),
        endpoint_mae=_number(_get(report, "summary", "endpoint_mae")),
        after_change_mae=_number(_get(after, "mae")),
        verification_mae=_number(_get(phased, "verification_rollout", "mae")),
        verification=(
            {k: float(v) for k, v in verification.items() if _number(v) is not None}
            if ok and isinstance(verification, Mapping)
            else None
        ),
        best_verified=_verified_run(verification.get("best") if ok and isinstance(
            verification, Mapping) else None),
    )


def _verified_run(data: Any) -> VerifiedRun | None:
    """`report.verification.best` as a VerifiedRun; None when absent or malformed (a
    hand-edited report loses the option, never the schedule)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("run"), str):
        return None
    loss, stages = _number(data.get("loss")), data.get("stages")
    if loss is None or not isinstance(stages, list) or not stages:
        return None
    rows: list[tuple[float, ...]] = []
    for row in stages:
        numbers = [_number(v) for v in row] if isinstance(row, list) else [None]
        values = [v for v in numbers if v is not None and v >= 0]
        if len(values) != len(numbers) or abs(sum(values) - 1.0) > 1e-3:
            return None
        rows.append(round_weights(values))  # as a schedule file's weights: sum exactly 1
    if len({len(r) for r in rows}) != 1:
        return None
    return VerifiedRun(data["run"], loss, tuple(rows))


def judge(
    dynamic_loss: float, static_loss: float, evidence: Evidence, *, force: bool = False
) -> Verdict:
    """Dynamic or static, from the two predicted final losses (same model) and the evidence."""
    advantage = float(static_loss) - float(dynamic_loss)
    errors = [
        e for e in (evidence.rollout_mae, evidence.after_change_mae, evidence.verification_mae)
        if e is not None
    ]
    threshold = GUARD_K * max(errors) if errors else None
    record = evidence.record() | {
        "dynamic_predicted": _clean(dynamic_loss),
        "static_predicted": _clean(static_loss),
    }
    decision, reason = _decide(advantage, threshold, evidence)
    if force and decision == STATIC:
        forced = f"``force_dynamic`` overrode: {reason}"
        return Verdict(FORCED, advantage, threshold, forced, record)
    return Verdict(decision, advantage, threshold, reason, record)


def _decide(advantage: float, threshold: float | None, evidence: Evidence) -> tuple[str, str]:
    check = evidence.verification
    if check is not None:
        sd = float(check.get("sd", 0.0))
        gain = check["static"] - check["dynamic"]
        if gain <= sd:
            return STATIC, (
                f"verification runs: the dynamic plan's observed loss is not lower than static's "
                f"by more than their noise ({gain:+.4f} <= {sd:.4f})"
            )
        return DYNAMIC, f"verification runs: dynamic beats static by {gain:.4f} (> noise {sd:.4f})"
    if not math.isfinite(advantage) or advantage <= 0:
        return STATIC, (
            f"the model predicts no advantage over static RegMix ({advantage:+.4f}): "
            "static is the better-supported plan"
        )
    rho = evidence.rollout_spearman
    if rho is not None and rho < GUARD_MIN_SPEARMAN:
        return STATIC, (
            f"the transition model ranks held-out runs poorly (rollout rho {rho:.3f} < "
            f"{GUARD_MIN_SPEARMAN}), so its predicted advantage {advantage:.4f} is not credible"
        )
    if threshold is None:
        return DYNAMIC, f"predicted advantage {advantage:.4f}; the model reports no held-out error"
    if advantage < threshold:
        return STATIC, (
            f"predicted advantage {advantage:.4f} < {GUARD_K:g} x held-out rollout error "
            f"{threshold / GUARD_K:.4f}: not credible"
        )
    return DYNAMIC, (
        f"predicted advantage {advantage:.4f} >= {GUARD_K:g} x held-out rollout error "
        f"{threshold / GUARD_K:.4f}"
    )


def weigh_verified(
    verdict: Verdict, chosen: Sequence[Sequence[float]], run: VerifiedRun, model: RolloutModel
) -> Verdict:
    """`verdict`, or VERIFIED: the best measured run's plan, unless the model predicts the
    chosen plan (`chosen`: its mixture over each grid interval) to end lower by at least the
    verdict's threshold. A forced verdict stays forced; a chosen plan that IS the run's plan
    (to the weights' 1e-6 rounding) needs no weighing."""
    import numpy as np

    ours, theirs = np.asarray(chosen, dtype=np.float64), np.asarray(run.stages)
    if verdict.decision == FORCED or ours.shape != theirs.shape:
        return verdict
    if np.abs(ours - theirs).max() <= 1e-6:
        return verdict
    plans = [tuple(tuple(float(w) for w in stage) for stage in chosen), run.stages]
    if all(len(set(plan)) == 1 for plan in plans):  # two static plans: RegMix's own ranking
        scored = np.asarray(model.predict_endpoint(np.asarray([p[0] for p in plans],
                                                              dtype=np.float32)))
        chosen_loss, run_loss, by = float(scored[0]), float(scored[1]), "endpoint model"
    else:
        chosen_loss, run_loss = (plan_rollout(model, plan) for plan in plans)
        by = "rollout"
    margin = run_loss - chosen_loss
    threshold = verdict.threshold or 0.0
    evidence = verdict.evidence | {"verified_run": {
        "run": run.run, "observed": _clean(run.loss), "predicted": _clean(run_loss),
        "chosen_predicted": _clean(chosen_loss), "scored_by": by}}
    if math.isfinite(margin) and margin >= threshold:
        reason = (f"{verdict.reason}; kept over the best measured run {run.run} (observed "
                  f"{run.loss:.4f}): the model predicts it {margin:.4f} lower (>= {threshold:.4f})")
        return Verdict(verdict.decision, verdict.predicted_advantage, verdict.threshold, reason,
                       evidence)
    reason = (f"the best measured run {run.run} was observed at {run.loss:.4f}; the model "
              f"predicts the {verdict.decision} plan only {margin:+.4f} lower (< {threshold:.4f}, "
              f"not credible), so the measured plan is handed out ({verdict.reason})")
    return Verdict(VERIFIED, verdict.predicted_advantage, verdict.threshold, reason, evidence)


def plan_rollout(model: RolloutModel, stages: Sequence[Sequence[float]]) -> float:
    """Predicted final loss of a plan (its mixture over each grid interval) by the transition
    model, from the proxies' mean l_1."""
    state: Any = model.initial_state  # one loss, or one per target (fit.objective)
    for stage in range(1, model.n_switch_points + 1):
        state = rollout_step(model, stages, stage, state)
    return float(model.objective_of(state))


def rollout_step(
    model: RolloutModel, stages: Sequence[Sequence[float]], stage: int, state: Any
) -> Any:
    """The state at t_{stage+1} of a plan (its mixture over each grid interval) from its state
    at t_stage; the per-stage-history form also reads what the plan trained on so far, as the
    schedule search does."""
    import numpy as np

    from regmixd_cli.fit.model import PER_STAGE_HISTORY

    weights = np.asarray(stages, dtype=np.float64)
    mixture = weights[stage : stage + 1].astype(np.float32)
    history = None  # a run that trained on this mixture all along is its own history
    if model.form == PER_STAGE_HISTORY and np.ptp(weights[: stage + 1], axis=0).any():
        history = plan_history(model.grid, weights, stage)
    predicted = (model.predict_state(stage, mixture, state) if history is None
                 else model.predict_state(stage, mixture, state, history=history))
    result = np.asarray(predicted)[0]
    return float(result) if np.ndim(result) == 0 else result


def plan_history(grid: Sequence[float], mixtures: Any, stage: int) -> Any:
    """What plan(s) (`mixtures`: (..., N+1, K), each interval's mixture) trained on over
    [0, t_stage): the step-weighted mean of their first `stage` intervals, float32 (...,  K)."""
    import numpy as np

    spans = np.diff([0.0, *grid])[:stage]
    seen = np.einsum("j,...jk->...k", spans, np.asarray(mixtures, dtype=np.float64)[..., :stage, :])
    result: Any = (seen / spans.sum()).astype(np.float32)
    return result


def static_rollout(model: RolloutModel, weights: Sequence[float]) -> float:
    """Predicted final loss of a static mixture held from t_1 on, by the transition model."""
    return plan_rollout(model, [weights] * (model.n_switch_points + 1))


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _clean(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value
