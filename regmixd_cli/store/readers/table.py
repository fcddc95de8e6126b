"""CSV helpers shared by the CSV-based readers: read as text, convert with line numbers.

Every CSV is read with all columns as text, then converted column by column, so a bad cell is
reported as `file:line: ...` (data row i is line i + 2: the header is line 1).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from regmixd_cli.errors import InputError
from regmixd_cli.store.readers.base import read_text

if TYPE_CHECKING:
    import polars as pl


def read_header(path: Path, shown: str) -> list[str]:
    """The stripped column names of a CSV file's first line."""
    text = read_text(path)
    first = text.split("\n", 1)[0]
    try:
        row = next(csv.reader([first]), [])
    except csv.Error as exc:
        raise InputError(f"{shown}:1: unreadable CSV header ({exc}); is this a CSV file?") from None
    return [name.strip() for name in row]


def read_table(path: Path, shown: str) -> pl.DataFrame:
    """A CSV file as an all-text polars table with stripped column names."""
    import polars as pl

    header = read_header(path, shown)
    if not header or header == [""]:
        raise InputError(f"{shown}: empty file; nothing to ingest")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise InputError(f"{shown}:1: duplicate column(s) {', '.join(duplicated)}; keep one")
    try:
        table = pl.read_csv(
            path, infer_schema=False, new_columns=header, encoding="utf8-lossy"
        )
    except pl.exceptions.PolarsError:
        raise InputError(f"{shown}:{_ragged_line(path, len(header))}: row does not match the "
                         f"header's {len(header)} columns; fix the CSV") from None
    if table.height == 0:
        raise InputError(f"{shown}: header only, no rows; nothing to ingest")
    return table


def _ragged_line(path: Path, width: int) -> str:
    """The line number of the first row with more fields than the header ('?' if none)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                if len(row) > width:
                    return str(reader.line_num)
        except csv.Error:
            return str(reader.line_num)
    return "?"


def to_float(table: pl.DataFrame, column: str, shown: str, what: str) -> pl.Series:
    """A text column as Float64 (empty cells null; nan/inf allowed); bad cells raise."""
    import polars as pl

    raw = table.get_column(column).str.strip_chars()
    raw = pl.select(pl.when(raw == "").then(None).otherwise(raw)).to_series()
    values = raw.cast(pl.Float64, strict=False)
    _raise_first_bad(raw, values, shown, f"{what} is not a number")
    return values.alias(column)


def to_int(table: pl.DataFrame, column: str, shown: str, what: str) -> pl.Series:
    """A text column as non-negative Int64 (empty cells null); bad cells raise."""
    import polars as pl

    raw = table.get_column(column).str.strip_chars()
    raw = pl.select(pl.when(raw == "").then(None).otherwise(raw)).to_series()
    values = raw.cast(pl.Int64, strict=False)
    values = pl.select(pl.when(values >= 0).then(values)).to_series()
    _raise_first_bad(raw, values, shown, f"{what} is not a non-negative integer")
    return values.alias(column)


def require(values: pl.Series, shown: str, what: str) -> None:
    """Raise on the first empty cell of a column that must be filled."""
    nulls = values.is_null()
    if nulls.any():
        row = int(nulls.arg_true()[0])
        raise InputError(f"{shown}:{row + 2}: {what} is empty; every row needs one")


def _raise_first_bad(raw: pl.Series, values: pl.Series, shown: str, message: str) -> None:
    bad = raw.is_not_null() & values.is_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(f"{shown}:{row + 2}: {message}: {raw[row]!r}")
