"""Weights & Biases CSV exports: `Step` and one `<run> - <metric>` column per run and metric.

W&B adds `<run> - <metric>__MIN` / `__MAX` columns (the band of a smoothed chart); they are
dropped. The run is the text before the first " - ", the metric the text after it; RegMix-style
metric names are shortened as in the RegMix reader. Empty cells mean "not logged at this step".
"""

from __future__ import annotations

from pathlib import Path

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.observations import empty_observations
from regmixd_cli.store.readers.base import WANDB, Parsed, normalise_metric
from regmixd_cli.store.readers.table import read_table, require, to_float, to_int

STEP_COLUMN = "Step"
SEPARATOR = " - "
DROPPED_SUFFIXES = ("__MIN", "__MAX")


def read_wandb(path: str | Path) -> Parsed:
    """Read a W&B CSV export into observations (mixtures come from `--mixtures`)."""
    import polars as pl

    shown = str(path)
    table = read_table(Path(path), shown)
    if table.columns[0] != STEP_COLUMN:
        raise InputError(f"{shown}:1: a W&B export starts with a 'Step' column "
                         f"(got {table.columns[0]!r})")
    steps = to_int(table, STEP_COLUMN, shown, "Step")
    require(steps, shown, "Step")
    frames = []
    for column in table.columns[1:]:
        if column.endswith(DROPPED_SUFFIXES):
            continue
        run, sep, metric = column.partition(SEPARATOR)
        if not sep or not run.strip() or not metric.strip():
            raise InputError(f"{shown}:1: column {column!r} is not '<run> - <metric>'; "
                             "export the chart's data from W&B as CSV")
        values = to_float(table, column, shown, f"value of {column!r}")
        frames.append(
            pl.DataFrame({STEP: steps, VALUE: values})
            .drop_nulls(VALUE)
            .with_columns(pl.lit(run.strip()).alias(RUN),
                          pl.lit(normalise_metric(metric)).alias(METRIC),
                          pl.lit(None, dtype=pl.Int64).alias(TOKENS))
        )
    if not frames:
        raise InputError(f"{shown}:1: no '<run> - <metric>' columns; nothing to ingest")
    long = pl.concat(frames).select(RUN, STEP, TOKENS, METRIC, VALUE)
    if long.height == 0:
        long = empty_observations()
    sha = sha256_file(Path(path))
    return Parsed(shown, WANDB, {}, long.sort([RUN, METRIC, STEP], maintain_order=True), sha)
