"""Predicted loss trajectories of schedules and mixtures under a fitted model (predict, compare).

Conventions (recorded in docs/DECISIONS.md):
- Every item becomes a *plan*: piecewise-constant mixtures over its own step axis (a schedule's
  stages, or one segment for a mixture). The model's interval l, [t_{l-1}, t_l) on the proxy
  axis, maps onto the plan by fraction, with the boundaries rounded half up exactly as
  `regmixd schedule` places its switch steps, so an offline schedule's stages line up with the
  intervals exactly. An interval that spans several stages gets their step-weighted mean.
- The rollout starts at the model's initial loss l_1 at t_1 (the mean proxy loss there) for every
  item, and applies transition j with the mixture in force during [t_j, t_{j+1}). Segment 0's
  mixture therefore does not move the prediction: the proxies give no information on it.
- Static items also get the endpoint model's prediction (plain RegMix), and that is their final
  loss: measured on three simulated worlds it was within 0.035 of the true final loss, while the
  rollout (which starts every item at the proxies' mean l_1) overshot static mixtures by 0.19 to
  0.37. Schedules get the rollout's last point (within 0.06 of the truth on the same worlds).
  An endpoint-only model predicts the final loss of static items only.
- Where the model carries an ensemble (`model.ensemble`, members with `predict_transition`), each
  point gets the members' [min, max] as its interval; otherwise the interval is absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import LOSS_DECIMALS, Schedule
from regmixd_cli.errors import ModelError
from regmixd_cli.fit.model import PER_STAGE_HISTORY
from regmixd_cli.plan.guard import evidence_from_report, judge, plan_history, weigh_verified
from regmixd_cli.plan.schedule import (
    ScheduleModel,
    best_verified_run,
    build_schedule,
    build_static,
    resolve_schedule_prior,
)
from regmixd_cli.weights import check_mixture, round_weights

if TYPE_CHECKING:
    import numpy as np

    from regmixd_cli.plan.search import SearchConfig

MIXTURE = "mixture"
PRIOR = "prior"
STATIC = "static"
OFFLINE = "offline"
BUILTINS = (PRIOR, STATIC, OFFLINE)
SHARE_DECIMALS = 6
ENDPOINT = "endpoint"
ROLLOUT = "rollout"

Segment = tuple[int, int, tuple[float, ...]]  # [start, end) on the plan's axis, and its weights


@dataclass(frozen=True, slots=True)
class Plan:
    """What an item prescribes: piecewise-constant mixtures (model domain order) over [0, steps)."""

    name: str
    method: str  # "mixture", "prior", or a schedule's method
    steps: int
    segments: tuple[Segment, ...]

    @property
    def static(self) -> bool:
        """One mixture for the whole run."""
        return len({weights for _, _, weights in self.segments}) == 1


@dataclass(frozen=True, slots=True)
class Prediction:
    """A plan's predicted trajectory at the model's grid points t_1..t_{N+1}."""

    plan: Plan
    interval_weights: tuple[tuple[float, ...], ...]  # mixture in force in [t_{l-1}, t_l), l=1..N+1
    losses: tuple[float, ...]  # l_1..l_{N+1}; empty for an endpoint-only model
    bands: tuple[tuple[float, float], ...] | None  # the ensemble's [min, max] per point
    outside: tuple[bool, ...]  # point outside the loss range the proxies reached there
    final_loss: float  # endpoint_loss for static plans, else the rollout's last point
    final_from: str  # "endpoint" or "rollout"
    endpoint_loss: float | None  # endpoint model (RegMix), static plans only
    share: tuple[float, ...]  # step-weighted share of each domain over the whole run
    # A model of several targets: each target's final loss (same source as final_loss).
    target_losses: tuple[tuple[str, float], ...] | None = None


def plan_from_mixture(
    name: str,
    weights: dict[str, Any],
    domains: Sequence[str],
    where: str,
    *,
    allow_missing: bool = False,
    method: str = MIXTURE,
) -> Plan:
    """One mixture for the whole run, checked against the model's domains."""
    checked = check_mixture(weights, domains, where, fill_missing=allow_missing)
    return Plan(name, method, 1, ((0, 1, checked),))


