"""Observations kept wide: `run, step, tokens` and one Float64 column per metric.

The native JSONL reader keeps its rows this way, in parts sorted by (run, step): a wide row is
~18x smaller than the long rows it becomes, and a part can be spilled to disk. Ingest then
gathers one run range at a time from every part and turns it into long rows with
`wide_to_long`, which builds the (run, metric, step) order by index arithmetic instead of a sort.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.store.columns import numeric, strings
from regmixd_cli.store.observations import empty_observations
from regmixd_cli.store.spill import Spill, SpilledPart

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

KEYS = (RUN, STEP, TOKENS)


@dataclass(frozen=True, slots=True)
class WidePart:
    """One part of a file's wide rows, sorted by (run, step), and where each run starts."""

    rows: pl.DataFrame | SpilledPart  # a handle from `Spill.put`
    runs: tuple[str, ...]  # distinct runs of the part, sorted
    starts: tuple[int, ...]  # first row of each run, then the part's height
    tokens_complete: bool = False  # no row lacks tokens


@dataclass(frozen=True, slots=True)
class WideObservations:
    """All observation rows of one file, wide, in parts."""

    parts: tuple[WidePart, ...]
    n_metrics: int  # metric columns of the widest part (for row estimates)

    def run_rows(self) -> dict[str, int]:
        """Wide rows per run, summed over parts."""
        counts: dict[str, int] = {}
        for part in self.parts:
            for run, start, stop in zip(part.runs, part.starts, part.starts[1:], strict=False):
                counts[run] = counts.get(run, 0) + stop - start
        return counts

    def take(self, first: str, last: str) -> Iterator[pl.DataFrame]:
        """The rows of runs `first`..`last` (inclusive), one frame per part that has any."""
        for part in self.parts:
            lo = bisect.bisect_left(part.runs, first)
            hi = bisect.bisect_right(part.runs, last)
            if lo < hi:
                yield Spill.take(part.rows, [(part.starts[lo], part.starts[hi])])

    def to_long(self) -> pl.DataFrame:
        """Every observation as one long table sorted by (run, metric, step)."""
        import polars as pl

        if not self.parts:
            return empty_observations()
        frames = [Spill.take(p.rows, [(0, p.starts[-1])]) for p in self.parts]
        return wide_to_long_frame(pl.concat(frames, how="diagonal").sort([RUN, STEP],
                                                                         maintain_order=True))


def metric_columns(wide: pl.DataFrame) -> list[str]:
    """The metric columns of a wide frame, sorted (the long table's metric order)."""
    return sorted(c for c in wide.columns if c not in KEYS)


def wide_to_long_frame(wide: pl.DataFrame) -> pl.DataFrame:
    """Wide rows sorted by (run, step) -> long rows sorted by (run, metric, step); general."""
    import polars as pl

    metrics = metric_columns(wide)
    if not metrics or wide.height == 0:
        return empty_observations()
    return (
        wide.with_columns(pl.col(RUN).rank("dense").alias("_rank"))
        .unpivot(index=["_rank", *KEYS], on=metrics, variable_name=METRIC, value_name=VALUE)
        .drop_nulls(VALUE)
        .sort("_rank", maintain_order=True)
        .select(RUN, STEP, TOKENS, METRIC, VALUE)
    )


