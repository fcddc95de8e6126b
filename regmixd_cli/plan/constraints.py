"""Constraints on mixtures: weight bounds, epoch budgets, smooth schedules.

A `Constraints` value holds, in domain order, per-domain `min`/`max` weights, a token budget
(`max_epochs x available_tokens`), the target's tokens per step and the largest L1 change
between consecutive stages. It comes from a TOML file (`--constraints`), from flags, or both
(flags win, key by key).

The whole-schedule epoch budget is enforced stage by stage with a **rate cap**: a stage may
use domain k at most at the rate its *remaining* budget allows over the *remaining* steps,

    w_k <= remaining_k / (steps_left x tokens_per_step),    steps_left counting this stage.

After a stage that obeys it, the next stage's cap is never lower (unused budget rolls
forward), so (a) the summed use never exceeds the budget, and (b) repeating the previous
mixture is always feasible, which is why a `max_change` limit can never strand a later stage.
Each stage's feasible set is then the box [min, cap] intersected with the simplex (and, after
segment 0, the L1 ball around the previous stage): convex, so the top-k mean of feasible
candidates is feasible, and the nearest feasible mixture is a cheap Euclidean projection.
Rejected: greedy reservation (a stage may use anything that leaves later stages feasible),
which allows front-loading a scarce domain but lets a `max_change` limit strand later stages.

Weights are written in millionths; `Region.round` rounds inside the box, and the L1 limit is
searched with a margin of 2K millionths, so the written file satisfies every constraint exactly.

See docs/how-to/constraints.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import InfeasibleError, InputError, UsageError
from regmixd_cli.weights import UNITS, reject_unknown_domains, round_units, round_weights

if TYPE_CHECKING:
    import numpy as np

    from regmixd_cli.plan.search import SearchConfig, SearchResult

DOMAIN_KEYS = ("min", "max", "available_tokens", "max_epochs")
SCHEDULE_KEYS = ("tokens_per_step", "max_change")
DEFAULT_MAX_EPOCHS = 1.0  # a domain with available tokens but no max_epochs is seen once
# Below this share of feasible Dirichlet candidates, the search samples inside the region.
MAP_BELOW = 0.05
PILOT_CANDIDATES = 4096
BISECTION_STEPS = 40
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Constraints:
    """Per-domain bounds and budgets in domain order, and schedule-wide limits."""

    domains: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    budget: tuple[float | None, ...]  # max_epochs x available tokens; None: unlimited
    tokens_per_step: float | None = None
    max_change: float | None = None
    source: str = "constraint flags"  # where they came from, for error messages
    record: dict[str, Any] = field(default_factory=dict)  # as given, for provenance

    @property
    def has_budget(self) -> bool:
        """Whether any domain has a token budget."""
        return any(b is not None for b in self.budget)


def parse_constraints(
    data: Mapping[str, Any] | None,
    domains: Sequence[str],
    where: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    owner: str = "the model",
) -> Constraints:
    """Constraints from a parsed TOML document (`where` names it) and flag overrides.

    `overrides` may hold `min`/`max`/`available_tokens` ({domain: value}), `max_epochs`
    (applies to every domain with available tokens), `tokens_per_step`, `max_change`.
    Problems in the file are InputErrors naming it; problems in flags are UsageErrors.
    `owner` names where `domains` come from in messages ("the model", "the prior").
    """
    spec: dict[str, dict[str, float]] = {}
    schedule: dict[str, float] = {}
    if data is not None:
        unknown = sorted(set(data) - {"domains", "schedule"})
        if unknown:
            raise InputError(
                f"{where}: unknown table(s) {', '.join(unknown)}; "
                "use [domains.<name>] and [schedule]"
            )
        raw_domains = data.get("domains", {})
        if not isinstance(raw_domains, Mapping):
            raise InputError(f"{where}: `domains` must be a table of [domains.<name>] tables")
        reject_unknown_domains(raw_domains, domains, where, f"{owner} has")
        for name, table in raw_domains.items():
            at = f"{where}: [domains.{name}]"
            if not isinstance(table, Mapping):
                raise InputError(f"{at} must be a table")
            bad = sorted(set(table) - set(DOMAIN_KEYS))
            if bad:
                raise InputError(
                    f"{at}: unknown key(s) {', '.join(bad)}; use {', '.join(DOMAIN_KEYS)}"
                )
            spec[name] = {k: _number(v, f"{at} {k}", InputError) for k, v in table.items()}
        raw_schedule = data.get("schedule", {})
        if not isinstance(raw_schedule, Mapping):
            raise InputError(f"{where}: [schedule] must be a table")
        bad = sorted(set(raw_schedule) - set(SCHEDULE_KEYS))
        if bad:
            raise InputError(
                f"{where}: [schedule]: unknown key(s) {', '.join(bad)}; "
                f"use {', '.join(SCHEDULE_KEYS)}"
            )
        schedule = {
            k: _number(v, f"{where}: [schedule] {k}", InputError) for k, v in raw_schedule.items()
        }
    for key, values in (overrides or {}).items():
        if values is None:
            continue
        if key in ("min", "max", "available_tokens"):
            for name, value in values.items():
                if name not in domains:
                    raise UsageError(
                        f"--{key.replace('_', '-')} {name}=...: unknown domain; {owner} has "
                        f"{', '.join(domains)}"
                    )
                spec.setdefault(name, {})[key] = _number(value, f"--{key} {name}", UsageError)
        elif key == "max_epochs":
            for table in spec.values():
                if "available_tokens" in table:
                    table["max_epochs"] = _number(values, "--max-epochs", UsageError)
        else:
            schedule[key] = _number(values, f"--{key.replace('_', '-')}", UsageError)
    source = where if data is not None else "constraint flags"
    return _build(domains, spec, schedule, source)


def _number(value: Any, what: str, error: type[Exception]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _build(
    domains: Sequence[str],
    spec: dict[str, dict[str, float]],
    schedule: dict[str, float],
    source: str,
) -> Constraints:
    err = InputError if source != "constraint flags" else UsageError
    lower, upper, budget = [], [], []
    for name in domains:
        table = spec.get(name, {})
        lo, hi = table.get("min", 0.0), table.get("max", 1.0)
        if not 0.0 <= lo <= 1.0 or not 0.0 <= hi <= 1.0 or lo > hi:
            raise err(f"{source}: {name}: need 0 <= min <= max <= 1, got min {lo:g}, max {hi:g}")
        tokens, epochs = table.get("available_tokens"), table.get("max_epochs")
        if epochs is not None and tokens is None:
            raise err(f"{source}: {name}: max_epochs without available_tokens; give both")
        if tokens is not None and tokens < 0:
            raise err(f"{source}: {name}: available_tokens must be >= 0, got {tokens:g}")
        if epochs is not None and not epochs > 0:
            raise err(f"{source}: {name}: max_epochs must be > 0, got {epochs:g}")
        lower.append(lo)
        upper.append(hi)
        budget.append(
            None if tokens is None else tokens * (DEFAULT_MAX_EPOCHS if epochs is None else epochs)
        )
    tps = schedule.get("tokens_per_step")
    if tps is not None and not tps > 0:
        raise err(f"{source}: [schedule] tokens_per_step must be > 0, got {tps:g}")
    change = schedule.get("max_change")
    if change is not None and not 0.0 <= change <= 2.0:
        raise err(
            f"{source}: [schedule] max_change must be in [0, 2] (an L1 distance), got {change:g}"
        )
    record = {
        "source": source,
        "domains": {d: dict(sorted(spec[d].items())) for d in domains if d in spec and spec[d]},
        "schedule": dict(sorted(schedule.items())),
    }
    return Constraints(
        tuple(domains), tuple(lower), tuple(upper), tuple(budget), tps, change, source, record
    )


def check_bounds(
    constraints: Constraints, upper: Sequence[float] | np.ndarray | None = None
) -> None:
    """InfeasibleError naming the binding constraint when no mixture fits the bounds."""
    lo = list(constraints.lower)
    hi = list(constraints.upper if upper is None else upper)
    names = constraints.domains
    if math.fsum(lo) > 1.0 + EPS:
        named = ", ".join(f"{d} {w:g}" for d, w in zip(names, lo, strict=True) if w > 0)
        raise InfeasibleError(
            f"{constraints.source}: the min weights sum to {math.fsum(lo):.4g} > 1 ({named}); "
            "lower some `min`"
        )
    if math.fsum(constraints.upper) < 1.0 - EPS:
        raise InfeasibleError(
            f"{constraints.source}: the max weights sum to {math.fsum(constraints.upper):.4g} < 1; "
            "raise some `max`"
        )
    for d, a, b, c in zip(names, lo, hi, constraints.upper, strict=True):
        if a > b + EPS and b < c:
            raise InfeasibleError(
                f"{constraints.source}: epoch budget of {d}: its min weight {a:g} needs more "
                f"tokens than max_epochs x available_tokens allow (at most {b:.4g} of the run); "
                f"lower its min, or raise its available_tokens/max_epochs"
            )
    if math.fsum(hi) < 1.0 - EPS:
        capped = [d for d, b, c in zip(names, hi, constraints.upper, strict=True) if b < c]
        raise InfeasibleError(
            f"{constraints.source}: epoch budget: the domains can supply at most "
            f"{math.fsum(hi):.4g} of the run's tokens (budget-bound: {', '.join(capped)}); "
            "raise available_tokens/max_epochs, or shorten --target-steps"
        )


# ----------------------------------------------------------------------------- one stage


@dataclass(frozen=True, slots=True)
class Region:
    """The feasible mixtures of one stage: box [lower, upper] on the simplex, and an L1 ball."""

    lower: np.ndarray
    upper: np.ndarray
    previous: np.ndarray | None = None
    max_change: float | None = None

    @property
    def search_change(self) -> float | None:
        """The L1 limit the search uses: max_change less the rounding margin (2K millionths)."""
        if self.previous is None or self.max_change is None:
            return None
        return max(0.0, self.max_change - 2.0 * self.lower.size / UNITS)

    def contains(self, candidates: np.ndarray, slack: float = 1e-6) -> np.ndarray:
        """Boolean mask of the (C, K) candidates inside the region (within `slack`)."""
        import numpy as np

        ok = np.all(candidates >= self.lower - slack, axis=1)
        ok &= np.all(candidates <= self.upper + slack, axis=1)
        change = self.search_change
        if change is not None:
            assert self.previous is not None
            ok &= np.abs(candidates - self.previous).sum(axis=1) <= change + slack
        return np.asarray(ok)

    def project(self, candidates: np.ndarray) -> np.ndarray:
        """Map (C, K) mixtures into the region: Euclidean projection onto box and simplex,
        then (with an L1 limit) a pull towards the previous stage along the segment."""
        import numpy as np

        w = project_box_simplex(np.asarray(candidates, dtype=np.float64), self.lower, self.upper)
        change = self.search_change
        if change is not None:
            assert self.previous is not None
            step = w - self.previous
            dist = np.abs(step).sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                shrink = np.where(dist > change, change / dist, 1.0)
            # A convex combination of two points of the box-simplex stays in it.
            w = self.previous + shrink * step
        return w

    def transform(self, candidates: np.ndarray) -> None:
        """`project`, in place on the search's float32 chunk."""
        candidates[...] = self.project(candidates)

    def round(self, weights: Sequence[float] | np.ndarray) -> tuple[float, ...]:
        """Millionths summing to exactly 1 that stay inside the box (largest remainders first)."""
        import numpy as np

        w = self.project(np.asarray(weights, dtype=np.float64)[None, :])[0]
        lo = np.ceil(self.lower * UNITS - 1e-6).astype(np.int64)
        hi = np.floor(self.upper * UNITS + 1e-6).astype(np.int64)
        if lo.sum() > UNITS or hi.sum() < UNITS or np.any(lo > hi):  # bounds finer than 1e-6
            return round_weights(w.tolist())
        units = round_units(w.tolist(), UNITS, lo.tolist(), hi.tolist())
        return tuple(u / UNITS for u in units)

    def check(self, source: str, domains: Sequence[str]) -> None:
        """InfeasibleError naming the binding constraint when the region is empty."""
        import numpy as np

        if self.lower.sum() > 1.0 + EPS or self.upper.sum() < 1.0 - EPS:
            raise InfeasibleError(
                f"{source}: the epoch budget left for this stage admits no mixture (caps sum to "
                f"{self.upper.sum():.4g}); raise available_tokens/max_epochs"
            )
        if self.previous is not None and self.max_change is not None:
            # Smallest L1 move from `previous` into the box: twice the mass that must move.
            out = np.maximum(self.previous - self.upper, 0).sum()
            into = np.maximum(self.lower - self.previous, 0).sum()
            need = 2.0 * max(out, into)
            if need > self.max_change + self.lower.size / UNITS:  # the file's resolution
                bound = [
                    d
                    for d, p, lo, hi in zip(
                        domains, self.previous, self.lower, self.upper, strict=True
                    )
                    if p > hi + EPS or p < lo - EPS
                ]
                raise InfeasibleError(
                    f"{source}: max_change {self.max_change:g} is unreachable: leaving the "
                    f"previous stage for the bounds of {', '.join(bound)} needs an L1 change of "
                    f"{need:.4g}; raise max_change"
                )


