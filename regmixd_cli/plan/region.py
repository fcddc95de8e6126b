"""One stage's feasible region: a box on the simplex, optionally within an L1 ball.

`Region` is the geometry (contains, project, round inside the box); `search_region` and
`online_region` build the region of one search and run it, sampling inside a small region
(`map` mode) or dropping infeasible Dirichlet candidates (`filter` mode).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regmixd_cli.errors import InfeasibleError
from regmixd_cli.plan.constraints import EPS
from regmixd_cli.plan.search import SearchConfig, SearchResult, search_mixture
from regmixd_cli.weights import UNITS, round_units, round_weights

if TYPE_CHECKING:
    import numpy as np


# Below this share of feasible Dirichlet candidates, the search samples inside the region.
MAP_BELOW = 0.05


PILOT_CANDIDATES = 4096


BISECTION_STEPS = 40


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
        # A bound finer than a millionth (e.g. min = max = 0.33203125) cannot hold exactly in
        # millionths: widen it to the millionths around it, so the weight stays within 1e-6.
        tight = lo > hi
        lo = np.where(tight, np.floor(self.lower * UNITS + 1e-6), lo).astype(np.int64)
        hi = np.where(tight, np.ceil(self.upper * UNITS - 1e-6), hi).astype(np.int64)
        if lo.sum() > UNITS or hi.sum() < UNITS or np.any(lo > hi):
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


    pilot, main = rng.spawn(2)
    share = feasible_fraction(region, prior, config.alpha, pilot)
    if share >= MAP_BELOW:
        result = search_mixture(score, prior, config, main, feasible=region.contains)
        return result, StageSearch(result.n_feasible / result.n_candidates, "reject")
    result = search_mixture(score, prior, config, main, transform=region.transform)
    return result, StageSearch(share, "map")


