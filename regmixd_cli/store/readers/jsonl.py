"""Native JSONL logs: mixture lines and observation lines, runs interleaved.

    {"run": "p001", "mixture": {"pile_cc": 0.6, "github": 0.4}}
    {"run": "p001", "step": 100, "tokens": 104857600, "val/pile_cc": 5.91, "train/loss": 6.02}

Two engines. The fast path is polars' own streaming NDJSON reader (it maps the file and parses
it on every core), taken in batches of rows so that memory stays bounded whatever the file
size: the schema is inferred from the first lines, every metric read as Float64. Beside it a
thread reads the file once more for its sha256 and its line and colon counts. Polars ignores
keys outside the schema, so colons == values read proves none was dropped; when they differ,
the schema is inferred from every line and, if that finds more keys, the file is read again
with them. Each batch's observation rows stay wide, sorted by (run, step), in parts that a
`Spill` may keep on disk; ingest turns them into long rows one run range at a time. Anything
polars rejects, or any row that breaks the format, sends the file to the line-by-line scan,
whose job is to name the bad line (and which also reads what polars cannot: NaN/Infinity
tokens, numbers written as strings).

See docs/reference/input-formats.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import not_utf8_reason, sha256_file
from regmixd_cli.store.observations import empty_observations, observation_schema
from regmixd_cli.store.readers.base import (
    JSONL,
    MixtureRecord,
    Parsed,
    add_phase,
    parse_number,
    parse_step,
)
from regmixd_cli.store.readers.wide import WideObservations, WidePart
from regmixd_cli.store.spill import Spill

if TYPE_CHECKING:
    import polars as pl

MIXTURE = "mixture"
START_STEP = "start_step"  # on a mixture line: the step its phase starts at (absent: 0)
_RESERVED = (RUN, STEP, TOKENS, MIXTURE, START_STEP)
# A mixture key followed by an object: counted only in files with escapes, where a string
# value could hold JSON text that polars would hand over just like an object's.
_MIXTURE_OBJECT = re.compile(rb'"mixture"\s*:\s*\{')
# A null mixture, which polars reads as no mixture (an observation line) and the line scan
# refuses: looked for when the colons do not add up (a null value leaves one unread).
_MIXTURE_NULL = re.compile(rb'"mixture"\s*:\s*null')
# Bytes of whole lines at each end of the file the schema is first inferred from: a key seen in
# neither costs a whole-file inference and a second read.
_SAMPLE_BYTES = 1 << 20
SCHEMA_LINES = 1000  # lines the schema is inferred from when the first line is longer
# Rows polars hands over at a time.
BATCH_ROWS = 50_000
# Observation rows (polars' estimate of their size) that make one sorted part, kept in memory
# or spilled: about 64 MiB of JSONL.
PART_BYTES = 24 << 20
_READ_BYTES = 16 << 20  # bytes the checks read at a time
_COUNT_BYTES = 1 << 18  # bytes compared at a time when counting colons and newlines (in cache)


def read_jsonl(
    path: str | Path,
    *,
    spill: Spill | None = None,
    batch_rows: int = BATCH_ROWS,
    part_bytes: int = PART_BYTES,
) -> Parsed:
    """Read one native JSONL log: polars fast path, line-by-line scan to name a bad line.

    On the fast path the observations come back wide (`Parsed.wide`), their parts held by
    `spill` (in memory by default); `Parsed.long_observations()` gives the long table.
    """
    parsed = _read_fast(Path(path), str(path), spill or Spill(), batch_rows, part_bytes)
    return parsed if parsed is not None else _read_lines(Path(path), str(path))


# ---------------------------------------------------------------------------------------------
# Fast path


def _read_fast(
    path: Path, shown: str, spill: Spill, batch_rows: int, part_bytes: int
) -> Parsed | None:
    """Read with polars, batch by batch; None when the file needs the line-by-line scan."""
    import polars as pl

    try:
        schema = _wanted_schema(_sample_schema(path))
    except (pl.exceptions.PolarsError, OSError):
        return None
    if schema is None:
        return None
    # Turning the parts into the store needs pyarrow: import it while polars parses, not after.
    threading.Thread(target=_import_arrow, name="regmixd-import-arrow").start()
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="regmixd-check") as pool:
        checked = pool.submit(_check, path, stop)
        try:
            read = _stream(path, shown, schema, spill, batch_rows, part_bytes)
        except BaseException:
            stop.set()  # Ctrl-C: the checks stop now, not at the end of the file
            raise
        try:
            checks = checked.result()
        except OSError:
            checks = None
    if checks is None:
        _discard(read)
        return None
    read = _verified(read, checks, path, schema,
                     lambda wider: _stream(path, shown, wider, spill, batch_rows, part_bytes))
    if read is None:
        return None
    wide_obs = read.parts.finish()
    if wide_obs is None:
        return Parsed(shown, JSONL, read.mixtures, empty_observations(), checks.sha256)
    return Parsed(shown, JSONL, read.mixtures, None, checks.sha256, wide=wide_obs)


def _verified(
    read: _Read | None, checks: _Checks, path: Path, schema: dict[str, Any],
    reread: Callable[[dict[str, Any]], _Read | None],
) -> _Read | None:
    """The read that stands against the file's checks: `read`, or the file read again with
    more keys (`reread`); None for the line scan. A read given up leaves the spill."""
    import polars as pl

    if _adds_up(read, checks, path, exact=True):
        return read
    # A key outside the sampled schema may have been dropped (or a value was null, or a
    # string holds a colon), and a row that lost its step looks malformed: infer the schema
    # from every line. With no more keys than the sample's, a read that adds up but for the
    # colons stands; anything else is the line scan's to judge.
    try:
        found = _wanted_schema(pl.scan_ndjson(path, infer_schema_length=None).collect_schema())
    except (pl.exceptions.PolarsError, OSError):
        found = None
    if found is None:
        _discard(read)
        return None
    if found.keys() - schema.keys():
        _discard(read)
        read = reread({**schema, **found})
    if _adds_up(read, checks, path, exact=False):
        return read
    _discard(read)
    return None


def _adds_up(read: _Read | None, checks: _Checks, path: Path, *, exact: bool) -> bool:
    """Whether a read stands against the file's checks: every row read, one per line (no
    blank line, so row numbers are line numbers), no mixture given as a string holding JSON
    (polars reads it alike) and, if `exact`, a value read for every colon (no key dropped),
    else no null mixture."""
    if read is None or read.rows != checks.lines:
        return False
    if exact and read.n_values != checks.colons:
        return False
    if not exact and _count_matches(path, _MIXTURE_NULL):
        return False
    return not checks.backslash or _count_matches(path, _MIXTURE_OBJECT) == read.n_mixtures


def _sample_schema(path: Path) -> Any:
    """The schema polars infers from the file's first and last `_SAMPLE_BYTES` of whole lines
    (the whole file if it is smaller): a log that starts with its mixture lines has its
    observation keys at the end."""
    import polars as pl

    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= 2 * _SAMPLE_BYTES:
            return pl.scan_ndjson(path, infer_schema_length=None).collect_schema()
        head = handle.read(_SAMPLE_BYTES)
        handle.seek(size - _SAMPLE_BYTES)
        tail = handle.read(_SAMPLE_BYTES)
    head = head[:head.rfind(b"\n") + 1]
    tail = tail[tail.find(b"\n") + 1:] if b"\n" in tail else b""  # else a cut last line
    if not head:  # a first line longer than the sample
        return pl.scan_ndjson(path, infer_schema_length=SCHEMA_LINES).collect_schema()
    return pl.scan_ndjson(head + tail, infer_schema_length=None).collect_schema()


@dataclass(slots=True)
class _Read:
    """What a streamed read of the file gave."""

    parts: _PartBuilder
    mixtures: dict[str, MixtureRecord] = field(default_factory=dict)
    rows: int = 0
    n_values: int = 0  # see `_n_values`
    n_mixtures: int = 0  # mixture lines


def _stream(
    path: Path, shown: str, schema: dict[str, Any], spill: Spill, batch_rows: int,
    part_bytes: int,
) -> _Read | None:
    """Read the file with `schema`, batch by batch, into mixtures and sorted parts; None when
    polars rejects it or a row breaks the format (its parts discarded)."""
    import polars as pl

    read = _Read(_PartBuilder(spill, part_bytes))
    try:
        for wide in pl.scan_ndjson(path, schema=schema).collect_batches(chunk_size=batch_rows):
            split = _split_batch(wide, read.rows + 1, shown, read.mixtures)
            if split is None:
                _discard(read)
                return None
            obs, n_mixtures = split
            read.parts.add(obs)
            read.rows += wide.height
            read.n_values += _n_values(wide)
            read.n_mixtures += n_mixtures
    except (pl.exceptions.PolarsError, OSError):
        _discard(read)
        return None
    return read


def _discard(read: _Read | None) -> None:
    """Give up a read: its parts leave the spill."""
    if read is not None:
        read.parts.discard()


def _import_arrow() -> None:
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401


@dataclass(frozen=True, slots=True)
class _Checks:
    sha256: str  # of the whole file, for the manifest
    lines: int  # newlines, plus a last line without one
    colons: int
    backslash: bool  # whether any string has an escape


def _check(path: Path, stop: threading.Event) -> _Checks:
    """The file's sha256 and its line and colon counts, in one more read of it (from the
    page cache, beside polars' parse); cut short, and not to be used, once `stop` is set."""
    import numpy as np

    digest = hashlib.sha256()
    scratch = np.empty(_COUNT_BYTES, dtype=bool)  # reused: no fresh pages per block
    n_lines = n_colons = 0
    backslash = False
    last = b"\n"
    with open(path, "rb") as handle:
        while not stop.is_set() and (data := handle.read(_READ_BYTES)):
            digest.update(data)
            backslash = backslash or b"\\" in data
            raw = np.frombuffer(data, np.uint8)
            for i in range(0, raw.size, _COUNT_BYTES):
                part = raw[i:i + _COUNT_BYTES]
                hits = scratch[:part.size]
                n_lines += int(np.count_nonzero(np.equal(part, 10, out=hits)))
                n_colons += int(np.count_nonzero(np.equal(part, 58, out=hits)))
            last = data[-1:]
    return _Checks(digest.hexdigest(), n_lines + (last != b"\n"), n_colons, backslash)


