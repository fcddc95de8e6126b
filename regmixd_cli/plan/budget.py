"""Constraints over a whole schedule: the epoch budgets spent stage by stage.

`BudgetPlan` tracks each domain's remaining tokens; `ConstrainedSearch` runs Algorithm 1's
searches so that every stage obeys its rate cap (the module docstring of `plan.constraints`
explains why a rate cap), and `usage_record` reports the token use in a schedule's provenance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import InputError
from regmixd_cli.plan.constraints import Constraints, check_bounds
from regmixd_cli.plan.region import Region, search_region
from regmixd_cli.plan.search import SearchConfig, SearchResult
from regmixd_cli.weights import round_weights

if TYPE_CHECKING:
    import numpy as np


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
