"""What the CLI writes outside tables: data on stdout, and the one progress bar on stderr.

stdout carries data only (JSON, exports, `-` outputs); everything meant for a person goes to
stderr through `cli._app`'s consoles.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from regmixd_cli.cli._app import err
from regmixd_cli.files import dumps_json

STDOUT = "-"  # the path that means standard output

ProgressFn = Callable[[int, int], None]


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