def _count_matches(path: Path, pattern: re.Pattern[bytes]) -> int:
    """Matches of `pattern` (which spans no newline) in the file, read a block of whole lines
    at a time."""
    count = 0
    carry = b""
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BYTES):
            cut = block.rfind(b"\n") + 1
            lines, carry = (carry + block[:cut], block[cut:]) if cut else (b"", carry + block)
            count += sum(1 for _ in pattern.finditer(lines))
    return count + sum(1 for _ in pattern.finditer(carry))


def _wanted_schema(inferred: Any) -> dict[str, Any] | None:
    """The schema to read with: run as text, step/tokens Int64, every metric Float64.

    A mixture object is read as its JSON text (polars writes it back out), parsed in Python
    only for the few mixture lines: ~15% less parsing than building a struct column.
    """
    import polars as pl

    numeric = (pl.Int64, pl.Float64, pl.Null, pl.UInt64)
    schema: dict[str, Any] = {}
    for name, dtype in inferred.items():
        if _has_control(name):
            return None  # the line scan names the line
        if name == RUN:
            if dtype not in (pl.String, pl.Int64, pl.UInt64):
                return None
            schema[name] = pl.String
        elif name in (STEP, TOKENS):
            if dtype not in numeric:
                return None
            schema[name] = pl.Int64
        elif name == MIXTURE:
            if not isinstance(dtype, pl.Struct):
                return None
            if any(fld.dtype not in numeric for fld in dtype.fields):
                return None
            schema[name] = pl.String
        else:
            if dtype not in numeric:
                return None  # strings, lists, objects: the line scan names the line
            schema[name] = pl.Float64
    return schema if RUN in schema else None


