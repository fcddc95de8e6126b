"""Mixtures files (`--mixtures`): CSV `run,<domain>...` or JSON `{run: {domain: weight}}`.

RegMix's mixture CSV (`index,train_the_pile_<domain>...`) is a mixtures table too: the run
column may be called `index`, and RegMix domain names are shortened to `<domain>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.readers.base import (
    MIXTURES,
    MixtureRecord,
    Parsed,
    normalise_domain,
    read_text,
)
from regmixd_cli.store.readers.table import read_table, require, to_float

if TYPE_CHECKING:
    import polars as pl

RUN_COLUMNS = ("run", "index")


def read_mixtures(path: str | Path) -> Parsed:
    """Read a mixtures file (CSV or JSON, decided by content)."""
    shown = str(path)
    text = read_text(Path(path))
    if not text.strip():
        raise InputError(f"{shown}: empty mixtures file; expected CSV run,<domain>... or JSON")
    if text.lstrip().startswith("{"):
        mixtures = _from_json(text, shown)
    else:
        table = read_table(Path(path), shown)
        if table.columns[0] not in RUN_COLUMNS:
            raise InputError(f"{shown}:1: a mixtures CSV starts with a 'run' column "
                             f"(got {table.columns[0]!r}); expected run,<domain>...")
        mixtures = mixtures_from_table(table, table.columns[0], shown)
    return Parsed(shown, MIXTURES, mixtures, None, sha256_file(Path(path)))


def mixtures_from_table(
    table: pl.DataFrame, run_column: str, shown: str
) -> dict[str, MixtureRecord]:
    """Rows of a `run,<domain>...` table -> mixtures; empty cells are missing domains."""
    import polars as pl

    domains = [c for c in table.columns if c != run_column]
    if not domains:
        raise InputError(f"{shown}:1: no domain columns; expected {run_column},<domain>...")
    names = [normalise_domain(d) for d in domains]
    if len(set(names)) != len(names):
        raise InputError(f"{shown}:1: two columns name the same domain; keep one")
    runs = table.get_column(run_column).str.strip_chars()
    runs = pl.select(pl.when(runs == "").then(None).otherwise(runs)).to_series()
    require(runs, shown, run_column)
    weights = [to_float(table, d, shown, f"weight of {d!r}") for d in domains]
    mixtures: dict[str, MixtureRecord] = {}
    for i, run in enumerate(runs.to_list()):
        where = f"{shown}:{i + 2}"
        given = {n: w[i] for n, w in zip(names, weights, strict=True) if w[i] is not None}
        previous = mixtures.get(run)
        if previous is not None and dict(previous.weights) != given:
            raise InputError(f"{where}: run {run!r} has a different mixture at {previous.where}; "
                             "keep one")
        mixtures.setdefault(run, MixtureRecord(given, where))
    return mixtures


class _DuplicateKey(ValueError):
    """A JSON object names the same key twice (json.loads would keep the last silently)."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _from_json(text: str, shown: str) -> dict[str, MixtureRecord]:
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        raise InputError(f"{shown}: {str(exc)!r} is named twice in one object (a run or a "
                         "domain given twice); keep one") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{shown}:{exc.lineno}: malformed JSON ({exc.msg}); fix the file"
        ) from None
    except (ValueError, RecursionError):  # an integer of > 4300 digits, deep nesting
        raise InputError(f"{shown}: malformed JSON (too deeply nested or a number too long); "
                         "fix the file") from None
    if not isinstance(data, dict) or not data:
        raise InputError(f"{shown}: a mixtures JSON is an object {{run: {{domain: weight}}}}")
    mixtures: dict[str, MixtureRecord] = {}
    for run, weights in data.items():
        where = f"{shown}: run {run!r}"
        if not isinstance(weights, dict) or not weights:
            raise InputError(f"{where}: expected an object {{domain: weight}}, got {weights!r:.60}")
        mixtures[str(run)] = MixtureRecord(
            {normalise_domain(d): w for d, w in weights.items()}, where
        )
    return mixtures
