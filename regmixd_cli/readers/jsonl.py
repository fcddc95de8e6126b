"""Native JSONL logs (SPEC section 3.1): mixture lines and observation lines, runs interleaved.

    {"run": "p001", "mixture": {"pile_cc": 0.6, "github": 0.4}}
    {"run": "p001", "step": 100, "tokens": 104857600, "val/pile_cc": 5.91, "train/loss": 6.02}

Two engines. The fast path is polars' own NDJSON reader: the schema is inferred from the first
lines, every metric read as Float64, and a cheap count of colons in the raw bytes checks that no
key outside the inferred schema was silently dropped (polars ignores unknown keys); if one may
have been, the schema is inferred again from the whole file. Anything polars rejects, or any row
that breaks the format, sends the file to the line-by-line scan, whose job is to name the bad
line (and which also reads what polars cannot: NaN/Infinity tokens, numbers written as strings).
"""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.io import sha256_file
from regmixd_cli.readers.base import (
    JSONL,
    MixtureRecord,
    Parsed,
    empty_observations,
    observation_schema,
    parse_number,
    parse_step,
)

if TYPE_CHECKING:
    import polars as pl

MIXTURE = "mixture"
_RESERVED = (RUN, STEP, TOKENS, MIXTURE)
_BLOCK = 1 << 24


def read_jsonl(path: str | Path) -> Parsed:
    """Read one native JSONL log: polars fast path, line-by-line scan to name a bad line."""
    parsed = _read_fast(Path(path), str(path))
    return parsed if parsed is not None else _read_lines(Path(path), str(path))


# ---------------------------------------------------------------------------------------------
# Fast path


def _read_fast(path: Path, shown: str) -> Parsed | None:
    """Read with polars; None when the file needs the line-by-line scan."""
    import polars as pl

    # The byte scan (hash, key and line counts) runs beside polars, which releases the GIL.
    with ThreadPoolExecutor(max_workers=1) as pool:
        scan = pool.submit(_scan_bytes, path)
        try:
            schema = _wanted_schema(pl.scan_ndjson(path).collect_schema())
            wide = None if schema is None else pl.read_ndjson(path, schema=schema)
        except (pl.exceptions.PolarsError, OSError):
            wide = None
        try:
            n_colons, n_lines, sha = scan.result()
        except OSError:
            return None
    try:
        if wide is None or _n_values(wide) != n_colons:
            # Every key is followed by a colon, so colons == values read proves no key was
            # dropped (polars ignores keys outside its schema) and none was null. Otherwise
            # infer the schema from the whole file instead of its first lines.
            schema = _wanted_schema(pl.scan_ndjson(path, infer_schema_length=None).collect_schema())
            if schema is None:
                return None
            wide = pl.read_ndjson(path, schema=schema)
    except (pl.exceptions.PolarsError, OSError):
        return None
    if wide.height != n_lines:
        return None  # blank lines: row numbers would not be line numbers
    return _split_wide(wide, shown, sha)


def _scan_bytes(path: Path) -> tuple[int, int, str]:
    """Number of colons and of lines in the raw bytes, and their sha256.

    One pass serves both the dropped-key check and the manifest's hash; single-byte counts
    are memchr-fast where a two-byte pattern is not.
    """
    n_colons = n_lines = 0
    last = b""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            n_colons += block.count(b":")
            n_lines += block.count(b"\n")
            last = block[-1:]
    if last not in (b"", b"\n"):
        n_lines += 1
    return n_colons, n_lines, digest.hexdigest()


def _wanted_schema(inferred: Any) -> dict[str, Any] | None:
    """The schema to read with: run as text, step/tokens Int64, every metric Float64."""
    import polars as pl

    numeric = (pl.Int64, pl.Float64, pl.Null, pl.UInt64)
    schema: dict[str, Any] = {}
    for name, dtype in inferred.items():
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
            fields = []
            for fld in dtype.fields:
                if fld.dtype not in numeric:
                    return None
                fields.append(pl.Field(fld.name, pl.Float64))
            schema[name] = pl.Struct(fields)
        else:
            if dtype not in numeric:
                return None  # strings, lists, objects: the line scan names the line
            schema[name] = pl.Float64
    return schema if RUN in schema else None


def _n_values(wide: pl.DataFrame) -> int:
    """Non-null values read, counting each non-null mixture field as one (keys in the text)."""
    import polars as pl

    counts = wide.select(pl.all().is_not_null().sum()).row(0)
    total = int(sum(counts))
    if MIXTURE in wide.columns:
        fields = wide.get_column(MIXTURE).struct.unnest()
        if fields.width:
            total += int(sum(fields.select(pl.all().is_not_null().sum()).row(0)))
    return total