def _n_values(wide: pl.DataFrame) -> int:
    """Non-null values read, plus the colons inside each mixture's text (its keys)."""
    total: int = wide.height * wide.width - sum(wide.null_count().row(0))
    if MIXTURE in wide.columns and wide.get_column(MIXTURE).null_count() < wide.height:
        total += int(wide.get_column(MIXTURE).str.count_matches(":", literal=True).sum())
    return total


def _split_batch(
    wide: pl.DataFrame, first_line: int, shown: str, mixtures: dict[str, MixtureRecord]
) -> tuple[pl.DataFrame, int] | None:
    """Record a batch's mixtures; return its rows as (run, step, tokens, metrics), and the
    number of mixture lines.

    The mixture lines' rows are among them, with no step (`_PartBuilder` drops them).

    None if a row breaks the format (the line scan then names it).
    """
    import polars as pl

    if START_STEP in wide.columns:
        return None  # phased runs: the line scan reads their phase lines
    has_mix = pl.col(MIXTURE).is_not_null() if MIXTURE in wide.columns else pl.lit(False)
    step = pl.col(STEP) if STEP in wide.columns else pl.lit(None, dtype=pl.Int64)
    tokens = pl.col(TOKENS) if TOKENS in wide.columns else pl.lit(None, dtype=pl.Int64)
    bad = wide.select(
        (
            pl.col(RUN).is_null()
            | pl.col(RUN).str.contains("\x00", literal=True)  # maybe half a surrogate pair
            | (has_mix & step.is_not_null())
            | (~has_mix & step.is_null())
            | (step < 0)
            | (tokens < 0)
        ).any()
    ).item()
    if bad:
        return None
    metrics = [c for c in wide.columns if c not in _RESERVED]
    n_mixtures = 0
    if MIXTURE in wide.columns and wide.get_column(MIXTURE).null_count() < wide.height:
        rows = wide.select(RUN, MIXTURE).with_row_index("_line", offset=first_line).filter(
            has_mix)
        n_mixtures = rows.height
        for run, line, text in rows.select(RUN, "_line", MIXTURE).iter_rows():
            given = _weights(text)
            if given is None or (run in mixtures and mixtures[run].weights != given):
                return None  # the line scan reports the two disagreeing lines
            mixtures.setdefault(run, MixtureRecord(given, f"{shown}:{line}"))
    # Metrics absent from the whole batch would only add null cells. The mixture lines' rows
    # (no step) stay until the part is sorted: one filter per part, not one per batch.
    present = [m for m in metrics if wide.get_column(m).null_count() < wide.height]
    return wide.select(RUN, step.alias(STEP), tokens.alias(TOKENS), *present), n_mixtures


