"""Input readers, one module per log format (docs/reference/input-formats.md), and format detection.

`read_inputs` expands the paths the user gave (directories are walked, sorted, hidden files
skipped), decides each file's format by its content, and returns one `Parsed` per file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.files import not_utf8_reason
from regmixd_cli.store.readers.base import (
    CSV,
    FORMATS,
    HF,
    JSONL,
    MIXTURES,
    REGMIX,
    TENSORBOARD,
    WANDB,
    LfsPointerError,
    MixtureRecord,
    Parsed,
    check_not_lfs_pointer,
    read_head,
)
from regmixd_cli.store.readers.csv_log import read_csv
from regmixd_cli.store.readers.hf import read_hf, relative_run_name, run_folder, run_id
from regmixd_cli.store.readers.jsonl import read_jsonl
from regmixd_cli.store.readers.mixtures import read_mixtures
from regmixd_cli.store.readers.regmix import DEFAULT_FINAL_STEP, read_regmix
from regmixd_cli.store.readers.tensorboard import is_event_file, read_tensorboard
from regmixd_cli.store.readers.wandb import read_wandb
from regmixd_cli.store.readers.wandb_runs import NAME_COLUMN, read_wandb_runs
from regmixd_cli.store.spill import Spill

AUTO = "auto"
# Suffixes considered inside a walked directory; other files (READMEs, scripts, checkpoints)
# are not logs. Files named on the command line are always read, whatever their suffix.
LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")
HF_STATE = "trainer_state.json"
TFEVENTS = "events.out.tfevents."
_WALKED_SUFFIXES = LOG_SUFFIXES

__all__ = [
    "AUTO",
    "FORMATS",
    "Inputs",
    "MixtureRecord",
    "Parsed",
    "detect_format",
    "read_csv",
    "read_hf",
    "read_inputs",
    "read_jsonl",
    "read_mixtures",
    "read_regmix",
    "read_wandb",
]


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything read for one ingest: parsed files, and directory files that were skipped."""

    parsed: tuple[Parsed, ...]
    skipped: tuple[str, ...]  # JSON files inside walked directories that are not logs


def detect_format(path: str | Path) -> str:
    """The format of a file, decided from its first bytes; InputError if none fits."""
    shown = str(path)
    if is_event_file(path):
        return TENSORBOARD  # binary: decided by its name, as TensorBoard does
    head = read_head(Path(path))
    check_not_lfs_pointer(shown, head)
    if b"\x00" in head[:4096]:  # UTF-16/32 or binary: no log format has NUL bytes
        raise InputError(f"{shown}: {not_utf8_reason(head)}")
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text:
        raise InputError(f"{shown}: empty file; nothing to ingest")
    if text.startswith("{"):
        return _detect_json(Path(path), text, shown)
    try:
        first_line = text.split("\n", 1)[0].rstrip("\r")
        header = [c.strip() for c in next(csv.reader([first_line]), [])]
    except csv.Error:
        header = []
    if header and header[0] == "index" and len(header) > 1:
        return REGMIX
    if header and header[0] == "Step" and any(" - " in c for c in header[1:]):
        return WANDB
    if header and header[0] == NAME_COLUMN and len(header) > 1:
        return WANDB  # the runs table (one row per run), read by read_wandb_runs
    if header and header[0] == "run" and len(header) > 1:
        return CSV if "step" in header else MIXTURES
    raise InputError(
        f"{shown}: cannot tell the log format from its content (first line "
        f"{text.splitlines()[0][:60]!r}); pass ``format`` {'|'.join(FORMATS)}"
    )


def _detect_json(path: Path, text: str, shown: str) -> str:
    first = text.split("\n", 1)[0].strip()
    try:
        obj = json.loads(first)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict) and "run" in obj:
        return JSONL
    if '"log_history"' in text:
        return HF
    if isinstance(obj, dict) and obj and all(isinstance(v, dict | list) for v in obj.values()):
        return MIXTURES  # a one-line {run: {domain: weight}} (or {run: [phases]})
    if first == "{" or obj is None:
        # A multi-line JSON document: a mixtures file is small enough to parse whole.
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            data = None
        if isinstance(data, dict) and "log_history" in data:
            return HF
        if isinstance(data, dict) and data and all(
            isinstance(v, dict | list) for v in data.values()
        ):
            return MIXTURES
        if data is None and first != "{":
            # Looks like JSONL whose first line is broken: let the JSONL reader name the line.
            return JSONL
    raise InputError(
        f"{shown}: JSON, but neither a JSONL log, a trainer_state.json nor a mixtures file; "
        f"pass ``format`` {'|'.join(FORMATS)}"
    )


def _walk_error(error: OSError) -> None:
    """A subdirectory that cannot be listed is an error, not a silent skip: its runs would
    be missing from the store without a word."""
    reason = error.strerror or error.__class__.__name__
    raise InputError(f"{error.filename}: cannot read this directory ({reason}); fix its "
                     "permissions or leave it out") from None