def plan_from_schedule(
    name: str, schedule: Schedule, domains: Sequence[str], where: str, *, allow_missing: bool
) -> Plan:
    """A schedule's stages, each checked against the model's domains."""
    segments = tuple(
        (
            stage.start_step,
            stage.end_step,
            check_mixture(
                schedule.weights_of(stage), domains, f"{where}: stage {i}",
                fill_missing=allow_missing,
            ),
        )
        for i, stage in enumerate(schedule.stages)
    )
    return Plan(name, schedule.method, schedule.target_steps, segments)


def builtin_plan(
    name: str, model: ScheduleModel, config: SearchConfig, seed: int, model_sha256: str = ""
) -> Plan:
    """`prior`, `static` (RegMix) or `offline` (RegMix-D Algorithm 1), computed from the model."""
    prior = resolve_schedule_prior(None, model)
    if name == PRIOR:
        return Plan(PRIOR, PRIOR, 1, ((0, 1, tuple(prior.weights)),))
    build = {STATIC: build_static, OFFLINE: build_schedule}[name]
    schedule = build(model, config, prior, None, seed, model_sha256=model_sha256)
    return plan_from_schedule(name, schedule, model.domains, name, allow_missing=False)


def boundaries(grid: Sequence[float], proxy_steps: float, steps: int) -> list[int]:
    """[0, S_1, ..., S_N, steps]: the grid on a plan's axis, rounded half up like schedules."""
    inner = [math.floor(t * steps / proxy_steps + 0.5) for t in grid[:-1]]
    return [0, *inner, steps]


def interval_weights(plan: Plan, grid: Sequence[float], proxy_steps: float) -> list[list[float]]:
    """The mixture in force in each model interval [t_{l-1}, t_l), l = 1..N+1."""
    bounds = boundaries(grid, proxy_steps, plan.steps)
    n_domains = len(plan.segments[0][2])
    result = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if hi <= lo:  # an interval narrower than one step of the plan: take the stage it is in
            at = min(lo, plan.steps - 1)
            weights = next(w for s, e, w in plan.segments if s <= at < e)
            result.append(list(weights))
            continue
        mixed = [0.0] * n_domains
        for start, end, weights in plan.segments:
            overlap = min(hi, end) - max(lo, start)
            if overlap > 0:
                for k, w in enumerate(weights):
                    mixed[k] += overlap * w
        result.append([w / (hi - lo) for w in mixed])
    return result


def token_share(plan: Plan) -> tuple[float, ...]:
    """Each domain's share of the whole run (equal tokens per step)."""
    n_domains = len(plan.segments[0][2])
    totals = [
        math.fsum((end - start) * w[k] for start, end, w in plan.segments) for k in range(n_domains)
    ]
    return tuple(t / plan.steps for t in totals)


def _ensemble_members(model: Any) -> tuple[Any, ...]:
    """The model's ensemble members with `predict_transition` (none until the model has one)."""
    ensemble = getattr(model, "ensemble", None)
    if ensemble is None:
        return ()
    members = getattr(ensemble, "members", ensemble)
    try:
        return tuple(m for m in members if hasattr(m, "predict_transition"))
    except TypeError:
        return ()


def _rollout(model: Any, mixtures: np.ndarray, initial: Any) -> tuple[np.ndarray, np.ndarray]:
    """(C, N+1) losses from the state `initial` at t_1, then transition j with mixtures[:, j]
    (C, N+1, K); and the last state of each plan (C,) or (C, T) (one loss per target). The
    per-stage-history form also reads what each plan trained on so far, as `schedule` does."""
    import numpy as np

    n_plans, n_points, _ = mixtures.shape
    path = np.empty((n_plans, n_points), dtype=np.float64)
    state = np.broadcast_to(np.asarray(initial, dtype=np.float64),
                            (n_plans, *np.shape(initial))).copy()
    path[:, 0] = model.objective_of(state)
    for j in range(1, n_points):
        step = np.ascontiguousarray(mixtures[:, j, :], dtype=np.float32)
        if getattr(model, "form", None) == PER_STAGE_HISTORY:
            history = plan_history(model.grid, mixtures, j)
            state = np.asarray(model.predict_state(j, step, state, history=history),
                               dtype=np.float64)
        else:
            state = np.asarray(model.predict_state(j, step, state), dtype=np.float64)
        path[:, j] = np.asarray(model.objective_of(state)).reshape(-1)
    return path, state