def _weights(text: str) -> dict[str, float] | None:
    """A mixture's JSON text (as polars gives it) -> {domain: weight}; None if not numbers."""
    try:
        weights = json.loads(text)
    except ValueError:
        return None
    if not isinstance(weights, dict) or not weights or _half_surrogate(text, weights):
        return None
    given = {}
    for domain, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return None  # null too: the line scan refuses it
        given[domain] = float(weight)
    return given


class _PartBuilder:
    """Collects batches' observation rows into parts sorted by (run, step), handed to a spill."""

    def __init__(self, spill: Spill, part_bytes: int) -> None:
        self.spill = spill
        self.part_bytes = part_bytes
        self.pending: list[pl.DataFrame] = []
        self.pending_bytes = 0
        self.parts: list[WidePart] = []
        self.n_metrics = 0

    def add(self, obs: pl.DataFrame) -> None:
        if obs.height:
            self.pending.append(obs)
            self.pending_bytes += int(obs.estimated_size())
        if self.pending_bytes >= self.part_bytes:
            self._flush()

    def discard(self) -> None:
        """Drop every part (from the spill too)."""
        for part in self.parts:
            self.spill.drop(part.rows)
        self.parts, self.pending, self.pending_bytes = [], [], 0

    def _flush(self) -> None:
        import numpy as np
        import polars as pl

        if not self.pending:
            return
        rows = pl.concat(self.pending, how="diagonal") if len(self.pending) > 1 else self.pending[0]
        self.pending, self.pending_bytes = [], 0
        if rows.get_column(STEP).null_count():
            rows = rows.filter(pl.col(STEP).is_not_null())  # the mixture lines' rows
            if rows.height == 0:
                return
        rows = rows.sort([RUN, STEP], maintain_order=True)
        runs = rows.get_column(RUN)
        starts = np.flatnonzero(runs.ne_missing(runs.shift()).to_numpy())
        self.n_metrics = max(self.n_metrics, rows.width - 3)
        self.parts.append(WidePart(
            self.spill.put(rows), tuple(runs.gather(starts).to_list()),
            (*(int(s) for s in starts), rows.height),
            tokens_complete=rows.get_column(TOKENS).null_count() == 0,
        ))

    def finish(self) -> WideObservations | None:
        self._flush()
        return WideObservations(tuple(self.parts), self.n_metrics) if self.parts else None


# ---------------------------------------------------------------------------------------------
# Line-by-line scan