def project_box_simplex(v: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of `v` onto {lower <= w <= upper, sum w = 1}.

    The projection is clip(v - theta, lower, upper) for the shift theta that makes the row
    sum to 1; theta is found by bisection (the sum is monotone in theta), then the last
    rounding error goes to coordinates strictly inside their bounds.
    """
    import numpy as np

    low = (v - upper).min(axis=1, keepdims=True)  # every coordinate at its upper bound
    high = (v - lower).max(axis=1, keepdims=True)  # every coordinate at its lower bound
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (low + high)
        total = np.clip(v - mid, lower, upper).sum(axis=1, keepdims=True)
        above = total > 1.0
        low = np.where(above, mid, low)
        high = np.where(above, high, mid)
    w = np.clip(v - 0.5 * (low + high), lower, upper)
    # Spread the residual (~1e-12) over coordinates with room, proportionally to that room.
    gap = 1.0 - w.sum(axis=1, keepdims=True)
    room = np.where(gap > 0, upper - w, w - lower)
    total_room = room.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = w + np.where(total_room > 0, gap * room / total_room, 0.0)
    result: np.ndarray = np.clip(w, lower, upper)
    return result


# ----------------------------------------------------------------------- whole schedules


class BudgetPlan:
    """Stage-by-stage regions of one schedule: tracks the remaining budget (the rate cap).

    Build it for `total_steps` target steps, then for each stage in order call
    `region(n_steps)` and `commit(weights, n_steps)`.
    """

    def __init__(self, constraints: Constraints, total_steps: int) -> None:
        import numpy as np

        if constraints.has_budget and constraints.tokens_per_step is None:
            raise InputError(
                f"{constraints.source}: available_tokens needs [schedule] tokens_per_step (the "
                "target's tokens per step) to turn weights into tokens; add it"
            )
        self.constraints = constraints
        self.remaining = np.asarray(
            [np.inf if b is None else b for b in constraints.budget], dtype=np.float64
        )
        self.steps_left = int(total_steps)
        self.previous: np.ndarray | None = None
        self.used = np.zeros(len(constraints.domains))

    def caps(self) -> np.ndarray:
        """Per-domain weight caps for the next stage: max, and the budget's rate cap."""
        import numpy as np

        c = self.constraints
        tokens = float(c.tokens_per_step or 1.0) * max(self.steps_left, 1)
        with np.errstate(invalid="ignore"):
            rate = np.where(np.isinf(self.remaining), 1.0, np.maximum(self.remaining, 0) / tokens)
        caps: np.ndarray = np.minimum(np.asarray(c.upper), rate)
        return caps

    def region(self, with_change: bool = True) -> Region:
        """The feasible set of the next stage; InfeasibleError naming the binding constraint."""
        import numpy as np

        caps = self.caps()
        check_bounds(self.constraints, caps)
        region = Region(
            np.asarray(self.constraints.lower, dtype=np.float64),
            caps,
            self.previous if with_change else None,
            self.constraints.max_change if with_change else None,
        )
        region.check(self.constraints.source, self.constraints.domains)
        return region

    def commit(self, weights: Sequence[float], n_steps: int) -> None:
        """Record a stage's mixture used for `n_steps` steps."""
        import numpy as np

        w = np.asarray(weights, dtype=np.float64)
        use = w * float(self.constraints.tokens_per_step or 0.0) * n_steps
        self.remaining = self.remaining - use
        self.used = self.used + use
        self.steps_left -= int(n_steps)
        self.previous = w


def fit_first(
    plan: BudgetPlan, prior: Sequence[float] | np.ndarray
) -> tuple[tuple[float, ...], bool]:
    """Segment 0's mixture: the prior if it is feasible, else the nearest feasible mixture."""
    import numpy as np

    region = plan.region(with_change=False)
    m0 = np.asarray(prior, dtype=np.float64)
    inside = bool(region.contains(m0[None, :], slack=0.0)[0])
    if inside:
        rounded = round_weights(m0)
        if bool(region.contains(np.asarray([rounded]), slack=0.0)[0]):
            return rounded, False
    return region.round(m0), not inside


@dataclass(frozen=True, slots=True)
class StageSearch:
    """What a constrained search did: the feasible share of plain candidates and the mode."""

    feasible_fraction: float
    mode: str  # "reject" (plain Dirichlet, infeasible dropped) or "map" (sampled in the region)


def feasible_fraction(
    region: Region,
    prior: Sequence[float] | np.ndarray,
    alpha: float,
    rng: np.random.Generator,
) -> float:
    """Share of Dirichlet(alpha * prior) candidates inside the region (a pilot sample)."""
    import numpy as np

    m0 = np.asarray(prior, dtype=np.float64)
    m0 = m0 / m0.sum()
    active = alpha * m0 > 0
    draws = np.zeros((PILOT_CANDIDATES, m0.size))
    draws[:, active] = rng.dirichlet(alpha * m0[active], size=PILOT_CANDIDATES)
    return float(region.contains(draws, slack=0.0).mean())


def search_region(
    score: Callable[[np.ndarray], np.ndarray],
    prior: Sequence[float] | np.ndarray,
    config: SearchConfig,
    rng: np.random.Generator,
    region: Region,
) -> tuple[SearchResult, StageSearch]:
    """The candidate search restricted to `region`.

    A pilot sample measures the feasible share of plain Dirichlet candidates; at or above
    MAP_BELOW they are drawn as usual and the infeasible ones dropped (RegMix's distribution,
    unchanged), below it every candidate is mapped into the region (`Region.project`), so all
    C candidates count however tight the constraints are.
    """

    from regmixd_cli.plan.search import search_mixture

    pilot, main = rng.spawn(2)
    share = feasible_fraction(region, prior, config.alpha, pilot)
    if share >= MAP_BELOW:
        result = search_mixture(score, prior, config, main, feasible=region.contains)
        return result, StageSearch(result.n_feasible / result.n_candidates, "reject")
    result = search_mixture(score, prior, config, main, transform=region.transform)
    return result, StageSearch(share, "map")


class ConstrainedSearch:
    """Runs a schedule's searches under constraints: segment 0, then one search per stage.

    `bounds` are the stage boundaries in target steps ([0, S_1, ..., T]). Call `first()` for
    segment 0 (the prior, or the nearest feasible mixture), then `search(i, ...)` for stages
    1, 2, ... in order, or only `search(0, ...)` for a static mixture. `record()` is what goes
    into the schedule's provenance (and what the CLI reports).
    """

    def __init__(self, constraints: Constraints, bounds: Sequence[int], prior: Sequence[float]):
        self.constraints = constraints
        self.bounds = list(bounds)
        self.prior = tuple(float(w) for w in prior)
        self.plan = BudgetPlan(constraints, self.bounds[-1] - self.bounds[0])
        self.stages: list[dict[str, Any]] = []
        self.prior_projected = False

    def _steps(self, i: int) -> int:
        return self.bounds[i + 1] - self.bounds[i]

    def first(self) -> tuple[float, ...]:
        """Segment 0's mixture (committed)."""
        weights, self.prior_projected = fit_first(self.plan, self.prior)
        self.plan.commit(weights, self._steps(0))
        self.stages.append({"stage": 0, "mode": "projected" if self.prior_projected else "prior"})
        return weights

    def search(
        self,
        i: int,
        score: Callable[[np.ndarray], np.ndarray],
        config: SearchConfig,
        rng: np.random.Generator,
    ) -> tuple[SearchResult, tuple[float, ...]]:
        """Stage i's search inside its region; the rounded, committed weights."""
        region = self.plan.region()
        result, how = search_region(score, self.prior, config, rng, region)
        weights = region.round(result.weights)
        self.plan.commit(weights, self._steps(i))
        self.stages.append(
            {"stage": i, "mode": how.mode, "feasible_fraction": round(how.feasible_fraction, 6)}
        )
        return result, weights

    def record(self) -> dict[str, Any]:
        """The constraints, per-stage search modes and token use, for provenance."""
        return {
            **self.constraints.record,
            "prior_projected": self.prior_projected,
            "stages": list(self.stages),
            "token_use": usage_record(self.plan),
        }


def usage_record(plan: BudgetPlan) -> dict[str, Any]:
    """Per-domain token use and budget of a finished plan, for provenance."""
    c = plan.constraints
    out: dict[str, Any] = {}
    for d, used, budget in zip(c.domains, plan.used, c.budget, strict=True):
        if budget is not None:
            out[d] = {"tokens_used": round(float(used), 1), "budget": float(budget)}
    return out


def violations(
    constraints: Constraints,
    stages: Sequence[tuple[int, Sequence[float]]],
    tol: float = 1e-9,
) -> list[str]:
    """Every constraint a schedule breaks: stages as (n_steps, weights) in order (for tests)."""
    msgs = []
    used = [0.0] * len(constraints.domains)
    prev: Sequence[float] | None = None
    for i, (n, w) in enumerate(stages):
        for k, d in enumerate(constraints.domains):
            if w[k] < constraints.lower[k] - tol or w[k] > constraints.upper[k] + tol:
                msgs.append(
                    f"stage {i}: {d} weight {w[k]} outside "
                    f"[{constraints.lower[k]}, {constraints.upper[k]}]"
                )
            used[k] += w[k] * n * float(constraints.tokens_per_step or 0.0)
        if prev is not None and constraints.max_change is not None:
            change = math.fsum(abs(a - b) for a, b in zip(w, prev, strict=True))
            if change > constraints.max_change + tol:
                msgs.append(f"stage {i}: L1 change {change} > {constraints.max_change}")
        prev = w
    for k, d in enumerate(constraints.domains):
        b = constraints.budget[k]
        # `tol` is in weight units: the budget allows tol x the run's tokens on top.
        run_tokens = float(constraints.tokens_per_step or 0.0) * sum(n for n, _ in stages)
        if b is not None and used[k] > b * (1 + 1e-12) + tol * run_tokens:
            msgs.append(f"{d}: used {used[k]} tokens > budget {b}")
    return msgs


def online_region(
    constraints: Constraints,
    target_steps: int,
    prior: Sequence[float] | np.ndarray,
    history: Sequence[tuple[int, Sequence[float]]] | None,
    start: int,
) -> tuple[Region, tuple[float, ...], bool]:
    """The region of an online decision for the segment starting at target step `start`.

    `history` lists (start_step, weights) of the segments decided after segment 0, in order;
    each ran until the next one started (the last until `start`). None means unknown (a
    one-shot decision past the first switch point): then the budget is shared evenly over the
    run (the rate cap of a fresh plan, which every stage of a run decided this way respects)
    and max_change cannot be checked. Also returns segment 0's mixture and whether the prior
    had to be projected.
    """
    plan = BudgetPlan(constraints, target_steps)
    first, projected = fit_first(plan, prior)
    if history is None:
        return plan.region(with_change=False), first, projected
    segments = [(0, tuple(first)), *((int(s), tuple(w)) for s, w in history)]
    ends = [s for s, _ in segments[1:]] + [start]
    for (s, w), e in zip(segments, ends, strict=True):
        plan.commit(w, e - s)
    return plan.region(), first, projected
