"""Synthetic worlds with a known truth: loss dynamics and the true loss of any schedule.

The world is defined on the training *fraction* u in [0, 1], so a schedule found at proxy scale
applies unchanged to a target run of any length. Its target metric is `val/pile_cc`:

    L(u) = floor + A (1 + Q(u) / q)^-alpha,     Q = sum_k S_k^gamma,
    S_k(u) = int_0^u v_k(s) dE_k(s),            v_k(s) = (1 - s^p) early_k + s^p late_k

- E_k(u): effective tokens of domain k seen so far, in units of one run's tokens. Past the
  domain's unique tokens, repeated epochs count less (Muennighoff et al. 2023, R* = decay).
- S_k: the model's latent skill from domain k; a token's worth is its domain's usefulness *at
  the time it is seen*: web and forum text is most useful early, curated text (wikipedia,
  books, Q&A, papers) late. So the best mixture moves during training, and the schedule that
  follows it beats every static mixture.
- gamma < 1: diminishing returns within a domain, so good mixtures spread over domains.
- early and late usefulness are scaled so that the prior mixture reaches Q(1) = 1.

Proxy observations add a per-run offset (seed-to-seed variation) and per-eval noise. The target
run (a larger model) sees the same curve divided by param_ratio^beta, the cross-scale mapping of
RegMix-D's online mode (docs/explanation/method.md), so that correction is exact in these worlds.
Proxy runs in a world are `sim.proxies`; world files and their readers are `sim.files`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import UsageError
from regmixd_cli.sim.families import DEFAULT_FAMILY

if TYPE_CHECKING:
    import numpy as np


WORLD_SCHEMA = "regmixd.world/v1"
TARGET_METRIC = "val/pile_cc"
TRAIN_METRIC = "train/loss"
PROXY_STEPS = 1000
TOKENS_PER_STEP = 1_048_576
TARGET_STEPS = 25_000
PARAM_RATIO = 1000.0
BETA = 0.05
CORPUS_RUNS = 10.0  # unique tokens of the whole corpus, in target runs (RegMix: 250B vs 25B)
JITTER = 0.25  # lognormal sd of the per-seed deviation from a domain's archetype
FRACTION_TOLERANCE = 1e-3  # schedule fractions are written rounded (to 4 decimals)
RUN_CHUNK = 64

Stage = tuple[float, float, Sequence[float]]  # (start_fraction, end_fraction, weights)

# name: (corpus token share in %, early usefulness, late usefulness, train-loss offset).
# Token shares are RegMix's prior for the copyright-free Pile (sail-sg/regmix,
# mixture_config/synthesize_mixture.py); the rest is a plausible story for a Pile-CC target:
# web and forum text helps most early, curated prose (wikipedia, books, Q&A, papers) late.
ARCHETYPES: dict[str, tuple[float, float, float, float]] = {
    "pile_cc": (23.69, 1.00, 0.60, 0.0),
    "github": (10.18, 0.30, 0.30, -1.3),
    "arxiv": (11.33, 0.35, 0.55, -0.6),
    "wikipedia_en": (5.11, 0.50, 0.95, -0.2),
    "stackexchange": (6.65, 0.40, 0.75, -0.4),
    "pubmed_central": (18.54, 0.35, 0.45, -0.5),
    "freelaw": (7.96, 0.35, 0.50, -0.6),
    "dm_mathematics": (1.60, 0.15, 0.20, -2.0),
    "gutenberg_pg_19": (2.71, 0.45, 0.80, 0.2),
    "hackernews": (0.80, 0.60, 0.50, 0.1),
    "ubuntu_irc": (1.18, 0.35, 0.15, 0.3),
    "uspto_backgrounds": (4.64, 0.30, 0.40, -0.7),
    "pubmed_abstracts": (3.88, 0.35, 0.45, -0.3),
    "nih_exporter": (0.39, 0.30, 0.35, -0.4),
    "philpapers": (0.37, 0.30, 0.70, 0.0),
    "enron_emails": (0.18, 0.50, 0.20, 0.3),
    "europarl": (0.79, 0.30, 0.25, -0.5),
}


@dataclass(frozen=True, slots=True)
class Dynamics:
    """The world's global constants (the same for every seed); see the module docstring."""

    loss_floor: float = 3.5
    amplitude: float = 6.5
    scale: float = 0.3
    exponent: float = 1.0
    concavity: float = 0.8
    transition_power: float = 1.0  # p: how the usefulness moves from early to late
    repetition_decay: float = 15.4  # R*_D of Muennighoff et al.
    eval_noise: float = 0.01  # sd of one evaluation's error
    run_noise: float = 0.01  # sd of a run's persistent offset (seed-to-seed variation)
    train_noise: float = 0.02
    integration_steps: int = 1000


