"""Trajectories -> losses on the interval grid -> (t, m, loss) -> next-loss rows.

The grid is t_l = l * T_p / (N + 1), l = 1..N+1, or the user's own `--intervals`. T_p is the
largest step any usable run logged for the target metric: most proxy runs stop at the same step,
and a run that stops earlier than the grid's last point is left out rather than extrapolated.

See docs/explanation/method.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from regmixd_cli.domain import DIVERGED, METRIC, RUN, STEP, VALUE, Store
from regmixd_cli.errors import InputError, UsageError

if TYPE_CHECKING:
    import polars as pl

# Metric names that count as validation metrics when `--target` is not given.
VALIDATION_PREFIXES = ("val", "eval")


@dataclass(frozen=True, slots=True)
class LossTable:
    """Usable runs with their mixtures and their target loss at every grid point.

    `mixtures` is (M, K) in `domains` order, `losses` is (M, N+1): losses[:, l-1] is the loss at
    grid[l-1]. `diverged` and `short` name the runs left out, and why.
    """

    domains: tuple[str, ...]
    target: str
    grid: tuple[float, ...]
    runs: tuple[str, ...]
    mixtures: np.ndarray
    losses: np.ndarray
    diverged: tuple[str, ...]
    short: tuple[str, ...]
    endpoint_only: bool
    # The store itself holds one observation per run (RegMix's CSVs), not just a 1-point grid.
    endpoint_logs: bool = True
    # Phased stores only (None: every run static, and `mixtures` says it all):
    # in_force (M, N+1, K): the mixture in force over interval l, [0, t_1) then [t_l, t_{l+1}),
    # step-weighted where a phase boundary falls inside; history (M, N+1, K): the average
    # mixture over [0, t_l) for l = 1..N+1 (history[:, -1] is the run's average mixture).
    in_force: np.ndarray | None = None
    history: np.ndarray | None = None
    # (M,) runs whose phases all start at 0 or on a grid point (within half a step: phases
    # start on whole steps, grid points need not), so each is a measured plan on the grid;
    # grid_plans (M, N+1, K): the phase in force in the middle of each interval (rows of runs
    # off the grid are not plans). None: every run is static.
    on_grid: np.ndarray | None = None
    grid_plans: np.ndarray | None = None

    @property
    def n_runs(self) -> int:
        """Number of usable runs."""
        return len(self.runs)

    @property
    def proxy_steps(self) -> float:
        """T_p, the last grid point."""
        return self.grid[-1]


def resolve_target(store: Store, target: str | None, where: str = "store") -> str:
    """`--target`, or the store's only validation metric; otherwise a UsageError listing them."""
    metrics = store.metrics
    if target is not None:
        if target not in metrics:
            raise UsageError(
                f"{where}: no metric {target!r} (--target); choose one of {', '.join(metrics)}"
            )
        return target
    candidates = [m for m in metrics if m.lower().startswith(VALIDATION_PREFIXES)]
    if len(candidates) == 1:
        return candidates[0]
    listed = ", ".join(candidates or metrics)
    what = "several validation metrics" if candidates else "no validation metric (val*/eval*)"
    raise UsageError(f"{where}: the store has {what}; choose one with --target: {listed}")


def even_grid(proxy_steps: float, n_switch_points: int) -> tuple[float, ...]:
    """t_l = l * T_p / (N + 1) for l = 1..N+1."""
    if n_switch_points < 0:
        raise UsageError(f"--switch-points {n_switch_points}: must be 0 or more")
    n = n_switch_points + 1
    return tuple(float(proxy_steps) * i / n for i in range(1, n + 1))