def wide_to_long(wide: pl.DataFrame) -> pa.Table | None:
    """Wide rows sorted by (run, step) -> long Arrow table in (run, metric, step) order.

    Run and metric come out dictionary-encoded (no per-row strings are built). Returns None
    when a run repeats a step: those rows need `wide_to_long_frame` and the duplicate check.
    """
    import numpy as np
    import polars as pl
    import pyarrow as pa

    metrics = metric_columns(wide)
    n, k = wide.height, len(metrics)
    runs = wide.get_column(RUN)
    steps = wide.get_column(STEP).to_numpy()
    new_run = runs.ne_missing(runs.shift()).to_numpy()
    if n == 0 or k == 0 or np.any((np.diff(steps) <= 0) & ~new_run[1:]):
        return None
    bounds = np.append(np.flatnonzero(new_run), n)
    lengths = np.diff(bounds)
    run_names = strings(runs.gather(bounds[:-1]).to_list())
    if lengths.min() == lengths.max() and not any(wide.get_column(m).null_count()
                                                  for m in metrics):
        return _equal_runs_to_long(wide, metrics, run_names, steps, lengths.size)
    # Long row p of run g, metric j, i-th step sits at flat index j*n + bounds[g] + i of the
    # metric-major value matrix; build those indices run by run, metric by metric.
    seg_len = np.repeat(lengths, k)
    seg_first = (np.arange(k, dtype=np.int64)[None, :] * n + bounds[:-1, None]).ravel()
    flat = np.repeat(seg_first - (np.cumsum(seg_len) - seg_len), seg_len)
    flat += np.arange(flat.size, dtype=np.int64)
    values = wide.select(metrics).to_numpy(order="fortran").ravel(order="F")
    run_code = np.repeat(np.arange(lengths.size, dtype=np.int32), lengths * k)
    if any(wide.get_column(m).null_count() for m in metrics):
        valid = wide.select(pl.col(metrics).is_not_null()).to_numpy(order="fortran").ravel(
            order="F")
        keep = valid[flat]
        flat, run_code = flat[keep], run_code[keep]
    metric_code = flat // n
    row = flat - metric_code * n
    tokens = wide.get_column(TOKENS)
    token_values: Any = tokens.fill_null(0).to_numpy()[row]
    token_mask = tokens.is_null().to_numpy()[row] if tokens.null_count() else None
    return pa.table({
        RUN: pa.DictionaryArray.from_arrays(numeric(run_code, pa.int32()), run_names, safe=False),
        STEP: numeric(steps[row], pa.int64()),
        TOKENS: numeric(token_values, pa.int64(), null=token_mask),
        METRIC: pa.DictionaryArray.from_arrays(numeric(metric_code, pa.int32()),
                                               strings(metrics), safe=False),
        VALUE: numeric(values[flat], pa.float64()),
    })


def _equal_runs_to_long(
    wide: pl.DataFrame, metrics: list[str], run_names: pa.Array, steps: Any, n_runs: int
) -> pa.Table:
    """`wide_to_long` when every run has the same number of rows and no value is missing.

    The long rows of run g are then block g of a (run, metric, step) array, so each column
    is a strided copy (a broadcast or a transpose) with no index arithmetic.
    """
    import numpy as np
    import pyarrow as pa

    k, n = len(metrics), wide.height
    shape = (n_runs, k, n // n_runs)

    def spread(column: Any) -> Any:  # one value per wide row -> the same for each metric
        return np.broadcast_to(column.reshape(shape[0], 1, shape[2]), shape).reshape(-1)

    values = np.empty(shape)
    for j, metric in enumerate(metrics):
        values[:, j, :] = wide.get_column(metric).to_numpy().reshape(shape[0], shape[2])
    tokens = wide.get_column(TOKENS)
    token_mask = spread(tokens.is_null().to_numpy()) if tokens.null_count() else None
    metric_code = np.broadcast_to(np.arange(k, dtype=np.int32)[None, :, None], shape)
    run_code = np.repeat(np.arange(n_runs, dtype=np.int32), n // n_runs * k)
    return pa.table({
        RUN: pa.DictionaryArray.from_arrays(numeric(run_code, pa.int32()), run_names, safe=False),
        STEP: numeric(spread(steps), pa.int64()),
        TOKENS: numeric(spread(tokens.fill_null(0).to_numpy()), pa.int64(), null=token_mask),
        METRIC: pa.DictionaryArray.from_arrays(numeric(metric_code.reshape(-1), pa.int32()),
                                               strings(metrics), safe=False),
        VALUE: numeric(values.reshape(-1), pa.float64()),
    })