@dataclass(frozen=True, slots=True)
class World:
    """A synthetic world: domains, their parameters, and the scales of proxy and target runs."""

    seed: int
    domains: tuple[str, ...]
    prior: tuple[float, ...]  # token shares of the corpus: the natural prior
    available: tuple[float, ...]  # unique tokens per domain, in units of one run's tokens
    early: tuple[float, ...]  # usefulness of a domain's tokens at the start of training
    late: tuple[float, ...]  # ... and at the end
    train_offset: tuple[float, ...]
    dynamics: Dynamics = field(default_factory=Dynamics)
    proxy_steps: int = PROXY_STEPS
    tokens_per_step: int = TOKENS_PER_STEP
    target_steps: int = TARGET_STEPS
    param_ratio: float = PARAM_RATIO
    beta: float = BETA
    target_metric: str = TARGET_METRIC
    family: str = DEFAULT_FAMILY  # sim.families; the default is this module's dynamics
    family_params: tuple[tuple[str, tuple[float, ...]], ...] = ()  # per-domain, sorted keys

    @property
    def n_domains(self) -> int:
        """Number of domains."""
        return len(self.domains)

    @property
    def initial_loss(self) -> float:
        """The target loss at step 0 (every mixture)."""
        return self.dynamics.loss_floor + self.dynamics.amplitude

    @property
    def target_scale(self) -> float:
        """Target-run loss = proxy-scale loss / target_scale (the online correction)."""
        return float(self.param_ratio**self.beta)


@dataclass(frozen=True, slots=True, eq=False)
class SimulatedRuns:
    """Proxy runs of a world: mixtures, evaluation steps, observed and true losses."""

    runs: tuple[str, ...]
    domains: tuple[str, ...]
    mixtures: np.ndarray  # (n_runs, n_domains)
    steps: np.ndarray  # (n_evals,) int
    tokens: np.ndarray  # (n_evals,) int
    target: np.ndarray  # (n_runs, n_evals) observed val/pile_cc
    train: np.ndarray  # (n_runs, n_evals) observed train/loss
    true_target: np.ndarray  # (n_runs, n_evals) noise-free val/pile_cc
    target_metric: str = TARGET_METRIC
    # Phased runs: per run, its later phases ((start_step, weights (K,)), ...); () is static.
    # `mixtures` holds every run's first phase. None: every run static.
    phases: tuple[tuple[tuple[int, np.ndarray], ...], ...] | None = None


def domain_names(n_domains: int) -> tuple[str, ...]:
    """The first `n_domains` names of the Pile list, then domain_17, domain_18, ..."""
    if n_domains < 1:
        raise UsageError(f"``domains`` must be at least 1, got {n_domains}")
    named = list(ARCHETYPES)
    return tuple(named[i] if i < len(named) else f"domain_{i}" for i in range(n_domains))


def make_world(
    n_domains: int,
    seed: int,
    *,
    domains: Sequence[str] | None = None,
    proxy_steps: int = PROXY_STEPS,
    tokens_per_step: int = TOKENS_PER_STEP,
    dynamics: Dynamics | None = None,
    family: str = DEFAULT_FAMILY,
) -> World:
    """A world with `n_domains` domains drawn from `seed` (names from the Pile list by default).

    `family` other than the default draws the world of that family (sim.families).
    """
    import numpy as np

    names = domain_names(n_domains) if domains is None else tuple(domains)
    if len(names) != n_domains or len(set(names)) != n_domains:
        raise UsageError(f"need {n_domains} distinct domain names, got {list(names)}")
    if proxy_steps < 1 or tokens_per_step < 1:
        raise UsageError("``steps`` and ``tokens_per_step`` must be at least 1")
    if family != DEFAULT_FAMILY:
        return _family_world(family, names, seed, proxy_steps, tokens_per_step, dynamics)
    dyn = dynamics or Dynamics()
    sizes, early, late, offsets = [], [], [], []
    for index, name in enumerate(names):
        # One stream per domain index: a domain's draws do not depend on how many follow it.
        rng = np.random.default_rng([seed, index])
        if name in ARCHETYPES:
            size, b, c, h = ARCHETYPES[name]
        else:
            size = float(np.exp(rng.normal(math.log(2.0), 1.0)))
            b, c, h = rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.9), rng.uniform(-1.0, 0.3)
        sizes.append(size)
        early.append(b * math.exp(rng.normal(0.0, JITTER)))
        late.append(c * math.exp(rng.normal(0.0, JITTER)))
        offsets.append(h)
    prior = np.asarray(sizes) / math.fsum(sizes)
    e_arr = np.asarray(early) / max(early)
    l_arr = np.asarray(late) / max(late)
    draft = World(
        seed, names, _tuple(prior), _tuple(CORPUS_RUNS * prior), _tuple(e_arr), _tuple(l_arr),
        _tuple(offsets), dyn, proxy_steps, tokens_per_step,
    )  # fmt: skip
    # Scale usefulness so the prior ends at Q = 1: every world's prior has the same final loss.
    q = _skill(draft, np.array([0.0, 1.0]), prior[None, None, :], np.array([1.0]))[0, 0]
    factor = q ** (-1.0 / dyn.concavity)
    return World(
        seed, names, draft.prior, draft.available, _tuple(e_arr * factor),
        _tuple(l_arr * factor), draft.train_offset, dyn, proxy_steps, tokens_per_step,
    )  # fmt: skip


