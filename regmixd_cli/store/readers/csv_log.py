"""CSV logs: long `run,step,metric,value[,tokens]`, wide `run,step,<metric>...`.

A CSV whose header starts with `run` but has no `step` column is a mixtures table
(`run,<domain>...`) and is read as one.

See docs/reference/input-formats.md.
"""

from __future__ import annotations

from pathlib import Path

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.observations import empty_observations, observation_schema
from regmixd_cli.store.readers.base import CSV, Parsed
from regmixd_cli.store.readers.mixtures import mixtures_from_table
from regmixd_cli.store.readers.table import read_table, require, to_float, to_int

LONG_COLUMNS = frozenset({RUN, STEP, METRIC, VALUE, TOKENS})


def read_csv(path: str | Path) -> Parsed:
    """Read a long or wide CSV log (or a `run,<domain>...` mixtures table)."""
    import polars as pl

    shown = str(path)
    table = read_table(Path(path), shown)
    columns = table.columns
    if columns[0] != RUN:
        raise InputError(f"{shown}:1: a CSV log starts with a 'run' column (got {columns[0]!r}); "
                         "expected run,step,metric,value or run,step,<metric>...")
    sha = sha256_file(Path(path))
    if STEP not in columns:
        return Parsed(shown, CSV, mixtures_from_table(table, RUN, shown), None, sha)
    runs = table.get_column(RUN).str.strip_chars()
    runs = pl.select(pl.when(runs == "").then(None).otherwise(runs)).to_series().alias(RUN)
    require(runs, shown, "run")
    steps = to_int(table, STEP, shown, "step")
    require(steps, shown, "step")
    tokens = (to_int(table, TOKENS, shown, "tokens") if TOKENS in columns
              else pl.Series(TOKENS, [None] * table.height, dtype=pl.Int64))
    if {METRIC, VALUE} <= set(columns) and set(columns) <= LONG_COLUMNS:
        metric = table.get_column(METRIC).str.strip_chars()
        metric = pl.select(pl.when(metric == "").then(None).otherwise(metric)).to_series()
        require(metric, shown, "metric")
        value = to_float(table, VALUE, shown, "value")
        require(value, shown, "value")
        long = pl.DataFrame([runs, steps, tokens, metric.alias(METRIC), value.alias(VALUE)])
    else:
        metrics = sorted(c for c in columns if c not in (RUN, STEP, TOKENS))
        if not metrics:
            raise InputError(f"{shown}:1: no metric columns; expected run,step,<metric>...")
        wide = pl.DataFrame(
            [runs, steps, tokens, *(to_float(table, m, shown, f"value of {m!r}") for m in metrics)]
        )
        long = wide.unpivot(
            index=[RUN, STEP, TOKENS], on=metrics, variable_name=METRIC, value_name=VALUE
        ).drop_nulls(VALUE)
    long = long.select(observation_schema().keys()).cast(observation_schema())  # type: ignore[arg-type]
    if long.height == 0:
        long = empty_observations()
    return Parsed(shown, CSV, {}, long.sort([RUN, METRIC, STEP], maintain_order=True), sha)
