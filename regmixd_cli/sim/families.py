"""World families other than the default one (`shift`, in sim.world): their parameters and loss.

Each family is a `Family`: `draw` gives a domain's family parameters from its name and its own
random stream, `losses` gives the true proxy-scale loss (B, F) of a batch of schedules. A world
records its family's name and parameters (world.json `family`, `family_parameters`); the
global `rate` is set when the world is made, so that the prior mixture ends at PRIOR_FINAL_LOSS
as it does in the default family.

Both families integrate a state on a fixed uniform grid of the training fraction (explicit
Euler over `integration_steps` cells): tokens per cell are exact for any stage edges (a cell
split by a stage edge sees each part's tokens), and the loss at a fraction is interpolated
linearly between grid nodes, so a value never depends on which other fractions are asked for.

- `saturation`: domain usefulness depends on the current LOSS LEVEL. Web-like domains are
  useful while the loss is high and close to worthless once it falls below their threshold;
  curated domains are the reverse (they only pay once the basics are in). Curated corpora are
  small (a fraction of one run's tokens) and repeat with strong decay (repetition_decay 0.5).
- `curriculum`: domains teach SKILLS with prerequisites. Skill j grows only as fast as its
  prerequisite's level opens a gate (a logistic in the prerequisite's level), so tokens of an
  advanced domain seen before the basics are (mostly) wasted: order matters.
- `order`: pure order effects. Domains fall into three skill groups (web prose, academic,
  code/math); training on one group makes the model forget the others (each domain's tokens
  erode the other groups' skills at its own `forget` rate), so what is seen last is kept.
  The state of a run is not its loss: two runs at one loss can differ in what they will forget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from regmixd_cli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_FAMILY = "shift"
PRIOR_FINAL_LOSS = 5.0  # the default family's prior ends here too (Q(1) = 1)


class WorldLike(Protocol):
    """What a family's loss needs from a world (sim.world.World has it)."""

    @property
    def available(self) -> tuple[float, ...]: ...
    @property
    def dynamics(self) -> Any: ...
    @property
    def family_params(self) -> tuple[tuple[str, tuple[float, ...]], ...]: ...


LossFn = Callable[[WorldLike, "np.ndarray", "np.ndarray", "np.ndarray", int], "np.ndarray"]
DrawFn = Callable[[str, int, Any], dict[str, float]]


@dataclass(frozen=True, slots=True)
class Family:
    """A world family: per-domain parameter draw, the loss of schedules, its repetition decay."""

    name: str
    summary: str
    draw: DrawFn
    losses: LossFn
    repetition_decay: float


def params_of(world: WorldLike) -> dict[str, np.ndarray]:
    """The world's family parameters as arrays ({name: values})."""
    import numpy as np

    return {k: np.asarray(v, dtype=float) for k, v in world.family_params}


