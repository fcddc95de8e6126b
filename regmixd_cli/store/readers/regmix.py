"""RegMix's CSV pair: `index,train_the_pile_<d>...` and `index,metric/the_pile_<d>_val_loss...`.

The loss file holds one value per run and metric, at the end of training; the files do not say
which step, so the caller gives it (`--final-step`, default 1000, RegMix's proxy length).
Names are shortened: domain `train_the_pile_pile_cc` -> `pile_cc`, metric
`metric/the_pile_pile_cc_val_loss` -> `val/pile_cc` (`_val_ppl` -> `val_ppl/pile_cc`).
"""

from __future__ import annotations

from pathlib import Path

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.observations import observation_schema
from regmixd_cli.store.readers.base import REGMIX, Parsed, normalise_metric
from regmixd_cli.store.readers.mixtures import mixtures_from_table
from regmixd_cli.store.readers.table import read_table, require, to_float

INDEX = "index"
DEFAULT_FINAL_STEP = 1000


def read_regmix(path: str | Path, final_step: int = DEFAULT_FINAL_STEP) -> Parsed:
    """Read one file of the RegMix pair: its mixtures, or its losses at `final_step`."""
    import polars as pl

    shown = str(path)
    table = read_table(Path(path), shown)
    if table.columns[0] != INDEX:
        raise InputError(f"{shown}:1: a RegMix CSV starts with an 'index' column "
                         f"(got {table.columns[0]!r})")
    sha = sha256_file(Path(path))
    columns = table.columns[1:]
    if not any(c.startswith("metric/") for c in columns):
        return Parsed(shown, REGMIX, mixtures_from_table(table, INDEX, shown), None, sha)
    runs = table.get_column(INDEX).str.strip_chars()
    runs = pl.select(pl.when(runs == "").then(None).otherwise(runs)).to_series().alias(RUN)
    require(runs, shown, INDEX)
    names = [normalise_metric(c) for c in columns]
    if len(set(names)) != len(names):
        raise InputError(f"{shown}:1: two columns name the same metric; keep one")
    wide = pl.DataFrame(
        [runs, *(to_float(table, c, shown, f"value of {c!r}").alias(n)
                 for c, n in zip(columns, names, strict=True))]
    )
    long = (
        wide.unpivot(index=[RUN], on=sorted(names), variable_name=METRIC, value_name=VALUE)
        .drop_nulls(VALUE)
        .with_columns(pl.lit(final_step, dtype=pl.Int64).alias(STEP),
                      pl.lit(None, dtype=pl.Int64).alias(TOKENS))
        .select(observation_schema().keys())
        .sort([RUN, METRIC, STEP], maintain_order=True)
    )
    return Parsed(shown, REGMIX, {}, long, sha)
