"""What the CLI writes outside tables: data on stdout, and the one progress bar on stderr.

stdout carries data only (JSON, exports, `-` outputs); everything meant for a person goes to
stderr through `cli._app`'s consoles.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from regmixd_cli.cli._app import err
from regmixd_cli.domain import ProgressFn
from regmixd_cli.files import dumps_json

STDOUT = "-"  # the path that means standard output



def write_stdout(text: str) -> None:
    """Write data to stdout as-is (no markup, no wrapping) and flush it."""
    sys.stdout.write(text)
    sys.stdout.flush()


def print_json(data: Any) -> None:
    """Write `data` to stdout as canonical JSON (sorted keys, trailing newline)."""
    write_stdout(dumps_json(data))


def _ignore(done: int, total: int) -> None:
    return None


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[ProgressFn]:
    """A transient rich progress bar on stderr; yields the `progress(done, total)` callback.

    A log file or pipe gets no bar at all (rich would leave blank lines in it).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not err.is_terminal:
        yield _ignore
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def is_schedule_file(head: bytes) -> bool:
    """Whether a file is a schedule JSON regmixd wrote (schedule, online or oracle)."""
    from regmixd_cli.domain import SCHEDULE_SCHEMA
    from regmixd_cli.files import json_with

    return json_with("schema_version", lambda v: v == SCHEDULE_SCHEMA)(head)


def is_state_file(head: bytes) -> bool:
    """Whether a file is an `online --follow` state file."""
    from regmixd_cli.files import json_with
    from regmixd_cli.online.state import STATE_SCHEMA

    return json_with("schema_version", lambda v: v == STATE_SCHEMA)(head)


def is_design_file(head: bytes) -> bool:
    """Whether a file is a design (mixtures) file: CSV `run,...` or a JSON object of runs."""
    import json

    if head.startswith(b"run,"):
        return True
    try:
        data = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and all(isinstance(v, dict | list) for v in data.values())


def is_plot_file(head: bytes) -> bool:
    """Whether a file is a figure (PNG or SVG)."""
    return head.startswith(b"\x89PNG") or b"<svg" in head[:4096]