def _cell_tokens(world: WorldLike, edges: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Effective tokens (B, n, K) each grid cell adds, after repetition decay."""
    import numpy as np

    grid = np.linspace(0.0, 1.0, n + 1)
    avail = np.asarray(world.available)
    span = np.clip(grid[:, None] - edges[None, :-1], 0.0, np.diff(edges)[None, :])
    seen = np.einsum("ps,bsk->bpk", span, weights) / avail
    rep = world.dynamics.repetition_decay
    excess = np.maximum(seen - 1.0, 0.0)
    eff = avail * np.where(seen <= 1.0, seen, 1.0 - rep * np.expm1(-excess / rep))
    out: np.ndarray = np.diff(eff, axis=1)
    return out


def _at(nodes: np.ndarray, fractions: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of node values (B, n+1) at `fractions` (F,) -> (B, F)."""
    import numpy as np

    x = np.clip(np.asarray(fractions, dtype=float), 0.0, 1.0) * n
    cell = np.minimum(x.astype(int), n - 1)
    w = x - cell
    out: np.ndarray = nodes[:, cell] * (1.0 - w) + nodes[:, cell + 1] * w
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


# ------------------------------------------------------------------------------ saturation

SATURATION_WIDTH = 0.15  # loss units over which a domain's usefulness switches
SATURATION_GAMMA = 0.7
# name: (kind, corpus share %) -- kind 0: web-like (useful while loss is high), 1: curated.
_KINDS: dict[str, tuple[int, float]] = {
    "pile_cc": (0, 23.69), "github": (0, 10.18), "arxiv": (1, 3.0), "wikipedia_en": (1, 1.2),
    "stackexchange": (1, 1.5), "pubmed_central": (0, 18.54), "freelaw": (0, 7.96),
    "dm_mathematics": (1, 0.6), "gutenberg_pg_19": (1, 0.9), "hackernews": (0, 0.80),
    "ubuntu_irc": (0, 1.18), "uspto_backgrounds": (0, 4.64), "pubmed_abstracts": (1, 1.0),
    "nih_exporter": (1, 0.39), "philpapers": (1, 0.37), "enron_emails": (0, 0.18),
    "europarl": (0, 0.79),
}  # fmt: skip


def _draw_saturation(name: str, index: int, rng: Any) -> dict[str, float]:
    kind, share = _KINDS.get(name, (index % 2, float(math.exp(rng.normal(0.0, 0.8)))))
    strength = math.exp(rng.normal(0.0, 0.3))
    if kind == 0:  # useful while the loss is high; nearly worthless below the threshold
        high, low, theta = strength, 0.05 * strength, rng.uniform(5.6, 6.6)
    else:  # pays only once the loss is low; small corpus
        high, low, theta = 0.1 * strength, 2.5 * strength, rng.uniform(5.4, 6.2)
    return {"share": share, "kind": float(kind), "high": high, "low": low, "threshold": theta}


def _saturation_losses(
    world: WorldLike, edges: np.ndarray, weights: np.ndarray, fractions: np.ndarray, n_grid: int
) -> np.ndarray:
    import numpy as np

    dyn = world.dynamics
    n = n_grid or dyn.integration_steps
    p = params_of(world)
    gains = _cell_tokens(world, edges, weights, n) * p["rate"][0]
    skill = np.zeros((weights.shape[0], weights.shape[2]))
    nodes = np.empty((weights.shape[0], n + 1))
    for i in range(n + 1):
        q = (skill**SATURATION_GAMMA).sum(axis=1)
        loss = dyn.loss_floor + dyn.amplitude * (1.0 + q / dyn.scale) ** -dyn.exponent
        nodes[:, i] = loss
        if i == n:
            break
        open_ = _sigmoid((loss[:, None] - p["threshold"]) / SATURATION_WIDTH)
        use = p["low"] + (p["high"] - p["low"]) * open_
        skill = skill + use * gains[:, i]
    return _at(nodes, fractions, n)


# ------------------------------------------------------------------------------ curriculum

CURRICULUM_SKILLS = 4
CURRICULUM_PREREQ = (-1, 0, 1, 1)  # skill j needs skill PREREQ[j] (-1: none)
CURRICULUM_WEIGHT = (0.4, 0.3, 0.2, 0.1)  # share of the target loss each skill removes
CURRICULUM_GATE = 0.08  # width of a prerequisite gate (in skill level)
_SKILL_OF: dict[str, int] = {
    "pile_cc": 0, "hackernews": 0, "enron_emails": 0, "ubuntu_irc": 0, "europarl": 0,
    "wikipedia_en": 1, "gutenberg_pg_19": 1, "stackexchange": 1, "uspto_backgrounds": 1,
    "arxiv": 2, "pubmed_central": 2, "freelaw": 2, "philpapers": 2, "pubmed_abstracts": 2,
    "github": 3, "dm_mathematics": 3, "nih_exporter": 2,
}  # fmt: skip


def _draw_curriculum(name: str, index: int, rng: Any) -> dict[str, float]:
    skill = _SKILL_OF.get(name, index % CURRICULUM_SKILLS)
    share = _KINDS[name][1] * (6.0 if _KINDS[name][0] else 1.0) if name in _KINDS else float(
        math.exp(rng.normal(0.0, 0.8))
    )
    return {
        "share": share,
        "skill": float(skill),
        "teach": math.exp(rng.normal(0.0, 0.3)),
        "spill": rng.uniform(0.0, 0.25),  # share of its teaching that goes to skill 0
        "gate": rng.uniform(0.35, 0.6),  # the prerequisite level at which its skill half-opens
    }


def _curriculum_losses(
    world: WorldLike, edges: np.ndarray, weights: np.ndarray, fractions: np.ndarray, n_grid: int
) -> np.ndarray:
    import numpy as np

    dyn = world.dynamics
    n = n_grid or dyn.integration_steps
    p = params_of(world)
    k = weights.shape[2]
    teach = np.zeros((k, CURRICULUM_SKILLS))
    skills = p["skill"].astype(int)
    teach[np.arange(k), skills] = p["teach"] * (1.0 - p["spill"])
    teach[:, 0] += p["teach"] * p["spill"]
    # A skill's gate threshold: the mean over the domains that teach it (0.5 when none).
    gate = np.array(
        [float(p["gate"][skills == j].mean()) if np.any(skills == j) else 0.5
         for j in range(CURRICULUM_SKILLS)]
    )  # fmt: skip
    gains = np.einsum("bnk,kj->bnj", _cell_tokens(world, edges, weights, n), teach) * p["rate"][0]
    level = np.zeros((weights.shape[0], CURRICULUM_SKILLS))
    share = np.asarray(CURRICULUM_WEIGHT)
    nodes = np.empty((weights.shape[0], n + 1))
    pre = np.asarray(CURRICULUM_PREREQ)
    for i in range(n + 1):
        nodes[:, i] = dyn.loss_floor + dyn.amplitude * ((1.0 - level) @ share)
        if i == n:
            break
        opened = np.where(
            pre < 0, 1.0, _sigmoid((level[:, np.maximum(pre, 0)] - gate) / CURRICULUM_GATE)
        )
        level = level + (1.0 - level) * (1.0 - np.exp(-opened * gains[:, i]))
    return _at(nodes, fractions, n)


# ----------------------------------------------------------------------------------- order

ORDER_WEIGHT = (0.5, 0.3, 0.2)  # share of the target loss each skill group removes
_GROUP_OF: dict[str, int] = {
    "pile_cc": 0, "hackernews": 0, "enron_emails": 0, "ubuntu_irc": 0, "europarl": 0,
    "wikipedia_en": 0, "gutenberg_pg_19": 0, "arxiv": 1, "pubmed_central": 1, "freelaw": 1,
    "philpapers": 1, "pubmed_abstracts": 1, "nih_exporter": 1, "uspto_backgrounds": 1,
    "github": 2, "dm_mathematics": 2, "stackexchange": 2,
}  # fmt: skip


def _draw_order(name: str, index: int, rng: Any) -> dict[str, float]:
    share = _KINDS[name][1] if name in _KINDS else float(math.exp(rng.normal(0.0, 0.8)))
    return {
        "share": share,
        "group": float(_GROUP_OF.get(name, index % len(ORDER_WEIGHT))),
        "teach": math.exp(rng.normal(0.0, 0.3)),
        "forget": rng.uniform(0.5, 2.0),  # how hard its tokens overwrite the other groups
    }


def _order_losses(
    world: WorldLike, edges: np.ndarray, weights: np.ndarray, fractions: np.ndarray, n_grid: int
) -> np.ndarray:
    import numpy as np

    dyn = world.dynamics
    n = n_grid or dyn.integration_steps
    p = params_of(world)
    n_groups = len(ORDER_WEIGHT)
    member = np.zeros((weights.shape[2], n_groups))
    member[np.arange(weights.shape[2]), p["group"].astype(int)] = 1.0
    tokens = _cell_tokens(world, edges, weights, n)
    learn = np.einsum("bnk,kg->bng", tokens * p["teach"], member) * p["rate"][0]
    # Forgetting of group g: the other groups' tokens, each weighted by its domain's `forget`.
    pressure = np.einsum("bnk,kg->bng", tokens * p["forget"], 1.0 - member)
    level = np.zeros((weights.shape[0], n_groups))
    share = np.asarray(ORDER_WEIGHT)
    nodes = np.empty((weights.shape[0], n + 1))
    for i in range(n + 1):
        nodes[:, i] = dyn.loss_floor + dyn.amplitude * ((1.0 - level) @ share)
        if i == n:
            break
        level = level + (1.0 - level) * (1.0 - np.exp(-learn[:, i]))
        level = level * np.exp(-pressure[:, i])
    return _at(nodes, fractions, n)


FAMILIES: dict[str, Family] = {
    "saturation": Family(
        "saturation",
        "usefulness depends on the loss level; small curated corpora repeat with strong decay",
        _draw_saturation,
        _saturation_losses,
        0.5,
    ),
    "curriculum": Family(
        "curriculum",
        "domains teach skills with prerequisites; a skill grows once its prerequisite is learnt",
        _draw_curriculum,
        _curriculum_losses,
        15.4,
    ),
    "order": Family(
        "order",
        "pure order effects: a domain group's skill is forgotten while other groups train",
        _draw_order,
        _order_losses,
        15.4,
    ),
}
FAMILY_NAMES = (DEFAULT_FAMILY, *FAMILIES)


def get_family(name: str) -> Family:
    """The family called `name` (not the default one); unknown names are UsageErrors."""
    if name not in FAMILIES:
        raise UsageError(f"``family`` {name!r}: choose one of {', '.join(FAMILY_NAMES)}")
    return FAMILIES[name]


def family_losses(
    name: str, world: WorldLike, edges: np.ndarray, weights: np.ndarray, fractions: np.ndarray,
    n_grid: int = 0,
) -> np.ndarray:  # fmt: skip
    """True proxy-scale loss (B, F) of schedules (weights (B, S, K) over `edges`) in a family."""
    return get_family(name).losses(world, edges, weights, fractions, n_grid)


def draw_params(
    name: str, domains: Sequence[str], seed: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Corpus shares and per-domain family parameters, one random stream per domain index."""
    import numpy as np

    family = get_family(name)
    shares: list[float] = []
    columns: dict[str, list[float]] = {}
    for index, domain in enumerate(domains):
        rng = np.random.default_rng([seed, index, 7])
        drawn = family.draw(domain, index, rng)
        shares.append(drawn.pop("share"))
        for key, value in drawn.items():
            columns.setdefault(key, []).append(float(value))
    return shares, columns


def as_params(columns: Mapping[str, Sequence[float]]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """Family parameters in the World's hashable form, keys sorted."""
    return tuple((k, tuple(float(v) for v in columns[k])) for k in sorted(columns))