def _family_world(
    family: str,
    names: tuple[str, ...],
    seed: int,
    proxy_steps: int,
    tokens_per_step: int,
    dynamics: Dynamics | None,
) -> World:
    """A world of a family from sim.families, its rate set so the prior ends at 5.0."""
    import numpy as np

    from regmixd_cli.sim.families import PRIOR_FINAL_LOSS, as_params, draw_params, get_family

    spec = get_family(family)
    dyn = dynamics or Dynamics(repetition_decay=spec.repetition_decay)
    shares, columns = draw_params(family, names, seed)
    prior = np.asarray(shares) / math.fsum(shares)
    offsets = []
    for index, name in enumerate(names):
        rng = np.random.default_rng([seed, index])
        offsets.append(ARCHETYPES[name][3] if name in ARCHETYPES else rng.uniform(-1.0, 0.3))
    zeros = _tuple(np.zeros(len(names)))

    def build(rate: float) -> World:
        params = as_params(columns | {"rate": [rate] * len(names)})
        return World(
            seed, names, _tuple(prior), _tuple(CORPUS_RUNS * prior), zeros, zeros,
            _tuple(offsets), dyn, proxy_steps, tokens_per_step, family=family,
            family_params=params,
        )  # fmt: skip

    # Bisection on log(rate): the prior's final loss falls as the rate grows.
    low, high = math.log(1e-3), math.log(1e4)
    for _ in range(40):
        mid = 0.5 * (low + high)
        loss = true_losses(build(math.exp(mid)), np.array([0.0, 1.0]), prior[None, None, :],
                           np.array([1.0]), 200)[0, 0]  # fmt: skip
        low, high = (mid, high) if loss > PRIOR_FINAL_LOSS else (low, mid)
    return build(round(math.exp(0.5 * (low + high)), 6))


