"""Early signal handling for `regmixd online --follow`, imported before anything slow.

A watcher stops cleanly (exit 0, its state and schedule written) on SIGINT/SIGTERM at any
moment, also while typer, xgboost and the model are still loading: the handlers go in when the
`regmixd_cli.cli` package is first imported, and the command takes them over (`EARLY_STOP`).
"""

from __future__ import annotations

import signal
import sys

# Names of the signals caught so far (the follow loop stops when this is non-empty).
EARLY_STOP: list[str] = []


def _record(signum: int, _frame: object) -> None:
    EARLY_STOP.append(signal.Signals(signum).name)


def follow_requested(argv: list[str]) -> bool:
    """Whether the command line is `regmixd online ... --follow ...`."""
    return "online" in argv[1:3] and any(
        a == "--follow" or a.startswith("--follow=") for a in argv)


if follow_requested(sys.argv):
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _record)