def _read_lines(path: Path, shown: str) -> Parsed:
    """Parse line by line with the standard library; raise on the first bad line."""
    import polars as pl

    mixtures: dict[str, MixtureRecord] = {}
    phases: dict[str, dict[int, MixtureRecord]] = {}
    runs: list[str] = []
    steps: list[int] = []
    tokens: list[int | None] = []
    metrics: list[str] = []
    values: list[float] = []
    try:
        handle = open(path, "rb")
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{shown}: cannot read ({reason})") from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            where = f"{shown}:{lineno}"
            text = _decode(raw, where, first=lineno == 1).strip()
            if not text:
                continue
            obj = _parse_object(text, where)
            run = obj.get(RUN)
            if run is None or isinstance(run, bool | dict | list | float):
                raise InputError(f"{where}: no usable 'run' field; every line needs "
                                 '"run": "<id>"')
            run = str(run)
            if MIXTURE in obj:
                _add_mixture(obj, run, where, mixtures, phases)
                continue
            if START_STEP in obj:
                raise InputError(f"{where}: 'start_step' belongs on a mixture line (the phase's "
                                 "mixture); observation lines have 'step'")
            step = parse_step(obj.get(STEP))
            if step is None:
                raise InputError(
                    f"{where}: 'step' is missing or not a non-negative integer "
                    f"(got {obj.get(STEP)!r}); observation lines need one"
                )
            tok = obj.get(TOKENS)
            if tok is not None:
                tok = parse_step(tok)
                if tok is None:
                    raise InputError(f"{where}: 'tokens' must be a non-negative integer, "
                                     f"got {obj.get(TOKENS)!r}")
            for key, value in obj.items():
                if key in _RESERVED or value is None:
                    continue
                if _has_control(key):
                    raise InputError(f"{where}: metric name {key!r} holds a control character "
                                     "(NUL, newline...); rename the metric")
                number = parse_number(value)
                if number is None:
                    raise InputError(f"{where}: value of {key!r} is not a number: {value!r}")
                runs.append(run)
                steps.append(step)
                tokens.append(tok)
                metrics.append(key)
                values.append(number)
    sha = sha256_file(path)
    if not runs:
        return Parsed(shown, JSONL, mixtures, empty_observations(), sha, engine="line-scan",
                      phases=phases)
    obs = pl.DataFrame(
        {RUN: runs, STEP: steps, TOKENS: tokens, METRIC: metrics, VALUE: values},
        schema=observation_schema(),
    ).sort([RUN, METRIC, STEP], maintain_order=True)
    return Parsed(shown, JSONL, mixtures, obs, sha, engine="line-scan", phases=phases)


def _has_control(name: str) -> bool:
    """A name with a control character (two names equal up to a NUL would clash as columns)."""
    return any(ord(c) < 32 or c == "\x7f" for c in name)


def _decode(raw: bytes, where: str, *, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{where}: {not_utf8_reason(raw)}") from None


def _parse_object(text: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); fix or remove the line"
        ) from None
    except (ValueError, RecursionError):  # an integer of > 4300 digits, deep nesting
        raise InputError(f"{where}: malformed JSON (too deeply nested or a number too long); "
                         "fix or remove the line") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected one JSON object per line, got {type(obj).__name__}")
    if _half_surrogate(text, obj):
        raise InputError(f"{where}: a \\u escape gives half a surrogate pair (\\ud800-\\udfff "
                         "alone), which is no character; fix the line")
    return obj


def _half_surrogate(text: str, obj: Any) -> bool:
    """Whether JSON `text` (`obj` once parsed) holds half a surrogate pair, which is no
    character (polars reads a first half as NUL)."""
    if "\\ud" not in text and "\\uD" not in text:
        return False
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _add_mixture(
    obj: dict[str, Any],
    run: str,
    where: str,
    into: dict[str, MixtureRecord],
    phases: dict[str, dict[int, MixtureRecord]],
) -> None:
    weights = obj[MIXTURE]
    if not isinstance(weights, dict) or not weights:
        raise InputError(f"{where}: 'mixture' must be a non-empty object {{domain: weight}}")
    if obj.get(STEP) is not None:
        raise InputError(f"{where}: a line has both 'mixture' and 'step'; put the mixture "
                         "on its own line")
    for domain, weight in weights.items():
        number = parse_number(weight) if isinstance(weight, int | float) else None
        if number is None or not math.isfinite(number):
            raise InputError(f"{where}: weight of {domain!r} is not a finite number: {weight!r}")
    given = dict(weights)
    start = obj.get(START_STEP)
    if start is not None:
        start = parse_step(start)
        if start is None:
            raise InputError(f"{where}: 'start_step' must be a non-negative integer, "
                             f"got {obj.get(START_STEP)!r}")
        if start > 0:
            add_phase(phases, run, MixtureRecord(given, where, start))
            return
    previous = into.get(run)
    if previous is not None and dict(previous.weights) != given:
        raise InputError(
            f"{where}: run {run!r} has a different mixture at {previous.where}; keep one"
        )
    into.setdefault(run, MixtureRecord(given, where))
