"""Proxy mixtures drawn the way RegMix drew its 512 (mixture_config/synthesize_mixture.py).

Each mixture is one Dirichlet draw around the prior tempered to p^0.5, at a strength picked at
random from 15 log-spaced values in [0.1, 5] (RegMix draws once at every strength and keeps one
at random: the same distribution). Weights under 2e-4 are zeroed, the rest renormalised and
rounded to multiples of 2e-4 summing exactly to 1; mixtures above a domain's cap (max epochs x
available tokens / proxy tokens) are rejected, and duplicates dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regmixd_cli.errors import InfeasibleError, UsageError
from regmixd_cli.weights import round_units

if TYPE_CHECKING:
    import numpy as np

MAX_EPOCHS = 15.0  # RegMix's MAXIMUM_USAGE
# Share of phased proxies in a default design (docs/DECISIONS.md, /work/notes/phased-notes.md).
SWITCH_SHARE = 0.5
SWITCH_PROBABILITY = 0.5  # a switching run switches at each switch point with this probability
PROXY_TOKENS = 1000 * 1_048_576  # RegMix's proxies: 1,000 steps of about 1M tokens


@dataclass(frozen=True, slots=True)
class DesignConfig:
    """RegMix's sampling settings."""

    temperature: float = 0.5
    min_strength: float = 0.1
    max_strength: float = 5.0
    n_strengths: int = 15
    units: int = 5000  # weights are multiples of 1/units = 2e-4
    min_weight: float = 2e-4
    duplicate_l1: float = 1e-5
    draws_per_run: int = 1000  # give up after this many draws per requested mixture


def caps_from_tokens(
    available: Sequence[float | None], max_epochs: float, proxy_tokens: float
) -> tuple[float, ...]:
    """Per-domain weight caps min(max_epochs x available / proxy_tokens, 1); None is uncapped."""
    if max_epochs <= 0 or proxy_tokens <= 0:
        raise UsageError("``max_epochs`` and ``proxy_tokens`` must be positive")
    return tuple(
        1.0 if a is None else min(max_epochs * float(a) / proxy_tokens, 1.0) for a in available
    )


def design_mixtures(
    prior: Sequence[float],
    n_runs: int,
    seed: int,
    caps: Sequence[float] | None = None,
    config: DesignConfig | None = None,
    floors: Sequence[float] | None = None,
) -> np.ndarray:
    """`n_runs` distinct proxy mixtures, an (n_runs, K) array of multiples of 2e-4 summing to 1.

    With `floors` (per-domain minimum weights), each draw d becomes
    floors + (1 - sum floors) x d, so the minimums hold by construction; caps still reject.
    """
    import numpy as np

    cfg = config or DesignConfig()
    p = np.asarray(prior, dtype=float)
    if n_runs < 1:
        raise UsageError(f"``runs`` must be at least 1, got {n_runs}")
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.isfinite(p).all() or p.sum() <= 0:
        raise UsageError("the prior must be a non-empty vector of weights >= 0")
    cap = np.ones_like(p) if caps is None else np.asarray(caps, dtype=float)
    if cap.shape != p.shape:
        raise UsageError(f"{cap.size} caps for {p.size} domains")
    if cap[p > 0].sum() < 1.0 - 1e-12:
        raise InfeasibleError(
            f"the domain caps sum to {cap[p > 0].sum():.4g} < 1, so no mixture fits; "
            "raise ``max_epochs`` or give more ``available_tokens``"
        )
    floor = np.zeros_like(p) if floors is None else np.asarray(floors, dtype=float)
    if floor.sum() > 1.0 + 1e-12:
        raise InfeasibleError(f"the min weights sum to {floor.sum():.4g} > 1; lower some `min`")
    tempered = np.where(p > 0, p, 0.0) ** cfg.temperature
    tempered /= tempered.sum()
    strengths = np.logspace(
        math.log10(cfg.min_strength), math.log10(cfg.max_strength), cfg.n_strengths
    )
    rng = np.random.default_rng(seed)
    batch = max(256, 4 * n_runs)
    kept: list[np.ndarray] = []
    seen: set[bytes] = set()
    drawn = 0
    while len(kept) < n_runs:
        if drawn >= cfg.draws_per_run * n_runs:
            raise InfeasibleError(
                f"only {len(kept)} distinct mixtures of {n_runs} fit the caps after {drawn} "
                "draws; ask for fewer ``runs`` or loosen the caps (``max_epochs``)"
            )
        alpha = strengths[rng.integers(cfg.n_strengths, size=batch)][:, None] * tempered
        draws = _dirichlet(rng, alpha)
        if floors is not None:
            draws = floor + (1.0 - floor.sum()) * draws
        units = _round_units(draws, cfg)
        drawn += batch
        ok = np.all(units <= np.floor(cap * cfg.units + 1e-9), axis=1) & (units.sum(axis=1) > 0)
        ok &= np.all(units >= np.ceil(floor * cfg.units - 1e-9), axis=1)
        for row in units[ok]:
            # On a 2e-4 grid distinct mixtures are >= 4e-4 apart in L1: near-duplicates
            # (L1 < 1e-5) are exact duplicates.
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                kept.append(row)
                if len(kept) == n_runs:
                    break
    return np.stack(kept).astype(float) / cfg.units


