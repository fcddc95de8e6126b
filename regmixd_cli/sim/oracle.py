"""The best static mixture and the best schedule of a synthetic world, by direct search.

Both searches use the world's true loss, so they bound what any method can reach there. Random
Dirichlet candidates around the prior seed a descent in logit space (forward-difference
gradients, normalised steps, backtracking); the schedule search starts from the best static
mixture repeated in every stage, so it can only improve on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regmixd_cli._version import __version__
from regmixd_cli.domain import SCHEDULE_SCHEMA, ProgressFn
from regmixd_cli.errors import UsageError
from regmixd_cli.sim.files import stages_from_document
from regmixd_cli.sim.world import (
    World,
    final_losses,
    static_stages,
    true_final_loss,
    true_loss_curve,
)
from regmixd_cli.weights import WEIGHT_DECIMALS, round_weights

if TYPE_CHECKING:
    import numpy as np

METHOD_ORACLE_STATIC = "oracle-static"
METHOD_ORACLE_SCHEDULE = "oracle-schedule"
SEARCH_GRID = 200  # integration cells while searching; the answer is re-scored on the world's grid
STEP_H = 1e-4  # forward-difference step in logit space


@dataclass(frozen=True, slots=True)
class OracleConfig:
    """How hard the oracle searches."""

    candidates: int = 2048
    refine_starts: int = 4
    static_iterations: int = 150
    schedule_iterations: int = 300


@dataclass(frozen=True, slots=True)
class Oracle:
    """The oracle answers of one world, with their true final losses (proxy scale)."""

    edges: tuple[float, ...]  # stage edges of the schedule, 0 ... 1
    static: tuple[float, ...]
    schedule: tuple[tuple[float, ...], ...]
    prior_loss: float
    static_loss: float
    schedule_loss: float


def find_oracle(
    world: World,
    n_switch_points: int = 5,
    seed: int = 0,
    config: OracleConfig | None = None,
    progress: ProgressFn | None = None,
) -> Oracle:
    """Best static mixture and best (N+1)-stage schedule on evenly spaced stages."""
    import numpy as np

    if n_switch_points < 0:
        raise UsageError(f"``switch_points`` must be >= 0, got {n_switch_points}")
    cfg = config or OracleConfig()
    total = cfg.refine_starts * cfg.static_iterations + cfg.schedule_iterations
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    prior = np.asarray(world.prior)
    rng = np.random.default_rng(seed)
    # Candidates as RegMix draws them: Dirichlet around the prior at log-spaced strengths.
    strengths = np.logspace(-1, math.log10(50.0), 16)
    alphas = strengths[rng.integers(len(strengths), size=cfg.candidates)][:, None] * prior
    draws = rng.gamma(np.maximum(alphas, 1e-3))
    draws = draws / draws.sum(axis=1, keepdims=True)
    pool = np.vstack([prior, draws])
    screened = final_losses(world, (0.0, 1.0), pool[:, None, :], SEARCH_GRID)
    starts = pool[np.argsort(screened, kind="stable")[: cfg.refine_starts]]

    best_static, best_loss = prior, math.inf
    for start in starts:
        found, loss = _descend(world, (0.0, 1.0), start[None], cfg.static_iterations, tick)
        if loss < best_loss:
            best_static, best_loss = found[0], loss
    # Edges are rounded as the schedule file writes them, so scoring the file gives our numbers.
    n_stages = n_switch_points + 1
    edges = tuple(round(i / n_stages, WEIGHT_DECIMALS) for i in range(n_stages + 1))
    repeated = np.repeat(best_static[None], n_switch_points + 1, axis=0)
    schedule, _ = _descend(world, edges, repeated, cfg.schedule_iterations, tick)

    # Re-score the rounded answers on the world's own grid; keep the guaranteed order
    # schedule <= static <= prior (a coarse-grid gain can vanish on the fine grid).
    prior_loss = true_final_loss(world, static_stages(world.prior))
    static = round_weights(best_static)
    static_loss = true_final_loss(world, static_stages(static))
    if static_loss > prior_loss:
        static, static_loss = tuple(float(w) for w in prior), prior_loss
    rounded = tuple(round_weights(row) for row in schedule)
    schedule_loss = true_final_loss(world, _stages(edges, rounded))
    if schedule_loss > static_loss:
        rounded, schedule_loss = (static,) * n_stages, static_loss
    return Oracle(edges, static, rounded, prior_loss, static_loss, schedule_loss)


def _descend(
    world: World, edges: Sequence[float], start: np.ndarray, iterations: int, tick: Any
) -> tuple[np.ndarray, float]:
    """Minimise the final loss over per-stage mixtures by normalised gradient steps on logits."""
    import numpy as np

    n_stages, n_domains = start.shape
    z = np.log(np.maximum(start, 1e-9))
    current = float(final_losses(world, edges, _softmax(z)[None], SEARCH_GRID)[0])
    eta = 1.0
    size = n_stages * n_domains
    for used in range(1, iterations + 1):
        probes = np.repeat(z[None], size, axis=0)
        probes.reshape(size, size)[np.arange(size), np.arange(size)] += STEP_H
        grad = (final_losses(world, edges, _softmax(probes), SEARCH_GRID) - current) / STEP_H
        step = grad.reshape(n_stages, n_domains) / (np.abs(grad).max() + 1e-12)
        while eta > 1e-6:
            trial = z - eta * step
            loss = float(final_losses(world, edges, _softmax(trial)[None], SEARCH_GRID)[0])
            if loss < current:
                z, current, eta = trial, loss, eta * 1.5
                break
            eta /= 2
        else:
            tick(iterations - used + 1)
            break
        tick(1)
    return _softmax(z), current


def _softmax(z: np.ndarray) -> np.ndarray:
    import numpy as np

    e = np.exp(z - z.max(axis=-1, keepdims=True))
    probs: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return probs


def oracle_document(
    world: World,
    oracle: Oracle,
    method: str,
    seed: int,
    world_sha256: str,
    config: OracleConfig | None = None,
) -> dict[str, Any]:
    """An oracle answer in the schedule JSON v1 layout, at the world's target length.

    `predicted_loss` of a stage is the *true* proxy-scale loss at the stage's end.

    See docs/reference/file-formats.md.
    """

    edges: tuple[float, ...]
    rows: tuple[tuple[float, ...], ...]
    if method == METHOD_ORACLE_STATIC:
        edges, rows = (0.0, 1.0), (oracle.static,)
    elif method == METHOD_ORACLE_SCHEDULE:
        edges, rows = oracle.edges, oracle.schedule
    else:
        raise UsageError(f"unknown oracle method {method!r}")
    steps = [math.floor(e * world.target_steps + 0.5) for e in edges]
    ends = true_loss_curve(world, _stages(edges, rows), [e * world.proxy_steps for e in edges[1:]])
    stages = [
        {
            "start_step": steps[i],
            "end_step": steps[i + 1],
            "start_fraction": edges[i],
            "end_fraction": edges[i + 1],
            "weights": dict(zip(world.domains, row, strict=True)),
            "predicted_loss": round(float(ends[i]), 6),
        }
        for i, row in enumerate(rows)
    ]
    loss = true_final_loss(world, stages_from_document({"stages": stages}, world, method))
    return {
        "schema_version": SCHEDULE_SCHEMA,
        "method": method,
        "domains": list(world.domains),
        "target_steps": world.target_steps,
        "stages": stages,
        "provenance": {
            "model": world_sha256,
            "world_seed": world.seed,
            "prior": dict(zip(world.domains, round_weights(world.prior), strict=True)),
            "candidates": (config or OracleConfig()).candidates,
            "top_k": 1,
            "alpha": 1.0,
            "seed": seed,
            "true_final_loss": loss,
            "regmixd_version": __version__,
        },
    }


def _stages(fractions: Sequence[float], rows: Sequence[Sequence[float]]) -> list[Any]:
    return [(fractions[i], fractions[i + 1], row) for i, row in enumerate(rows)]