def _walk(root: Path) -> list[Path]:
    """Log files under `root` (hidden names skipped), sorted; symbolic links to directories
    are not followed (a link loop would never end)."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(root, onerror=_walk_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            path = Path(folder) / name
            if (not name.startswith(".")
                    and (name.lower().endswith(_WALKED_SUFFIXES) or is_event_file(name))
                    and path.is_file()):
                found.append(path)
    return sorted(found)


def _expand(paths: Sequence[str]) -> list[tuple[str, Path, Path | None]]:
    """(shown path, path, the directory walked to find it or None) for every file, in a
    stable order."""
    files: list[tuple[str, Path, Path | None]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = _walk(path)
            if not found:
                raise InputError(f"{given}: directory has no log files "
                                 f"({', '.join(LOG_SUFFIXES)}, {TFEVENTS}*); nothing to ingest")
            # os.walk keeps the prefix the user typed, so str(p) is "given/sub/file".
            files.extend((str(p), p, path) for p in found)
        elif path.is_file():
            files.append((str(given), path, None))
        elif os.path.lexists(path):
            raise InputError(f"{given}: not a regular file or directory; check the path")
        else:
            raise InputError(f"{given}: no such file or directory; check the path")
    return files


def read_file(
    path: str | Path,
    fmt: str = AUTO,
    final_step: int = DEFAULT_FINAL_STEP,
    spill: Spill | None = None,
    root: Path | None = None,
) -> Parsed:
    """Read one file in the given format (`auto`: decided by its content).

    `spill` holds a big JSONL file's rows while it is read (default: memory); `root` is the
    directory walked to find the file (formats that name runs by their directory name them
    relative to it).
    """
    if fmt == AUTO:
        fmt = detect_format(path)
    if fmt == JSONL:
        return read_jsonl(path, spill=spill)
    if fmt == CSV:
        return read_csv(path)
    if fmt == REGMIX:
        return read_regmix(path, final_step)
    if fmt == HF:
        return read_hf(path, root)
    if fmt == TENSORBOARD:
        return read_tensorboard(path, root)
    if fmt == WANDB:
        if _first_cell(path) == NAME_COLUMN:
            return read_wandb_runs(path, final_step)
        return read_wandb(path)
    if fmt == MIXTURES:
        return read_mixtures(path)
    raise UsageError(f"``format`` {fmt!r}: unknown; choose auto, {', '.join(FORMATS)}")


def _first_cell(path: str | Path) -> str:
    """The first header cell of a CSV file ('' if unreadable)."""
    head = read_head(Path(path), 4096).decode("utf-8-sig", errors="replace")
    return head.split("\n", 1)[0].split(",", 1)[0].strip().strip('"')


def read_inputs(
    paths: Sequence[str],
    fmt: str = AUTO,
    mixtures: str | None = None,
    final_step: int = DEFAULT_FINAL_STEP,
    spill: Spill | None = None,
) -> Inputs:
    """Read every file under `paths` (and the `--mixtures` file) into `Parsed` values."""
    if fmt != AUTO and fmt not in FORMATS:
        raise UsageError(f"``format`` {fmt!r}: unknown; choose auto, {', '.join(FORMATS)}")
    if final_step < 0:
        raise UsageError(f"``final_step`` {final_step}: must be >= 0")
    parsed: list[Parsed] = []
    skipped: list[str] = []
    folders: dict[str, tuple[Path, str]] = {}  # run named by its directory -> (it, a file)
    for shown, path, root in _expand(paths):
        walked = root is not None
        file_fmt = fmt
        if walked and fmt == HF and path.name != HF_STATE:
            continue  # an HF output directory also holds configs, tokenizers, weights
        if walked and fmt == TENSORBOARD and not is_event_file(path):
            continue
        if fmt == AUTO:
            try:
                file_fmt = detect_format(shown)
            except LfsPointerError:
                raise
            except InputError:
                if walked and path.suffix.lower() == ".json":
                    skipped.append(shown)  # e.g. config.json next to a trainer_state.json
                    continue
                raise
        elif fmt in (CSV, REGMIX) and detect_format_or_none(shown) == MIXTURES:
            file_fmt = MIXTURES  # a mixtures table next to CSV logs
        if file_fmt == HF:
            _check_run_folder(folders, run_folder(path), run_id(path, root), shown)
        elif file_fmt == TENSORBOARD:
            folder = path.resolve().parent
            _check_run_folder(folders, folder, relative_run_name(folder, root), shown)
        parsed.append(read_file(shown, file_fmt, final_step, spill, root))
    if mixtures is not None:
        if not Path(mixtures).is_file():
            raise InputError(f"{mixtures}: ``mixtures`` file not found; check the path")
        parsed.append(read_mixtures(mixtures))
    return Inputs(tuple(parsed), tuple(skipped))


def _check_run_folder(
    folders: dict[str, tuple[Path, str]], folder: Path, run: str, shown: str
) -> None:
    """Two directories must not give the same run name (their runs would merge)."""
    first = folders.setdefault(run, (folder, shown))
    if first[0] != folder:
        raise InputError(
            f"{shown}: run {run!r} is also the name of the run in {first[1]} (another "
            "directory); runs are named by their directory relative to the directory given, "
            "so give their common parent directory instead of the files"
        )


def detect_format_or_none(path: str | Path) -> str | None:
    """`detect_format`, or None where no format fits."""
    try:
        return detect_format(path)
    except InputError:
        return None