def switch_steps(proxy_steps: int, n_switch_points: int) -> tuple[int, ...]:
    """The grid's switch points t_l = l * T / (N + 1), l = 1..N, as whole steps."""
    if proxy_steps < 1:
        raise UsageError(f"``proxy_steps`` must be at least 1, got {proxy_steps}")
    if n_switch_points < 1:
        raise UsageError(f"``switch_points`` {n_switch_points}: a phased design needs at least 1")
    steps = tuple(round(proxy_steps * j / (n_switch_points + 1))
                  for j in range(1, n_switch_points + 1))
    if len(set(steps)) != len(steps) or steps[0] <= 0 or steps[-1] >= proxy_steps:
        raise UsageError(f"``proxy_steps`` {proxy_steps} is too short for {n_switch_points} "
                         "switch points; use fewer ``switch_points``")
    return steps


def design_phased(
    prior: Sequence[float],
    n_runs: int,
    seed: int,
    proxy_steps: int,
    n_switch_points: int = 5,
    switch_share: float = SWITCH_SHARE,
    caps: Sequence[float] | None = None,
    floors: Sequence[float] | None = None,
) -> tuple[np.ndarray, tuple[tuple[tuple[int, np.ndarray], ...], ...]]:
    """A phased design: first phases (M, K) and every run's later phases.

    The first phases are exactly RegMix's design (`design_mixtures` with the same seed). A
    share `switch_share` of the runs (chosen at random) switch: at each of the grid's switch
    points independently with probability 1/2 (at least one), to a fresh draw from the same
    Dirichlet design, so a switch lands anywhere in the design's range.
    """
    import numpy as np

    if not 0.0 <= switch_share <= 1.0:
        raise UsageError(f"``switch_share`` {switch_share}: must be in [0, 1]")
    points = switch_steps(proxy_steps, n_switch_points)
    first = design_mixtures(prior, n_runs, seed, caps, floors=floors)
    rng = np.random.default_rng([seed, 1])
    n_switching = round(switch_share * n_runs)
    switching = set(rng.permutation(n_runs)[:n_switching].tolist())
    chosen: list[list[int]] = []
    for i in range(n_runs):
        if i not in switching:
            chosen.append([])
            continue
        picks = rng.random(len(points)) < SWITCH_PROBABILITY
        if not picks.any():
            picks[rng.integers(len(points))] = True
        chosen.append([p for p, keep in zip(points, picks, strict=True) if keep])
    n_fresh = sum(len(c) for c in chosen)
    fresh = (design_mixtures(prior, n_fresh, seed + 1_000_003, caps, floors=floors)
             if n_fresh else np.empty((0, len(prior))))
    phases: list[tuple[tuple[int, np.ndarray], ...]] = []
    k = 0
    for steps in chosen:
        phases.append(tuple((s, fresh[k + j]) for j, s in enumerate(steps)))
        k += len(steps)
    return first, tuple(phases)


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Rows of Dirichlet(alpha); zero alpha gives zero weight.

    Small alphas (down to 0.1 x a tiny prior) underflow a plain gamma draw, so draw in log space:
    Gamma(a) = Gamma(a + 1) * U^(1/a).
    """
    import numpy as np

    active = alpha > 0
    safe = np.where(active, alpha, 1.0)
    log_g = np.log(rng.gamma(safe + 1.0)) + np.log(rng.uniform(size=alpha.shape)) / safe
    log_g = np.where(active, log_g, -np.inf)
    log_g -= log_g.max(axis=1, keepdims=True)
    g = np.exp(log_g)
    draws: np.ndarray = g / g.sum(axis=1, keepdims=True)
    return draws


def _round_units(weights: np.ndarray, cfg: DesignConfig) -> np.ndarray:
    """Zero weights under min_weight, renormalise, round to 1/units keeping the sum exact."""
    import numpy as np

    w = np.where(weights < cfg.min_weight, 0.0, weights)
    rows = [round_units(row.tolist(), cfg.units) for row in w]
    result: np.ndarray = np.asarray(rows, dtype=np.int64).reshape(w.shape)
    return result
