"""Writing an export: one file, or a directory of launch files marked by its manifest.

An existing path is replaced only when it is an earlier regmixd export (a one-file export,
or a directory holding MANIFEST); the schedule itself is never an output.
"""

from __future__ import annotations

import json
from pathlib import Path

from regmixd_cli.errors import InputError, UsageError, param
from regmixd_cli.files import (
    atomic_dir,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    read_head,
)
from regmixd_cli.plan.export.common import MANIFEST_FORMAT


def check_export_out(out: Path | None, schedule_file: Path, directory: bool) -> None:
    """Refuse, before any work, an --out that is the input or a path regmixd did not write."""
    from regmixd_cli.plan.export import MANIFEST

    if out is None:
        return
    source = schedule_file.resolve()
    if out.resolve() == source or (directory and out.resolve() in source.parents):
        raise UsageError(f"{param('out')} {out} would overwrite the schedule {schedule_file}; "
                         "choose another path")
    if directory:
        check_output_dir(out)
        if out.is_dir() and any(out.iterdir()):
            marker = out / MANIFEST
            if not (marker.is_file() and is_export_manifest(_text(read_head(marker)))):
                raise InputError(f"{out}: a directory that `regmixd export` did not write; "
                                 f"choose another {param('out')} (or an empty directory)")
        return
    check_output_file(out)
    if out.exists() and not is_export_file(_text(read_head(out))):
        raise InputError(
            f"{out}: exists and is not a regmixd export; choose another {param('out')}"
        )



def write_export(out: Path, files: dict[str, str], directory: bool) -> None:
    """Write one file, or a directory of files, atomically."""
    if not directory:
        atomic_write_text(out, next(iter(files.values())))
        return
    with atomic_dir(out) as tmp:
        for name, text in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if name.endswith(".sh"):
                path.chmod(path.stat().st_mode | 0o111)


def is_export_file(text: str) -> bool:
    """Whether a file's text is a one-file regmixd export (which a new export may replace)."""
    if text.startswith(("# regmixd ", "stage,start_step,end_step,")):
        return True
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith("regmixd.export.")


def is_export_manifest(text: str) -> bool:
    """Whether MANIFEST text marks a directory written by `regmixd export`."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT


def _text(head: bytes) -> str:
    return head.decode("utf-8", errors="replace")