def predict_plans(model: ScheduleModel, plans: Sequence[Plan]) -> list[Prediction]:
    """Predicted trajectories (and endpoint losses of static plans) of every plan, batched."""
    import numpy as np

    grid, proxy_steps = model.grid, model.proxy_steps
    weights = np.asarray([interval_weights(p, grid, proxy_steps) for p in plans], dtype=np.float64)
    static = [p.static for p in plans]
    endpoint = np.full(len(plans), math.nan)
    several = len(getattr(model, "targets", ())) > 1
    ends = None  # a model of several targets: each target's endpoint prediction (plans, T)
    if any(static) or several:
        first = np.asarray([p.segments[0][2] for p in plans], dtype=np.float32)
        if several:
            ends = model.predict_endpoint_targets(first)  # type: ignore[attr-defined]
            endpoint = np.asarray(model.objective_of(ends), dtype=np.float64).reshape(-1)
        else:
            endpoint = np.asarray(model.predict_endpoint(first), dtype=np.float64).reshape(-1)
    if model.has_transitions:
        paths, last = _rollout(model, weights, model.initial_state)
        members = _ensemble_members(model)
        stacked = [_rollout(m, weights, model.initial_state)[0] for m in members]
        low = np.min(stacked, axis=0) if stacked else None
        high = np.max(stacked, axis=0) if stacked else None
    else:
        dynamic = [p.name for p, s in zip(plans, static, strict=True) if not s]
        if dynamic:
            raise ModelError(
                f"{dynamic[0]}: the model was fitted on endpoint losses only and cannot predict a "
                "schedule that changes mixture; compare static mixtures, or fit on trajectories"
            )
        paths, low, high, last = None, None, None, None
    per_target = None if ends is None else _target_finals(model.targets, plans, ends, last)
    ranges = list(getattr(model, "loss_ranges", ()) or ())
    result = []
    for i, plan in enumerate(plans):
        losses = () if paths is None else tuple(_round(v) for v in paths[i])
        outside = tuple(
            bool(ranges) and not ranges[j][0] <= loss <= ranges[j][1]
            for j, loss in enumerate(losses)
        )
        bands = None
        if low is not None and high is not None:
            bands = tuple((_round(a), _round(b)) for a, b in zip(low[i], high[i], strict=True))
        end = None if not static[i] else _round(float(endpoint[i]))
        final = end if end is not None else losses[-1]  # no end: a dynamic plan, so a rollout
        result.append(
            Prediction(
                plan=plan,
                interval_weights=tuple(tuple(_round(w, 6) for w in row) for row in weights[i]),
                losses=losses,
                bands=bands,
                outside=outside,
                final_loss=final,
                final_from=ENDPOINT if end is not None else ROLLOUT,
                endpoint_loss=end,
                # Millionths summing to exactly 1, like every mixture regmixd writes.
                share=round_weights(token_share(plan)),
                target_losses=None if per_target is None else per_target[i],
            )
        )
    return result


def _target_finals(
    targets: Sequence[str], plans: Sequence[Plan], ends: np.ndarray, last: np.ndarray | None
) -> list[tuple[tuple[str, float], ...]]:
    """A model of several targets: each plan's final loss per target, from where its
    `final_loss` comes (the endpoint predictions `ends` for static plans, else the rollout's
    last state)."""
    return [
        tuple((t, _round(v)) for t, v in zip(
            targets, ends[i] if plan.static or last is None else last[i], strict=True))
        for i, plan in enumerate(plans)
    ]


def _round(value: float, digits: int = LOSS_DECIMALS) -> float:
    return round(float(value), digits)


