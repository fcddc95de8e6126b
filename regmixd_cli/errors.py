"""The project's exceptions; cli maps each to an exit code (docs/reference/exit-codes.md)."""

from __future__ import annotations


class RegmixdError(Exception):
    """A failure the user can act on; the message is shown as one `Error:` line."""

    exit_code = 1


class UsageError(RegmixdError, ValueError):
    """The command line asks for something that does not make sense."""

    exit_code = 2


class InputError(RegmixdError, ValueError):
    """An input file is unreadable, malformed or inconsistent."""

    exit_code = 3


class ModelError(RegmixdError):
    """A model directory is missing, corrupt, or does not fit the request."""

    exit_code = 4


class InfeasibleError(RegmixdError):
    """No mixture satisfies the constraints of the request."""

    exit_code = 5


def param(name: str) -> str:
    """How a message names a parameter of the library's API: ``name`` in double backticks.

    The CLI shows it as the matching flag (``target_steps`` -> --target-steps), so one message
    reads right both in Python and on the command line (cli/_app.py, in_flags). Single
    backticks stay what they are elsewhere: names of fields and columns in files.
    """
    return f"``{name}``"
