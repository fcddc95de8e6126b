"""Mixtures files (`--mixtures`): CSV `run,<domain>...` or JSON `{run: {domain: weight}}`.

Phased runs: CSV `run,start_step,<domain>...` (one row per phase, a run's rows in increasing
start_step, the first at 0) or JSON `{run: [{"start_step": 0, "weights": {...}}, ...]}`.

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
    add_phase,
    normalise_domain,
    parse_step,
    read_text,
)
from regmixd_cli.store.readers.table import read_table, require, to_float, to_int

if TYPE_CHECKING:
    import polars as pl

RUN_COLUMNS = ("run", "index")
START_STEP = "start_step"


def read_mixtures(path: str | Path) -> Parsed:
    """Read a mixtures file (CSV or JSON, decided by content)."""
    shown = str(path)
    text = read_text(Path(path))
    if not text.strip():
        raise InputError(f"{shown}: empty mixtures file; expected CSV run,<domain>... or JSON")
    phases: dict[str, dict[int, MixtureRecord]] = {}
    if text.lstrip().startswith("{"):
        mixtures = _from_json(text, shown, phases)
    else:
        table = read_table(Path(path), shown)
        if table.columns[0] not in RUN_COLUMNS:
            raise InputError(f"{shown}:1: a mixtures CSV starts with a 'run' column "
                             f"(got {table.columns[0]!r}); expected run,<domain>...")
        if len(table.columns) > 1 and table.columns[1].strip() == START_STEP:
            mixtures = _phases_from_table(table, table.columns[0], shown, phases)
        else:
            mixtures = mixtures_from_table(table, table.columns[0], shown)
    return Parsed(shown, MIXTURES, mixtures, None, sha256_file(Path(path)), phases=phases)


def _check_order(run: str, step: int, last: dict[str, int], where: str) -> None:
    """A run's phases come in strictly increasing start_step, the first at 0."""
    previous = last.get(run)
    if previous is None and step != 0:
        raise InputError(f"{where}: run {run!r}: its first phase starts at step {step}, not 0; "
                         "give its mixture from step 0 first")
    if previous is not None and step <= previous:
        what = "repeats" if step == previous else "comes before"
        raise InputError(f"{where}: run {run!r}: start_step {step} {what} its previous phase's "
                         f"({previous}); list a run's phases once each, in increasing start_step")
    last[run] = step


def _phases_from_table(
    table: pl.DataFrame, run_column: str, shown: str, phases: dict[str, dict[int, MixtureRecord]]
) -> dict[str, MixtureRecord]:
    """Rows of a `run,start_step,<domain>...` table -> first phases (returned) and later ones."""
    steps = to_int(table, table.columns[1], shown, "start_step").to_list()
    rest = table.drop(table.columns[1])
    firsts: dict[str, MixtureRecord] = {}
    last: dict[str, int] = {}
    rows = mixtures_per_row(rest, run_column, shown)
    for i, ((run, given), step) in enumerate(zip(rows, steps, strict=True)):
        where = f"{shown}:{i + 2}"
        if step is None:
            raise InputError(f"{where}: run {run!r} has no start_step; give one per row")
        _check_order(run, int(step), last, where)
        record = MixtureRecord(given, where, int(step))
        if step == 0:
            firsts[run] = record
        else:
            add_phase(phases, run, record)
    return firsts


def mixtures_per_row(
    table: pl.DataFrame, run_column: str, shown: str
) -> list[tuple[str, dict[str, Any]]]:
    """(run, {domain: weight}) of every row of a `run,<domain>...` table; empty cells left out."""
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
    return [
        (run, {n: w[i] for n, w in zip(names, weights, strict=True) if w[i] is not None})
        for i, run in enumerate(runs.to_list())
    ]


def mixtures_from_table(
    table: pl.DataFrame, run_column: str, shown: str
) -> dict[str, MixtureRecord]:
    """Rows of a `run,<domain>...` table -> mixtures; empty cells are missing domains."""
    mixtures: dict[str, MixtureRecord] = {}
    for i, (run, given) in enumerate(mixtures_per_row(table, run_column, shown)):
        where = f"{shown}:{i + 2}"
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


def _from_json(
    text: str, shown: str, phases: dict[str, dict[int, MixtureRecord]]
) -> dict[str, MixtureRecord]:
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
        if isinstance(weights, list):
            mixtures[str(run)] = _json_phases(str(run), weights, shown, phases)
            continue
        if not isinstance(weights, dict) or not weights:
            raise InputError(f"{where}: expected an object {{domain: weight}}, got {weights!r:.60}")
        mixtures[str(run)] = MixtureRecord(
            {normalise_domain(d): w for d, w in weights.items()}, where
        )
    return mixtures


def _json_phases(
    run: str, items: list[Any], shown: str, phases: dict[str, dict[int, MixtureRecord]]
) -> MixtureRecord:
    """`[{"start_step": 0, "weights": {...}}, ...]` -> the first phase (returned) and the rest."""
    if not items:
        raise InputError(f"{shown}: run {run!r}: an empty list of phases; give at least the "
                         "phase at step 0")
    last: dict[str, int] = {}
    first: MixtureRecord | None = None
    for p, item in enumerate(items):
        at = f"{shown}: run {run!r} phase {p}"
        if not isinstance(item, dict) or not isinstance(item.get("weights"), dict) or not item[
            "weights"
        ]:
            raise InputError(f'{at}: expected {{"start_step": S, "weights": {{domain: weight}}}}')
        step = parse_step(item.get(START_STEP, 0))
        if step is None:
            raise InputError(f"{at}: start_step must be a non-negative integer, "
                             f"got {item.get(START_STEP)!r}")
        _check_order(run, step, last, at)
        record = MixtureRecord({normalise_domain(d): w for d, w in item["weights"].items()},
                               at, step)
        if step == 0:
            first = record
        else:
            add_phase(phases, run, record)
    assert first is not None  # _check_order requires the first phase at 0
    return first