def _split_wide(wide: pl.DataFrame, shown: str, sha: str) -> Parsed | None:
    """Wide rows -> mixtures and a long observation table; None if a row breaks the format."""
    import polars as pl

    wide = wide.with_row_index("_line", offset=1)
    has_mix = pl.col(MIXTURE).is_not_null() if MIXTURE in wide.columns else pl.lit(False)
    step = pl.col(STEP) if STEP in wide.columns else pl.lit(None, dtype=pl.Int64)
    tokens = pl.col(TOKENS) if TOKENS in wide.columns else pl.lit(None, dtype=pl.Int64)
    bad = wide.select(
        (
            pl.col(RUN).is_null()
            | (has_mix & step.is_not_null())
            | (~has_mix & step.is_null())
            | (step < 0)
            | (tokens < 0)
        ).any()
    ).item()
    if bad:
        return None

    mixtures: dict[str, MixtureRecord] = {}
    if MIXTURE in wide.columns:
        for run, line, weights in wide.filter(has_mix).select(RUN, "_line", MIXTURE).iter_rows():
            given = {d: w for d, w in weights.items() if w is not None}
            if run in mixtures and mixtures[run].weights != given:
                return None  # the line scan reports the two disagreeing lines
            mixtures.setdefault(run, MixtureRecord(given, f"{shown}:{line}"))

    metrics = sorted(c for c in wide.columns if c not in (*_RESERVED, "_line"))
    obs = wide.filter(~has_mix) if MIXTURE in wide.columns else wide
    if not metrics or obs.height == 0:
        return Parsed(shown, JSONL, mixtures, empty_observations(), sha)
    # Sorting the wide rows by integer keys, then a stable sort of the long table by run
    # rank, yields (run, metric, step) order far faster than a three-key string sort.
    obs = obs.select(
        pl.col(RUN).rank("dense").alias("_rank"), RUN, step.alias(STEP), tokens.alias(TOKENS),
        *metrics,
    ).sort(["_rank", STEP])
    long = (
        obs.unpivot(index=["_rank", RUN, STEP, TOKENS], on=metrics,
                    variable_name=METRIC, value_name=VALUE)
        .drop_nulls(VALUE)
        .sort("_rank", maintain_order=True)
        .select(RUN, STEP, TOKENS, METRIC, VALUE)
    )
    return Parsed(shown, JSONL, mixtures, long, sha)


# ---------------------------------------------------------------------------------------------
# Line-by-line scan


def _read_lines(path: Path, shown: str) -> Parsed:
    """Parse line by line with the standard library; raise on the first bad line."""
    import polars as pl

    mixtures: dict[str, MixtureRecord] = {}
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
                _add_mixture(obj, run, where, mixtures)
                continue
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
        return Parsed(shown, JSONL, mixtures, empty_observations(), sha, engine="line-scan")
    obs = pl.DataFrame(
        {RUN: runs, STEP: steps, TOKENS: tokens, METRIC: metrics, VALUE: values},
        schema=observation_schema(),
    ).sort([RUN, METRIC, STEP], maintain_order=True)
    return Parsed(shown, JSONL, mixtures, obs, sha, engine="line-scan")


def _decode(raw: bytes, where: str, *, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text; is this a JSONL log?") from None


def _parse_object(text: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); fix or remove the line"
        ) from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected one JSON object per line, got {type(obj).__name__}")
    return obj


def _add_mixture(obj: dict[str, Any], run: str, where: str, into: dict[str, MixtureRecord]) -> None:
    weights = obj[MIXTURE]
    if not isinstance(weights, dict) or not weights:
        raise InputError(f"{where}: 'mixture' must be a non-empty object {{domain: weight}}")
    if obj.get(STEP) is not None:
        raise InputError(f"{where}: a line has both 'mixture' and 'step'; put the mixture "
                         "on its own line")
    for domain, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(
            weight
        ):
            raise InputError(f"{where}: weight of {domain!r} is not a finite number: {weight!r}")
    given = dict(weights)
    previous = into.get(run)
    if previous is not None and dict(previous.weights) != given:
        raise InputError(
            f"{where}: run {run!r} has a different mixture at {previous.where}; keep one"
        )
    into.setdefault(run, MixtureRecord(given, where))
