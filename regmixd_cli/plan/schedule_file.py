"""Schedule JSON v1: to and from dicts and files, and the shipped JSON Schema.

See docs/reference/file-formats.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regmixd_cli.domain import METHODS, SCHEDULE_SCHEMA, Schedule, Stage
from regmixd_cli.errors import InputError
from regmixd_cli.files import dumps_json, read_json, write_json

SCHEMA_FILE = "schedule-v1.json"


def schedule_json(schedule: Schedule) -> str:
    """The schedule as canonical JSON text (byte-stable for the same schedule)."""
    return dumps_json(schedule_to_dict(schedule))


def write_schedule(path: Path, schedule: Schedule) -> None:
    """Write a schedule atomically as canonical JSON."""
    write_json(Path(path), schedule_to_dict(schedule))


def read_schedule(path: Path) -> Schedule:
    """Read and check a schedule file; a wrong schema version or structure is an InputError."""
    path = Path(path)
    return schedule_from_dict(read_json(path, "schedule file"), str(path))


def schedule_schema_path() -> Path:
    """The JSON Schema of schedule v1 that ships inside the package."""
    from importlib.resources import files

    return Path(str(files("regmixd_cli") / "schemas" / SCHEMA_FILE))


# Stage weights read back from a file must sum to 1 within this (files are written exact).
SUM_TOLERANCE = 1e-6


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """The schedule as the JSON v1 document (write it with `regmixd_cli.files.write_json`)."""
    return {
        "schema_version": SCHEDULE_SCHEMA,
        "method": schedule.method,
        "domains": list(schedule.domains),
        "target_steps": schedule.target_steps,
        "stages": [
            {
                "start_step": s.start_step,
                "end_step": s.end_step,
                "start_fraction": s.start_fraction,
                "end_fraction": s.end_fraction,
                "weights": schedule.weights_of(s),
                "predicted_loss": s.predicted_loss,
            }
            | (
                {}
                if s.predicted_loss_interval is None
                else {"predicted_loss_interval": list(s.predicted_loss_interval)}
            )
            | ({} if s.predicted_losses is None else {"predicted_losses": dict(s.predicted_losses)})
            for s in schedule.stages
        ],
        "provenance": dict(schedule.provenance),
    }


def schedule_from_dict(data: Any, where: str) -> Schedule:
    """Parse and check a schedule JSON document; every problem is an InputError naming `where`."""
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(
            f"{where}: not a schedule JSON (no schema_version {SCHEDULE_SCHEMA!r}); give a file "
            "written by `regmixd schedule`"
        )
    version = data.get("schema_version")
    if version != SCHEDULE_SCHEMA:
        raise InputError(
            f"{where}: schedule schema {version!r} is not {SCHEDULE_SCHEMA!r}; "
            "regenerate it with this version of `regmixd schedule`"
        )
    missing = [k for k in ("method", "domains", "target_steps", "stages") if k not in data]
    if missing:
        raise InputError(f"{where}: schedule lacks {', '.join(missing)}; regenerate it")
    method = data["method"]
    if method not in METHODS:
        raise InputError(
            f"{where}: unknown method {method!r}; expected one of {', '.join(METHODS)}"
        )
    domains = data["domains"]
    if (
        not isinstance(domains, list)
        or not domains
        or not all(isinstance(d, str) and d for d in domains)
        or len(set(domains)) != len(domains)
    ):
        raise InputError(f"{where}: `domains` must be a non-empty list of distinct names")
    steps = data["target_steps"]
    if not _is_int(steps) or steps < 1:
        raise InputError(f"{where}: `target_steps` must be a positive integer, got {steps!r}")
    raw_stages = data["stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise InputError(f"{where}: `stages` must be a non-empty list")
    provenance = data.get("provenance", {})
    if not isinstance(provenance, dict):
        raise InputError(f"{where}: `provenance` must be an object")
    stages = []
    expected_start = 0
    for i, raw in enumerate(raw_stages):
        stage = _stage_from_dict(raw, domains, f"{where}: stage {i}")
        if stage.start_step != expected_start or stage.end_step <= stage.start_step:
            raise InputError(
                f"{where}: stage {i} covers [{stage.start_step}, {stage.end_step}); stages must be "
                f"non-empty, contiguous and start at {expected_start}"
            )
        expected_start = stage.end_step
        stages.append(stage)
    if expected_start != steps:
        raise InputError(f"{where}: stages end at step {expected_start}, not target_steps {steps}")
    return Schedule(method, tuple(domains), int(steps), tuple(stages), provenance)


def _stage_from_dict(raw: Any, domains: Sequence[str], where: str) -> Stage:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: must be an object")
    for key in ("start_step", "end_step"):
        if not _is_int(raw.get(key)):
            raise InputError(f"{where}: `{key}` must be an integer")
    for key in ("start_fraction", "end_fraction"):
        if not _is_number(raw.get(key)):
            raise InputError(f"{where}: `{key}` must be a number")
    loss = raw.get("predicted_loss")
    if loss is not None and not _is_number(loss):
        raise InputError(f"{where}: `predicted_loss` must be a number or null")
    weights = raw.get("weights")
    if not isinstance(weights, Mapping) or set(weights) != set(domains):
        raise InputError(f"{where}: `weights` must give exactly the schedule's domains")
    values = [weights[d] for d in domains]
    if not all(_is_number(w) and 0 <= w <= 1 for w in values):
        raise InputError(f"{where}: weights must be numbers in [0, 1]")
    if abs(math.fsum(values) - 1.0) > SUM_TOLERANCE:
        raise InputError(f"{where}: weights sum to {math.fsum(values):.8g}, not 1")
    return Stage(
        start_step=int(raw["start_step"]),
        end_step=int(raw["end_step"]),
        start_fraction=float(raw["start_fraction"]),
        end_fraction=float(raw["end_fraction"]),
        weights=tuple(float(w) for w in values),
        predicted_loss=None if loss is None else float(loss),
        predicted_loss_interval=_interval_from(raw.get("predicted_loss_interval"), where),
        predicted_losses=_losses_from(raw.get("predicted_losses"), where),
    )


def _losses_from(raw: Any, where: str) -> tuple[tuple[str, float], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw or not all(_is_number(v) for v in raw.values()):
        raise InputError(f"{where}: `predicted_losses` must be an object {{metric: loss}}")
    return tuple((str(k), float(v)) for k, v in raw.items())


def _interval_from(raw: Any, where: str) -> tuple[float, float, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 3 or not all(_is_number(v) for v in raw):
        raise InputError(f"{where}: `predicted_loss_interval` must be [p10, p50, p90]")
    return (float(raw[0]), float(raw[1]), float(raw[2]))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
