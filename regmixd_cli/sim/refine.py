"""The verification round: proxies that test a fitted model where its schedule will go.

After a first round of proxies is trained and fitted, `regmixd design --refine MODEL` plans a
second, smaller round: the schedule the model recommends (on the proxies' own step axis), the
static RegMix mixture, and neighbours of both (each stage's mixture redrawn close to the plan).
Trained, ingested with `ingest --append` and fitted with `fit --verify-prefix X`, these runs
are direct held-out evidence of how well the model predicts the plans it hands out: `auto`
chooses the form by their error, and the guard (`plan.guard`) counts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regmixd_cli.domain import Schedule
from regmixd_cli.errors import UsageError
from regmixd_cli.fit.crossval import VERIFY_DYNAMIC_TAG, VERIFY_STATIC_TAG
from regmixd_cli.plan.schedule import build_schedule, build_static, resolve_schedule_prior
from regmixd_cli.plan.search import SearchConfig
from regmixd_cli.weights import round_weights

if TYPE_CHECKING:
    import numpy as np

    from regmixd_cli.fit.objective import AnyModel
    from regmixd_cli.fit.parallel import Executor

# How close a neighbour stays to its plan: each stage's weights are a Dirichlet draw with
# concentration NEIGHBOUR_CONCENTRATION x the plan's weights (+ a floor, so a zero weight can
# become small but nonzero). 100 moves a weight of 0.3 by about +-0.046 (one sd).
NEIGHBOUR_CONCENTRATION = 100.0
NEIGHBOUR_FLOOR = 0.05
# Run names: <prefix>d000... follow the schedule, <prefix>s000... static RegMix (fit reads them).
DYNAMIC_TAG = VERIFY_DYNAMIC_TAG
STATIC_TAG = VERIFY_STATIC_TAG


@dataclass(frozen=True, slots=True)
class Refinement:
    """A verification round: run names, first mixtures (M, K) and every run's later phases."""

    runs: tuple[str, ...]
    first: np.ndarray
    phases: tuple[tuple[tuple[int, np.ndarray], ...], ...]
    dynamic: Schedule
    static: Schedule


def design_refinement(
    model: AnyModel,
    n_runs: int,
    proxy_steps: int,
    prefix: str,
    seed: int,
    candidates: int = 100_000,
    executor: Executor | None = None,
) -> Refinement:
    """Half the runs follow the recommended schedule (the first exactly, the rest neighbours),
    half the static RegMix mixture (likewise); both plans are searched as `schedule` does."""
    import numpy as np

    if not model.has_transitions:
        raise UsageError(
            "the model has no transition regressor (endpoint-only data): there is no schedule "
            "to verify; design a phased first round with `regmixd design --proxy-steps T`"
        )
    if n_runs < 2:
        raise UsageError(f"``runs`` {n_runs}: a verification round needs at least 2 runs "
                         "(the schedule and static RegMix)")
    config = SearchConfig(candidates=candidates, executor=executor)
    prior = resolve_schedule_prior(None, model)
    dynamic = build_schedule(model, config, prior, proxy_steps, seed)
    static = build_static(model, config, prior, proxy_steps, seed)
    n_dynamic = math.ceil(n_runs / 2)
    rng = np.random.default_rng([seed, 2])
    width = max(3, len(str(n_runs - 1)))
    runs: list[str] = []
    first: list[tuple[float, ...]] = []
    phases: list[tuple[tuple[int, np.ndarray], ...]] = []
    for i in range(n_runs):
        plan, tag, j = (dynamic, DYNAMIC_TAG, i) if i < n_dynamic else (
            static, STATIC_TAG, i - n_dynamic)
        stages = [tuple(s.weights) for s in plan.stages]
        if j > 0:  # a neighbour: every stage redrawn close to the plan
            stages = [_neighbour(rng, w) for w in stages]
        runs.append(f"{prefix}{tag}{j:0{width}d}")
        first.append(stages[0])
        phases.append(tuple(
            (s.start_step, np.asarray(w)) for s, w in zip(plan.stages[1:], stages[1:], strict=True)
        ))
    return Refinement(tuple(runs), np.asarray(first), tuple(phases), dynamic, static)


def _neighbour(rng: np.random.Generator, weights: tuple[float, ...]) -> tuple[float, ...]:
    import numpy as np

    alpha = NEIGHBOUR_CONCENTRATION * (np.asarray(weights) + NEIGHBOUR_FLOOR / len(weights))
    return round_weights(rng.dirichlet(alpha))
