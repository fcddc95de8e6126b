"""Read and write schedule JSON v1 files (docs/reference/file-formats.md) and locate the shipped JSON Schema."""

from __future__ import annotations

from pathlib import Path

from regmixd_cli.files import dumps_json, read_json, write_json
from regmixd_cli.plan.schedule import Schedule, schedule_from_dict, schedule_to_dict

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
