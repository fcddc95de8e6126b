"""Read one mixture, or a schedule, for `regmixd predict` and `regmixd compare`.

A mixture file is JSON `{domain: weight}`, a RegMix-style YAML config (its `train:` section of
`train_the_pile_<domain>: weight` lines, or flat `domain: weight` lines), or a one-row CSV
(`run,<domain>...` or `<domain>...`). JSON with a `schema_version` is a schedule.
The YAML subset is parsed here by hand (no YAML dependency): `key: value` lines, `#` comments,
one level of nesting, plain or quoted scalars. Domain names are normalised as ingest does.
See docs/reference/file-formats.md.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from regmixd_cli.domain import Schedule
from regmixd_cli.errors import InputError
from regmixd_cli.plan.schedule_file import schedule_from_dict
from regmixd_cli.store.readers.base import normalise_domain, read_text

RUN_COLUMNS = ("run", "index")
# The RegMix YAML section that holds the training mixture (others: valid, model_name, ...).
TRAIN_SECTION = "train"


def read_plan_file(path: Path) -> Schedule | dict[str, Any]:
    """A schedule (JSON with `schema_version`) or a raw `{domain: weight}` mapping."""
    path = Path(path)
    shown = str(path)
    text = read_text(path)
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"{shown}: empty file; expected a schedule JSON or a mixture")
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{shown}:{exc.lineno}: malformed JSON ({exc.msg}); fix the file") \
                from None
        if isinstance(data, dict) and "schema_version" in data:
            return schedule_from_dict(data, shown)
        if not isinstance(data, dict) or not data:
            raise InputError(f"{shown}: a mixture JSON is a non-empty object {{domain: weight}}")
        return _named({str(k): v for k, v in data.items()}, shown)
    if _looks_like_yaml(text):
        return _named(parse_yaml_mixture(text, shown), shown)
    return _named(parse_csv_mixture(text, shown), shown)


def _named(weights: dict[str, Any], shown: str) -> dict[str, Any]:
    """Normalise domain names (`train_the_pile_pile_cc` -> `pile_cc`); collisions are errors."""
    result: dict[str, Any] = {}
    for key, value in weights.items():
        name = normalise_domain(key)
        if name in result:
            raise InputError(f"{shown}: domain {name!r} is given twice; keep one")
        result[name] = value
    return result


def _looks_like_yaml(text: str) -> bool:
    """The first meaningful line is `key: ...` (a CSV header has commas and no colon)."""
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip()
        if body:
            return ":" in body and "," not in body
    return False


def _scalar(raw: str, where: str) -> float | None:
    """A YAML scalar as a number (None for an empty value, which opens a section)."""
    value = raw.strip()
    if not value:
        return None
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{where}: {raw.strip()!r} is not a number") from None


def parse_yaml_mixture(text: str, shown: str) -> dict[str, float]:
    """The `key: number` subset of YAML; uses the `train:` section when there is one."""
    top: dict[str, float] = {}
    sections: dict[str, dict[str, float]] = {}
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{shown}:{number}"
        body = line.split("#", 1)[0].rstrip()
        if not body.strip() or body.strip() in ("---", "..."):
            continue
        if ":" not in body:
            raise InputError(f"{where}: expected `domain: weight`, got {body.strip()!r}")
        key, _, raw = body.partition(":")
        name = key.strip().strip("'\"")
        nested = line[: len(line) - len(line.lstrip())] != ""
        if nested:
            if current is None:
                raise InputError(f"{where}: indented line outside a section")
            # Only `train:` must hold numbers; other sections (valid:, ...) are skipped over.
            value = _scalar(raw, where) if current == TRAIN_SECTION else _try(raw)
            if value is not None:
                sections[current][name] = value
            continue
        if raw.strip():
            current = None
            value = _try(raw)
            if value is not None:  # e.g. `model_name: tinyllama_1_1b` is not a weight
                top[name] = value
        else:
            current = name
            sections.setdefault(name, {})
    if TRAIN_SECTION in sections:
        weights = sections[TRAIN_SECTION]
    elif top and not sections:
        weights = top
    else:
        raise InputError(
            f"{shown}: no mixture found; expected `domain: weight` lines or a `train:` section"
        )
    if not weights:
        raise InputError(f"{shown}: the mixture names no domains")
    return weights


def _try(raw: str) -> float | None:
    """A scalar if it is a number, else None (non-weight keys of a RegMix config)."""
    try:
        return _scalar(raw, "")
    except InputError:
        return None


def parse_csv_mixture(text: str, shown: str) -> dict[str, Any]:
    """A header `[run,]<domain>...` and exactly one row of weights."""
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if len(rows) != 2:
        raise InputError(
            f"{shown}: a mixture CSV has a header and exactly one row of weights, found "
            f"{max(0, len(rows) - 1)} row(s); give one mixture per file"
        )
    header, values = [h.strip() for h in rows[0]], rows[1]
    if len(values) != len(header):
        raise InputError(f"{shown}:2: {len(values)} cells for {len(header)} columns")
    if header and header[0].lower() in RUN_COLUMNS:
        header, values = header[1:], values[1:]
    if not header:
        raise InputError(f"{shown}:1: no domain columns; expected [run,]<domain>...")
    weights: dict[str, Any] = {}
    for name, cell in zip(header, values, strict=True):
        if name in weights:
            raise InputError(f"{shown}:1: column {name!r} appears twice; keep one")
        try:
            weights[name] = float(cell)
        except ValueError:
            raise InputError(f"{shown}:2: weight of {name!r} is not a number: {cell!r}") from None
    return weights