def parse_intervals(text: str) -> tuple[float, ...]:
    """Parse `--intervals t1,..,tN+1`: positive, finite, strictly increasing step numbers."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--intervals {text!r}: give comma-separated step numbers, e.g. 200,400,600,800,1000"
        ) from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise UsageError(f"--intervals {text!r}: steps must be finite and > 0")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise UsageError(f"--intervals {text!r}: steps must be strictly increasing")
    return values


def loss_at(steps: np.ndarray, values: np.ndarray, points: Sequence[float]) -> np.ndarray:
    """Loss at each point by linear interpolation between logged steps; NaN outside the log."""
    points_arr = np.asarray(points, dtype=np.float64)
    if steps.size == 0:
        return np.full(points_arr.shape, np.nan)
    inside = (points_arr >= steps[0]) & (points_arr <= steps[-1])
    result = np.interp(points_arr, steps, values)
    return np.where(inside, result, np.nan)


def _target_series(store: Store, target: str) -> pl.DataFrame:
    """Finite observations of the target metric, one row per (run, step), sorted."""
    import polars as pl

    return (
        store.trajectories.lazy()
        .filter((pl.col(METRIC) == target) & pl.col(VALUE).is_finite())
        .group_by([RUN, STEP])
        .agg(pl.col(VALUE).mean())  # duplicate logs of one step are averaged
        .sort([RUN, STEP])
        .collect()
    )


def build_loss_table(
    store: Store,
    target: str,
    *,
    n_switch_points: int = 5,
    intervals: Sequence[float] | None = None,
    where: str = "store",
    grid_fix: str | None = None,
) -> LossTable:
    """The usable runs' target loss on the interval grid; diverged and short runs left out.

    A store with at most one observation per run (RegMix's CSV pair) gives the endpoint-only
    grid (T_p,); so does a one-point grid (`--switch-points 0`): no transitions to learn.
    A grid reaching past every run's log is a UsageError saying so.
    """
    import polars as pl

    series = _target_series(store, target)
    diverged_set = set(store.runs.filter(pl.col(DIVERGED)).get_column(RUN).to_list())
    per_run: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (run,), frame in series.group_by([RUN], maintain_order=True):
        per_run[str(run)] = (
            frame.get_column(STEP).to_numpy().astype(np.float64),
            frame.get_column(VALUE).to_numpy().astype(np.float64),
        )
    healthy = [r for r in per_run if r not in diverged_set]
    if not healthy:
        raise InputError(
            f"{where}: no usable run logs the target metric {target!r} (all diverged or empty)"
        )
    endpoint_only = max(per_run[r][0].size for r in healthy) == 1
    if intervals is not None:
        grid = tuple(float(t) for t in intervals)
        if endpoint_only:
            grid = grid[-1:]
    else:
        proxy_steps = common_length([float(per_run[r][0][-1]) for r in healthy])
        grid = (proxy_steps,) if endpoint_only else even_grid(proxy_steps, n_switch_points)
    _check_grid_reach(grid, [per_run[r][0] for r in healthy], target, intervals is not None,
                      grid_fix, where)
    endpoint_logs = endpoint_only
    endpoint_only = endpoint_only or len(grid) == 1

    runs_frame = store.runs.select([RUN, *store.domains])
    mixture_of = {str(row[0]): row[1:] for row in runs_frame.iter_rows()}
    kept: list[str] = []
    rows: list[np.ndarray] = []
    short: list[str] = []
    for run in sorted(per_run):
        if run in diverged_set:
            continue
        steps, values = per_run[run]
        losses = loss_at(steps, values, grid)
        if np.isnan(losses).any():
            short.append(run)
            continue
        kept.append(run)
        rows.append(losses)
    # Runs that never logged the target at all cannot reach the grid either.
    short.extend(r for r in sorted(mixture_of) if r not in per_run and r not in diverged_set)
    mixtures = np.array([mixture_of[r] for r in kept], dtype=np.float64).reshape(
        len(kept), len(store.domains)
    )
    losses_arr = np.array(rows, dtype=np.float64).reshape(len(kept), len(grid))
    in_force = history = on_grid = grid_plans = None
    if store.phases is not None:
        in_force, history = phase_mixtures(store.phases, store.domains, kept, grid)
        on_grid, grid_plans = phases_on_grid(store.phases, store.domains, kept, grid)
    return LossTable(
        domains=tuple(store.domains),
        target=target,
        grid=grid,
        runs=tuple(kept),
        mixtures=mixtures,
        losses=losses_arr,
        diverged=tuple(sorted(diverged_set)),
        short=tuple(sorted(short)),
        endpoint_only=endpoint_only,
        endpoint_logs=endpoint_logs,
        in_force=in_force,
        history=history,
        on_grid=on_grid,
        grid_plans=grid_plans,
    )


def common_length(last_steps: Sequence[float]) -> float:
    """T_p by default: the longest length that most (at least half) of the runs reach.

    Runs of one length give that length; a few longer runs no longer make every other run
    "short" (they are cut at T_p instead; shorter runs are left out and reported).
    """
    ordered = sorted(last_steps, reverse=True)
    return ordered[(len(ordered) - 1) // 2]


def phase_mixtures(
    phases: pl.DataFrame, domains: Sequence[str], runs: Sequence[str], grid: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(in_force, history) of `runs` on the grid from a store's phases (see LossTable).

    A phase's share of an interval is its share of the interval's steps (tokens per step are
    taken as constant within a run).
    """
    ends = np.asarray(grid, dtype=np.float64)
    starts = np.concatenate([[0.0], ends[:-1]])
    by_run = _phases_by_run(phases, domains)
    k = len(domains)
    in_force = np.empty((len(runs), len(ends), k))
    history = np.empty((len(runs), len(ends), k))
    for i, run in enumerate(runs):
        items = by_run[run]
        p_start = np.array([s for s, _ in items], dtype=np.float64)
        p_end = np.concatenate([p_start[1:], [np.inf]])
        weights = np.stack([w for _, w in items])  # (P, K)
        # overlap[l, p]: steps of interval l under phase p
        overlap = np.clip(np.minimum(ends[:, None], p_end[None, :])
                          - np.maximum(starts[:, None], p_start[None, :]), 0.0, None)
        in_force[i] = overlap @ weights / overlap.sum(axis=1, keepdims=True)
        seen = np.cumsum(overlap, axis=0)
        history[i] = seen @ weights / seen.sum(axis=1, keepdims=True)
    return in_force, history


def _phases_by_run(
    phases: pl.DataFrame, domains: Sequence[str]
) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Each run's phases as (start_step, weights in `domains` order), by start step."""
    by_run: dict[str, list[tuple[int, np.ndarray]]] = {}
    for row in phases.select([RUN, "start_step", *domains]).iter_rows():
        by_run.setdefault(str(row[0]), []).append((int(row[1]), np.asarray(row[2:], float)))
    return {run: sorted(items, key=lambda p: p[0]) for run, items in by_run.items()}


def phases_on_grid(
    phases: pl.DataFrame, domains: Sequence[str], runs: Sequence[str], grid: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(on_grid, grid_plans) of `runs` (see LossTable): whether each changes mixture only at 0
    or within half a step of a grid point t_1..t_N (a phase starting at or after T_p shapes
    nothing), and the phase in force in the middle of each interval."""
    ends = np.asarray(grid, dtype=np.float64)
    middles = (np.concatenate([[0.0], ends[:-1]]) + ends) / 2
    by_run = _phases_by_run(phases, domains)
    on_grid = np.ones(len(runs), dtype=bool)
    plans = np.empty((len(runs), len(ends), len(domains)))
    for i, run in enumerate(runs):
        items = by_run[run]
        starts = np.array([start for start, _ in items], dtype=np.float64)
        inside = starts[(starts > 0) & (starts < ends[-1] - 0.5)]
        on_grid[i] = bool(np.all(np.abs(inside[:, None] - ends[None, :-1]).min(axis=1,
                                                                         initial=np.inf) <= 0.5))
        current = np.searchsorted(starts, middles, side="right") - 1
        plans[i] = np.stack([w for _, w in items])[current]
    return on_grid, plans


def after_change(table: LossTable) -> np.ndarray:
    """(M, N) bool: transition l of run i trains on a mixture other than the run's history.

    These rows are what static proxies never show (all False for a static store).
    """
    n_stages = table.losses.shape[1] - 1
    if table.in_force is None or table.history is None:
        return np.zeros((table.n_runs, n_stages), dtype=bool)
    gap = np.abs(table.in_force[:, 1:] - table.history[:, :-1]).sum(axis=2)
    result: np.ndarray = gap > 1e-9
    return result


def _check_grid_reach(
    grid: Sequence[float], steps: Sequence[np.ndarray], target: str, from_intervals: bool,
    fix: str | None, where: str,
) -> None:
    """A grid that ends after every run's last step (or starts before every first) fits none.
    `fix` says what to do (default: the `fit` options that set the grid)."""
    if fix is None:
        fix = "use --intervals within the runs" if from_intervals else "use fewer --switch-points"
    last = max(float(s[-1]) for s in steps)
    if grid[-1] > last:
        raise UsageError(
            f"{where}: the grid ends at step {grid[-1]:g} but the longest run logs {target} "
            f"to step {last:g}; {fix}"
        )
    first = min(float(s[0]) for s in steps)
    if grid[0] < first:
        raise UsageError(
            f"{where}: the grid starts at step {grid[0]:g} but no run logs {target} before step "
            f"{first:g}; {fix}"
        )


@dataclass(frozen=True, slots=True)
class TransitionRows:
    """The M*N transition rows: for run i and stage l, (t_l, m_i, loss_l) -> loss_{l+1}.

    Rows are ordered run-major (run 0 stages 1..N, run 1 stages 1..N, ...); `run_index` and
    `stage` (1-based) say where each row came from.
    """

    t: np.ndarray
    mixtures: np.ndarray
    loss: np.ndarray
    next_loss: np.ndarray
    run_index: np.ndarray
    stage: np.ndarray


def build_transitions(table: LossTable) -> TransitionRows:
    """Turn a loss table into transition rows (none for an endpoint-only table)."""
    n_runs, n_points = table.losses.shape
    n_stages = n_points - 1
    grid = np.asarray(table.grid, dtype=np.float64)
    run_index = np.repeat(np.arange(n_runs), n_stages)
    stage = np.tile(np.arange(1, n_stages + 1), n_runs)
    return TransitionRows(
        t=grid[stage - 1] if n_stages else np.empty(0),
        mixtures=table.mixtures[run_index],
        loss=table.losses[:, :-1].reshape(-1),
        next_loss=table.losses[:, 1:].reshape(-1),
        run_index=run_index,
        stage=stage,
    )


def name_some(names: Sequence[str], limit: int = 5) -> str:
    """`a, b, c and 12 more`: the first few names and a count, for one-line warnings."""
    shown = ", ".join(names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