def axis_steps(grid: Sequence[float], proxy_steps: float, steps: int) -> list[int]:
    """The target steps of the grid points t_1..t_{N+1} on an axis of `steps` steps."""
    return boundaries(grid, proxy_steps, steps)[1:]


def prediction_to_dict(
    prediction: Prediction, model: ScheduleModel, steps: int, best: float | None = None
) -> dict[str, Any]:
    """One item as JSON: its points, final and endpoint loss, shares, and the gap to the best."""
    domains = list(model.domains)
    plan = prediction.plan
    points = []
    at_steps = axis_steps(model.grid, model.proxy_steps, steps)
    for j, loss in enumerate(prediction.losses):
        points.append(
            {
                "point": j + 1,
                "proxy_step": float(model.grid[j]),
                "step": at_steps[j],
                "fraction": round(model.grid[j] / model.proxy_steps, 4),
                "loss": loss,
                "interval": None if prediction.bands is None else list(prediction.bands[j]),
                "outside_training_range": prediction.outside[j],
                "weights": dict(zip(domains, prediction.interval_weights[j], strict=True)),
            }
        )
    result: dict[str, Any] = {
        "item": plan.name,
        "method": plan.method,
        "static": plan.static,
        "points": points,
        "switch_losses": [p["loss"] for p in points[:-1]],
        "final_loss": prediction.final_loss,
        "final_from": prediction.final_from,
        "rollout_loss": prediction.losses[-1] if prediction.losses else None,
        "rollout_interval": list(prediction.bands[-1]) if prediction.bands else None,
        "endpoint_loss": prediction.endpoint_loss,
        "share": dict(zip(domains, prediction.share, strict=True)),
    }
    if prediction.target_losses is not None:
        result["target_losses"] = dict(prediction.target_losses)
    if best is not None:
        result["delta_to_best"] = _round(prediction.final_loss - best)
    return result


def comparison_to_dict(
    predictions: Sequence[Prediction], model: ScheduleModel, steps: int
) -> dict[str, Any]:
    """Several items side by side, with each one's gap to the lowest predicted final loss."""
    best = min(p.final_loss for p in predictions)
    return {
        "target": model.target,
        **({"targets": list(model.targets)} if len(getattr(model, "targets", ())) > 1 else {}),
        "domains": list(model.domains),
        "target_steps": steps,
        "switch_steps": axis_steps(model.grid, model.proxy_steps, steps)[:-1],
        "initial_loss": None if math.isnan(model.initial_loss) else _round(model.initial_loss),
        "best": next(p.plan.name for p in predictions if p.final_loss == best),
        "items": [prediction_to_dict(p, model, steps, best) for p in predictions],
    }



def guard_rows(model: ScheduleModel, predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
    """The guard's verdict (plan.guard.judge) on each schedule against a static item.

    The static item is the built-in `static` if compared, else a regmix-static schedule, else
    the static item with the lowest rollout; both are scored by the same rollout. A model
    with verification runs also weighs each schedule against the run that ended lowest
    (plan.guard.weigh_verified: decision "verified" when the schedule cannot credibly beat
    it). Empty when there is no schedule, no static item, or no transition model.
    """
    statics = [p for p in predictions if p.plan.static and p.losses]
    dynamics = [p for p in predictions if not p.plan.static and p.losses]
    if not statics or not dynamics:
        return []
    named = [p for p in statics if p.plan.name == STATIC or p.plan.method == "regmix-static"]
    ref = named[0] if named else min(statics, key=lambda p: p.losses[-1])
    evidence = evidence_from_report(getattr(model, "report", None) or {}, model.form)
    run = best_verified_run(model)  # over the model's grid and domains, else None
    rows = []
    for p in dynamics:
        verdict = judge(p.losses[-1], ref.losses[-1], evidence)
        if run is not None:  # against the plan the verdict chose
            chosen = p if verdict.keep_dynamic else ref
            verdict = weigh_verified(verdict, chosen.interval_weights, run, model)
        rows.append({"item": p.plan.name, "against": ref.plan.name} | verdict.record())
    return rows
