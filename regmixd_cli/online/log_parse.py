"""Parsing training logs for `regmixd online --follow`: pure functions over text.

A log is read by byte offset; `parse_chunk` takes the bytes appended since the last read and
consumes only complete lines (up to the last newline), so a half-written last line waits for
the next read. Complete lines that do not parse are skipped with a warning, never fatal.
A Hugging Face `trainer_state.json` is rewritten in place, so it is parsed whole each time it
changes (`parse_trainer_state`). `online/follow.py` tails the file with these.
"""


from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regmixd_cli.errors import InputError, UsageError

LOG_FORMATS = ("auto", "jsonl", "csv", "hf")
_RESERVED = frozenset({"run", "step", "tokens"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One evaluation of the followed metric: the step and the value, and where it was read."""

    step: int
    value: float
    where: str


@dataclass(frozen=True, slots=True)
class LogCursor:
    """How far a line-based log has been read, and what was learnt on the way."""

    offset: int = 0  # bytes consumed (always just after a newline)
    line: int = 0  # lines consumed
    header: tuple[str, ...] | None = None  # CSV only
    run: str | None = None  # the followed run (the first one seen unless --run)


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one read of a line-based log produced."""

    observations: tuple[Observation, ...]
    cursor: LogCursor
    warnings: tuple[str, ...]
    other_runs: frozenset[str]
    metrics_seen: frozenset[str]
    records: int = 0  # complete lines of the followed run that carry a step (with or without
    # the metric): how much evidence there is that a missing metric is misnamed


def detect_log_format(path: Path, fmt: str = "auto") -> str:
    """The log format: `fmt` unless auto; else by name (.csv, *.json -> hf, otherwise jsonl)."""
    if fmt not in LOG_FORMATS:
        raise UsageError(f"``format`` {fmt!r}: choose one of {', '.join(LOG_FORMATS)}")
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return "hf"
    return "jsonl"


def metric_keys(metric: str) -> tuple[str, ...]:
    """Keys that name `metric` in a log: itself, then the HF forms eval_<m>_loss and eval_<m>."""
    return (metric, f"eval_{metric}_loss", f"eval_{metric}")


def parse_chunk(data: bytes, cursor: LogCursor, *, fmt: str, metric: str, name: str) -> Chunk:
    """Parse the complete lines of `data` (log bytes from `cursor.offset` on).

    `fmt` is "jsonl" or "csv" (long `run,step,metric,value` or wide `[run,]step,<metric>...`).
    A CSV header without the metric is an InputError (the user named the wrong metric).
    """
    end = data.rfind(b"\n") + 1
    observations: list[Observation] = []
    warnings: list[str] = []
    other_runs: set[str] = set()
    metrics_seen: set[str] = set()
    records = 0
    header, run, line_no = cursor.header, cursor.run, cursor.line
    keys = metric_keys(metric)
    for raw in data[:end].split(b"\n")[:-1]:
        line_no += 1
        where = f"{name}:{line_no}"
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            warnings.append(f"{where}: not UTF-8 text; line skipped")
            continue
        if not text:
            continue
        if fmt == "jsonl":
            record = _jsonl_record(text, where, warnings)
        elif header is None:
            header = _csv_header(text, keys, name)
            continue
        else:
            record = _csv_record(text, header, where, warnings)
        if record is None:
            continue
        row_run = record.get("run")
        if row_run is not None:
            row_run = str(row_run)
            if run is None:
                run = row_run
            elif row_run != run:
                other_runs.add(row_run)
                continue
        if "step" not in record:  # e.g. a mixture line
            continue
        records += 1
        metrics_seen.update(k for k in record if k not in _RESERVED)
        key = next((k for k in keys if record.get(k) not in (None, "")), None)
        if key is None:  # a line without this metric (e.g. a training-loss line)
            continue
        obs = _observation(record["step"], record[key], where, warnings)
        if obs is not None:
            observations.append(obs)
    new_cursor = LogCursor(cursor.offset + end, line_no, header, run)
    return Chunk(
        tuple(observations),
        new_cursor,
        tuple(warnings),
        frozenset(other_runs),
        frozenset(metrics_seen),
        records,
    )


def trainer_state_key(metric: str, keys_present: set[str]) -> str | None:
    """The one log_history key that holds `metric`, of those present in the file.

    The metric may be the raw key (`loss`, `eval_g0_loss`), the name ingest gives it
    (`train/loss`, `eval/loss`, `eval/g0`), or a short name (`g0` for `eval_g0_loss`). One key
    is chosen per file, so `--metric loss` never mixes the training `loss` with `eval_loss`.
    """
    from regmixd_cli.store.readers.hf import metric_name

    if metric in keys_present:
        return metric
    named = sorted(k for k in keys_present if metric_name(k) == metric)
    if named:
        return named[0]
    return next((k for k in metric_keys(metric)[1:] if k in keys_present), None)


def parse_trainer_state(
    text: str, metric: str, name: str, seen: set[str] | None = None
) -> tuple[Observation, ...] | None:
    """Evaluations of `metric` in a trainer_state.json's log_history; None if not (yet) valid.

    `seen` collects the loss metrics the file holds, as ingest names them (for messages).
    """
    from regmixd_cli.store.readers.hf import metric_name

    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # half-written, or not JSON at all
        return None
    history = data.get("log_history") if isinstance(data, dict) else None
    if not isinstance(history, list):
        return None
    present = {k for e in history if isinstance(e, dict) and "step" in e for k in e}
    if seen is not None:
        seen.update(m for m in map(metric_name, present) if m is not None)
    key = trainer_state_key(metric, present - _RESERVED)
    observations: list[Observation] = []
    ignored: list[str] = []
    for i, entry in enumerate(history):
        if key is None or not isinstance(entry, dict) or "step" not in entry:
            continue
        if entry.get(key) is None:
            continue
        obs = _observation(entry["step"], entry[key], f"{name}: log_history[{i}]", ignored)
        if obs is not None:
            observations.append(obs)
    return tuple(observations)


def _jsonl_record(text: str, where: str, warnings: list[str]) -> Mapping[str, Any] | None:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        warnings.append(f"{where}: malformed JSON ({exc.msg}); line skipped")
        return None
    except (ValueError, RecursionError):  # huge integers, deep nesting
        warnings.append(f"{where}: malformed JSON; line skipped")
        return None
    if not isinstance(record, dict):
        warnings.append(f"{where}: not a JSON object; line skipped")
        return None
    return record


def _csv_header(text: str, keys: tuple[str, ...], name: str) -> tuple[str, ...]:
    try:
        header = tuple(c.strip() for c in next(csv.reader([text])))
    except csv.Error as exc:
        raise InputError(f"{name}:1: unreadable CSV header ({exc}); is this a CSV log?") from None
    if "step" not in header:
        raise InputError(f"{name}:1: CSV header has no 'step' column; columns are {text}")
    long = {"metric", "value"} <= set(header)
    if not long and not any(k in header for k in keys):
        raise InputError(
            f"{name}:1: CSV header has no column for metric {keys[0]!r}; columns are {text}; "
            "give the right ``metric``"
        )
    return header


def _csv_record(
    text: str, header: tuple[str, ...], where: str, warnings: list[str]
) -> Mapping[str, Any] | None:
    try:
        cells = next(csv.reader([text]))
    except csv.Error as exc:
        warnings.append(f"{where}: unreadable CSV ({exc}); line skipped")
        return None
    if len(cells) != len(header):
        warnings.append(f"{where}: {len(cells)} fields, the header has {len(header)}; line skipped")
        return None
    row = dict(zip(header, (c.strip() for c in cells), strict=True))
    if {"metric", "value"} <= set(header):  # long form: one metric per row
        record: dict[str, Any] = {"step": row["step"], row["metric"]: row["value"]}
        if "run" in row:
            record["run"] = row["run"]
        return record
    return row


def _observation(step: Any, value: Any, where: str, warnings: list[str]) -> Observation | None:
    try:
        step_f = float(step)
        value_f = float(value)
    except (TypeError, ValueError, OverflowError):
        warnings.append(
            f"{where}: step {step!r:.40} or value {value!r:.40} is not a number; skipped"
        )
        return None
    if isinstance(step, bool) or isinstance(value, bool):
        warnings.append(f"{where}: step or value is a boolean; skipped")
        return None
    if not math.isfinite(step_f) or step_f < 0 or step_f != int(step_f):
        warnings.append(f"{where}: step {step!r} is not a whole number >= 0; skipped")
        return None
    if not math.isfinite(value_f):
        warnings.append(f"{where}: value {value!r} is not finite (diverged?); skipped")
        return None
    if value_f <= 0:  # a loss is positive; the model's log-loss features need it
        warnings.append(f"{where}: value {value!r} is not a positive loss; skipped")
        return None
    if step_f > 2**62:
        warnings.append(f"{where}: step {step!r:.40} is implausibly large; skipped")
        return None
    return Observation(int(step_f), value_f, where)
