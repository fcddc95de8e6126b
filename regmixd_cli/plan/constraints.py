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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import InfeasibleError, InputError, UsageError, param
from regmixd_cli.weights import reject_unknown_domains

if TYPE_CHECKING:
    import numpy as np


DOMAIN_KEYS = ("min", "max", "available_tokens", "max_epochs")
SCHEDULE_KEYS = ("tokens_per_step", "max_change")
DEFAULT_MAX_EPOCHS = 1.0  # a domain with available tokens but no max_epochs is seen once
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
            f"raise available_tokens/max_epochs, or shorten {param('target_steps')}"
        )


# ----------------------------------------------------------------------------- one stage


# ----------------------------------------------------------------------- whole schedules


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


