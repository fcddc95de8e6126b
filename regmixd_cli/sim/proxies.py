"""Proxy runs in a simulated world: their losses at every evaluation, as a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import (
    DIVERGED,
    METRIC,
    RUN,
    SOURCE,
    STEP,
    STEP_START,
    TOKENS,
    VALUE,
    ProgressFn,
    Store,
)
from regmixd_cli.errors import UsageError
from regmixd_cli.sim.world import (
    RUN_CHUNK,
    TRAIN_METRIC,
    SimulatedRuns,
    World,
    true_losses,
)
from regmixd_cli.store.files import build_manifest

if TYPE_CHECKING:
    pass


def eval_steps(proxy_steps: int, eval_every: int) -> tuple[int, ...]:
    """Logged steps: every `eval_every` steps, always including the last one."""
    if eval_every < 1 or eval_every > proxy_steps:
        raise UsageError(f"``eval_every`` must be in [1, {proxy_steps}], got {eval_every}")
    steps = list(range(eval_every, proxy_steps + 1, eval_every))
    if steps[-1] != proxy_steps:
        steps.append(proxy_steps)
    return tuple(steps)


def run_ids(n_runs: int, prefix: str = "p") -> tuple[str, ...]:
    """p000, p001, ... (wider when there are more than 1000 runs)."""
    width = max(3, len(str(n_runs - 1)))
    return tuple(f"{prefix}{i:0{width}d}" for i in range(n_runs))


def simulate_runs(
    world: World,
    mixtures: Any,
    seed: int,
    *,
    eval_every: int = 50,
    runs: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    phases: Sequence[Sequence[tuple[int, Any]]] | None = None,
) -> SimulatedRuns:
    """Train one proxy per mixture (rows of an (M, K) array) and log it every `eval_every`.

    `phases` makes runs phased: run i trains on mixtures[i] from step 0 and switches to each
    of phases[i]'s (start_step, weights) in turn (an empty sequence: a static run). Run i's
    noise comes from (seed, i) alone, so the first 128 of 512 runs equal a 128-run simulation
    of the same mixtures, and a run's noise does not depend on whether it is phased.
    """
    import numpy as np

    mix = np.asarray(mixtures, dtype=float)
    if mix.ndim != 2 or mix.shape[1] != world.n_domains or mix.shape[0] < 1:
        raise UsageError(f"mixtures must be an (n_runs, {world.n_domains}) array")
    if np.any(mix < 0) or np.any(np.abs(mix.sum(axis=1) - 1.0) > 0.01):
        raise UsageError("every mixture must be >= 0 and sum to 1")
    mix = mix / mix.sum(axis=1, keepdims=True)
    names = run_ids(len(mix)) if runs is None else tuple(runs)
    if len(names) != len(mix) or len(set(names)) != len(names):
        raise UsageError("need one distinct run id per mixture")
    steps = np.asarray(eval_steps(world.proxy_steps, eval_every), dtype=np.int64)
    fractions = steps / world.proxy_steps
    edges, segments = _segments(world, mix, phases)
    true = np.empty((len(mix), len(steps)))
    for start in range(0, len(mix), RUN_CHUNK):
        chunk = segments[start : start + RUN_CHUNK]
        true[start : start + len(chunk)] = true_losses(world, edges, chunk, fractions)
        if progress is not None:
            progress(min(start + RUN_CHUNK, len(mix)), len(mix))
    dyn = world.dynamics
    # How far training has come (0 at the start, 1 at the floor): noise and offsets grow with it.
    done = (world.initial_loss - true) / (world.initial_loss - dyn.loss_floor)
    offsets = mix @ np.asarray(world.train_offset)
    target = np.empty_like(true)
    train = np.empty_like(true)
    for i in range(len(mix)):
        rng = np.random.default_rng([seed, 1, i])
        shift = rng.normal(0.0, dyn.run_noise)
        target[i] = true[i] + done[i] * shift + rng.normal(0.0, dyn.eval_noise, len(steps))
        train[i] = (
            true[i] + done[i] * (offsets[i] + shift) + rng.normal(0.0, dyn.train_noise, len(steps))
        )
    kept = None
    if phases is not None and any(len(p) for p in phases):
        kept = tuple(
            tuple((int(s), np.asarray(w, dtype=float) / float(np.sum(w))) for s, w in p)
            for p in phases
        )
    return SimulatedRuns(
        names, world.domains, mix, steps, steps * world.tokens_per_step, target, train, true,
        world.target_metric, kept,
    )  # fmt: skip


def _segments(
    world: World, mix: Any, phases: Sequence[Sequence[tuple[int, Any]]] | None
) -> tuple[Any, Any]:
    """Stage edges (fractions, the union of every run's phase starts) and (M, S, K) weights."""
    import numpy as np

    if phases is None or not any(len(p) for p in phases):
        return np.array([0.0, 1.0]), mix[:, None, :]
    if len(phases) != len(mix):
        raise UsageError("need one sequence of phases per mixture")
    starts = sorted({int(s) for p in phases for s, _ in p})
    if starts and (starts[0] <= 0 or starts[-1] >= world.proxy_steps):
        raise UsageError(
            f"phase start steps must lie in (0, {world.proxy_steps}) (the proxy length, "
            f"``steps``); got {starts[0] if starts[0] <= 0 else starts[-1]}"
        )
    edges = np.array([0.0, *(s / world.proxy_steps for s in starts), 1.0])
    weights = np.repeat(mix[:, None, :], len(edges) - 1, axis=1)
    for i, run_phases in enumerate(phases):
        for start, w in sorted(run_phases, key=lambda p: p[0]):
            row = np.asarray(w, dtype=float)
            if row.shape != (mix.shape[1],) or np.any(row < 0) or abs(row.sum() - 1) > 0.01:
                raise UsageError(f"run {i}: phase at step {start}: weights must be >= 0, "
                                 "one per domain, summing to 1")
            weights[i, starts.index(int(start)) + 1 :] = row / row.sum()
    return edges, weights


def runs_to_store(sim: SimulatedRuns) -> Store:
    """The simulated runs as an in-memory trajectory store (for benchmarks; no files)."""
    import polars as pl


    runs = pl.DataFrame(
        {RUN: list(sim.runs)}
        | {d: sim.mixtures[:, k] for k, d in enumerate(sim.domains)}
        | {SOURCE: ["simulate"] * len(sim.runs), DIVERGED: [False] * len(sim.runs)}
    )
    n_runs, n_evals = sim.target.shape
    frames = []
    for metric, values in ((sim.target_metric, sim.target), (TRAIN_METRIC, sim.train)):
        frames.append(
            pl.DataFrame(
                {
                    RUN: [r for r in sim.runs for _ in range(n_evals)],
                    STEP: pl.Series(list(sim.steps) * n_runs, dtype=pl.Int64),
                    TOKENS: pl.Series(list(sim.tokens) * n_runs, dtype=pl.Int64),
                    METRIC: [metric] * (n_runs * n_evals),
                    VALUE: values.reshape(-1),
                }
            )
        )
    trajectories = pl.concat(frames).sort([RUN, METRIC, STEP])
    manifest = build_manifest(sim.domains, runs, trajectories, [])
    phases = None
    if sim.phases is not None:
        rows = [(run, 0, sim.mixtures[i]) for i, run in enumerate(sim.runs)]
        rows += [(run, s, w) for run, later in zip(sim.runs, sim.phases, strict=True)
                 for s, w in later]
        rows.sort(key=lambda r: (r[0], r[1]))
        phases = pl.DataFrame(
            {RUN: [r[0] for r in rows], STEP_START: pl.Series([r[1] for r in rows], dtype=pl.Int64)}
            | {d: [float(r[2][k]) for r in rows] for k, d in enumerate(sim.domains)}
        )
        manifest["n_phased_runs"] = sum(1 for later in sim.phases if later)
    return Store(sim.domains, runs, trajectories, manifest, phases)
