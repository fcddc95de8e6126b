"""Mixture weights, shared by every stage: checking, rounding, and the prior m0.

The prior comes from a JSON file, `uniform`, or `proxy-mean` (docs/reference/commands.md).
Every weight regmixd writes is rounded by `round_weights`: millionths that sum to exactly 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import InputError, UsageError, param
from regmixd_cli.files import read_json

if TYPE_CHECKING:
    import numpy as np

PROXY_MEAN = "proxy-mean"
UNIFORM = "uniform"
SUM_TOLERANCE = 0.01
WEIGHT_DECIMALS = 6  # weights are written in millionths
UNITS = 1_000_000  # 10**WEIGHT_DECIMALS


@dataclass(frozen=True, slots=True)
class Prior:
    """A resolved prior: weights in domain order and where they came from."""

    weights: tuple[float, ...]
    source: str  # "proxy-mean", "uniform", or the file path it was read from

    def as_dict(self, domains: Sequence[str]) -> dict[str, float]:
        """The prior as {domain: weight}, for model and schedule files."""
        return dict(zip(domains, self.weights, strict=True))


def reject_unknown_domains(
    names: Iterable[str], domains: Sequence[str], where: str, owner: str = "expected are"
) -> None:
    """InputError naming `where` if any of `names` is not one of `domains`."""
    unknown = sorted(set(names) - set(domains))
    if unknown:
        raise InputError(
            f"{where}: unknown domain(s) {', '.join(unknown)}; {owner} {', '.join(domains)}"
        )


def check_mixture(
    weights: Mapping[str, Any], domains: Sequence[str], where: str, *, fill_missing: bool = False
) -> tuple[float, ...]:
    """Validate a {domain: weight} mapping against `domains` and renormalise it to sum to 1.

    Negative or non-finite weights, unknown domains, missing domains (unless `fill_missing`),
    and sums off 1 by more than 0.01 are InputErrors naming `where`.
    """
    reject_unknown_domains(weights, domains, where)
    missing = [d for d in domains if d not in weights]
    if missing and not fill_missing:
        raise InputError(
            f"{where}: no weight for domain(s) {', '.join(missing)}; give them (0 is fine)"
        )
    values = []
    for d in domains:
        raw = weights.get(d, 0.0)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise InputError(f"{where}: weight of {d!r} is not a number: {raw!r}")
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{where}: weight of {d!r} must be a finite number >= 0, got {raw!r}")
        values.append(value)
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise InputError(f"{where}: weights sum to {total:.4g}, not 1 (tolerance {SUM_TOLERANCE})")
    return tuple(v / total for v in values)


def check_prior_spec(spec: str | None) -> None:
    """Fail early on a `--prior` that is neither uniform, proxy-mean nor an existing file."""
    if spec is None or spec in (UNIFORM, PROXY_MEAN):
        return
    if not Path(spec).is_file():
        raise UsageError(
            f"{param('prior')} {spec!r}: not a file, and not 'uniform' or 'proxy-mean'"
        )


def resolve_prior(
    spec: str | None, domains: Sequence[str], proxy_mean: Sequence[float] | None = None
) -> Prior:
    """Resolve `--prior` (None means proxy-mean) into weights in `domains` order."""

    if spec is None or spec == PROXY_MEAN:
        if proxy_mean is None:
            raise UsageError(
                f"{param('prior')} proxy-mean needs proxy runs; give {param('prior')} FILE or "
                "uniform"
            )
        total = math.fsum(proxy_mean)
        return Prior(tuple(float(w) / total for w in proxy_mean), PROXY_MEAN)
    if spec == UNIFORM:
        return Prior(tuple(1.0 / len(domains) for _ in domains), UNIFORM)
    check_prior_spec(spec)
    path = Path(spec)
    data = read_json(path, "prior mixture")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a prior must be a JSON object {{domain: weight}}")
    return Prior(check_mixture(data, domains, str(path)), str(path))


def round_units(
    weights: Sequence[float],
    units: int = UNITS,
    lower: Sequence[int] | None = None,
    upper: Sequence[int] | None = None,
) -> list[int]:
    """Whole units per domain summing to exactly `units`, by largest remainders.

    `weights` are normalised first. With `lower`/`upper` (in units) every count stays inside
    its bounds: units go to (or come from) the largest remainders that still have room. Ties go
    to the lower index.
    """
    values = [float(w) for w in weights]
    total = math.fsum(values)
    exact = [v / total * units for v in values]
    lo = list(lower) if lower is not None else [0] * len(values)
    hi = list(upper) if upper is not None else [units] * len(values)
    counts = [min(max(math.floor(x), a), b) for x, a, b in zip(exact, lo, hi, strict=True)]
    short = units - sum(counts)
    sign = 1 if short > 0 else -1
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - counts[i]) * sign, i))
    while short != 0:
        moved = False
        for i in order:
            if short > 0 and counts[i] < hi[i]:
                counts[i] += 1
                short -= 1
                moved = True
            elif short < 0 and counts[i] > lo[i]:
                counts[i] -= 1
                short += 1
                moved = True
            if short == 0:
                break
        if not moved:
            raise ValueError(f"bounds leave no way to split {units} units")
    return counts


def round_weights(weights: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """Millionths summing to exactly 1: each rounded half up, the largest absorbs the slack.

    This is the rounding of every schedule and oracle file; `round_units` is the one for
    bounded boxes and designs (largest remainders), where a bound must never be crossed.
    """
    values = [float(w) for w in weights]
    total = math.fsum(values)
    units = [math.floor(v / total * UNITS + 0.5) for v in values]
    largest = max(range(len(units)), key=lambda i: (values[i], -i))
    units[largest] += UNITS - sum(units)
    return tuple(u / UNITS for u in units)