def _tuple(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


# ----------------------------------------------------------------------------- dynamics


def _skill(
    world: World, edges: np.ndarray, weights: np.ndarray, fractions: np.ndarray, n_grid: int = 0
) -> np.ndarray:
    """Q (B, F) at `fractions` for a batch of schedules: weights (B, S, K) over stage `edges`.

    Effective tokens are exact; S_k = int v_k dE_k uses the trapezoid rule on a fixed uniform
    grid, finishing the last partial cell from its left node, so a value at u never depends on
    which other fractions are asked for.
    """
    import numpy as np

    dyn = world.dynamics
    n = n_grid or dyn.integration_steps
    avail = np.asarray(world.available)
    early, late = np.asarray(world.early), np.asarray(world.late)

    def effective(u: np.ndarray) -> np.ndarray:
        span = np.clip(u[:, None] - edges[None, :-1], 0.0, np.diff(edges)[None, :])
        seen = np.einsum("ps,bsk->bpk", span, weights) / avail
        rep = dyn.repetition_decay
        excess = np.maximum(seen - 1.0, 0.0)
        out: np.ndarray = avail * np.where(seen <= 1.0, seen, 1.0 - rep * np.expm1(-excess / rep))
        return out

    def usefulness(u: np.ndarray) -> np.ndarray:
        late_share = (u**dyn.transition_power)[:, None]
        mixed: np.ndarray = (1.0 - late_share) * early + late_share * late
        return mixed

    grid = np.linspace(0.0, 1.0, n + 1)
    e_grid = effective(grid)
    v_grid = usefulness(grid)
    steps = 0.5 * (v_grid[1:] + v_grid[:-1]) * np.diff(e_grid, axis=1)
    s_grid = np.concatenate([np.zeros_like(e_grid[:, :1]), np.cumsum(steps, axis=1)], axis=1)
    cell = np.minimum((fractions * n).astype(int), n - 1)
    partial = (
        0.5 * (v_grid[cell] + usefulness(fractions)) * (effective(fractions) - e_grid[:, cell])
    )
    skill = np.maximum(s_grid[:, cell] + partial, 0.0)
    total: np.ndarray = (skill**dyn.concavity).sum(axis=-1)
    return total


def true_losses(
    world: World, edges: np.ndarray, weights: np.ndarray, fractions: np.ndarray, n_grid: int = 0
) -> np.ndarray:
    """True proxy-scale target loss (B, F) of a batch of schedules at `fractions`."""
    if world.family != DEFAULT_FAMILY:
        from regmixd_cli.sim.families import family_losses

        return family_losses(world.family, world, edges, weights, fractions, n_grid)
    dyn = world.dynamics
    q = _skill(world, edges, weights, fractions, n_grid)
    return dyn.loss_floor + dyn.amplitude * (1.0 + q / dyn.scale) ** -dyn.exponent


def check_stages(world: World, stages: Sequence[Stage]) -> tuple[np.ndarray, np.ndarray]:
    """Stage edges (S+1,) and weights (S, K) of a schedule; bad schedules are UsageErrors."""
    import numpy as np

    if not stages:
        raise UsageError("a schedule needs at least one stage")
    edges = [float(stages[0][0])]
    rows = []
    for i, (start, end, weights) in enumerate(stages):
        row = np.asarray(weights, dtype=float)
        if row.shape != (world.n_domains,):
            raise UsageError(f"stage {i}: {row.size} weights for {world.n_domains} domains")
        if not np.all(np.isfinite(row)) or np.any(row < 0) or abs(row.sum() - 1.0) > 0.01:
            raise UsageError(f"stage {i}: weights must be >= 0 and sum to 1")
        if abs(start - edges[-1]) > FRACTION_TOLERANCE or end <= start:
            raise UsageError(f"stage {i}: [{start}, {end}) does not follow the previous stage")
        edges.append(float(end))
        rows.append(row / row.sum())
    if abs(edges[0]) > FRACTION_TOLERANCE or abs(edges[-1] - 1.0) > FRACTION_TOLERANCE:
        raise UsageError(f"stages cover [{edges[0]}, {edges[-1]}), not [0, 1)")
    edges[0], edges[-1] = 0.0, 1.0
    return np.asarray(edges), np.stack(rows)


def static_stages(weights: Sequence[float]) -> list[Stage]:
    """One mixture for the whole run, as a one-stage schedule."""
    return [(0.0, 1.0, weights)]


def even_stages(weights: Sequence[Sequence[float]]) -> list[Stage]:
    """Evenly spaced stages, one per row of `weights` (the default interval grid)."""
    n = len(weights)
    return [(i / n, (i + 1) / n, w) for i, w in enumerate(weights)]


def true_loss_curve(
    world: World, stages: Sequence[Stage], steps: Sequence[float], *, scale: str = "proxy"
) -> np.ndarray:
    """True target loss at proxy `steps` (fraction = step / proxy_steps) under a schedule.

    `scale="target"` gives the loss the target run would log (divided by param_ratio^beta).
    """
    import numpy as np

    edges, weights = check_stages(world, stages)
    fractions = np.asarray(steps, dtype=float) / world.proxy_steps
    if np.any(fractions < 0) or np.any(fractions > 1 + 1e-12):
        raise UsageError(f"steps must lie in [0, {world.proxy_steps}]")
    loss: np.ndarray = true_losses(world, edges, weights[None], np.clip(fractions, 0.0, 1.0))[0]
    if scale == "target":
        return loss / world.target_scale
    if scale != "proxy":
        raise UsageError(f"scale must be 'proxy' or 'target', got {scale!r}")
    return loss


def true_final_loss(world: World, stages: Sequence[Stage]) -> float:
    """True proxy-scale target loss at the end of training under a schedule."""
    return float(true_loss_curve(world, stages, [world.proxy_steps])[0])


def final_losses(
    world: World, edges: Sequence[float], weights: np.ndarray, n_grid: int = 0
) -> np.ndarray:
    """Final losses of a batch of schedules sharing stage `edges`: weights (B, S, K) -> (B,)."""
    import numpy as np

    edge_arr = np.asarray(edges, dtype=float)
    batch = np.asarray(weights, dtype=float)
    return true_losses(world, edge_arr, batch, np.array([1.0]), n_grid)[:, 0]


# ------------------------------------------------------------------------------ proxy runs


# ----------------------------------------------------------------------------- world JSON


