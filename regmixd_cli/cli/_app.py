"""The Typer application, its consoles, and the one place errors become exit codes.

Only the `regmixd_cli.cli` package imports typer and rich. Command modules import heavy
libraries (polars, xgboost) inside their functions so `regmixd --help` stays instant.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from typer.core import TyperGroup

from regmixd_cli._version import __version__
from regmixd_cli.errors import RegmixdError


def _width(stream: TextIO) -> int | None:
    """Rich's width, except 160 columns for files and pipes (rich would assume 80 and cut
    the cross-validation tables); $COLUMNS still wins."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


class _Console(Console):
    """A rich console whose closed pipe raises BrokenPipeError (rich would exit 1); the
    error boundary turns it into a quiet exit 0."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(32, "Broken pipe")


class _StderrConsole(Console):
    """The console for people: a closed pipe silences it and the command goes on.

    What goes to stderr (tables, progress, warnings) is not the command's product, so a
    reader of stderr that went away (`regmixd fit ... 2>&1 | head`) must not stop a fit or
    an export half-way; the exit code still says how the command ended.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        with contextlib.suppress(OSError, ValueError):  # later writes (warnings) go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stderr.fileno())


# stdout carries data only; everything meant for a person goes to stderr.
out = _Console(soft_wrap=True, highlight=False, width=_width(sys.stdout))
err = _StderrConsole(stderr=True, soft_wrap=True, highlight=False, width=_width(sys.stderr))


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    err.print("[yellow]Warning:[/yellow] ", markup=True, highlight=False, end="")
    err.print(one_line(in_flags(message)), markup=False, highlight=False)


def info(message: str) -> None:
    """Print one informational line on stderr."""
    err.print(in_flags(message), markup=False, highlight=False)


# A library parameter as messages name it (errors.param): ``name`` in double backticks.
_PARAMETER = re.compile(r"``([a-z][a-z0-9_]*)``")


def in_flags(message: str) -> str:
    """A library message with its parameter names shown as the CLI's flags."""
    return _PARAMETER.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)


# File-system conditions the user can fix; each becomes one `Error:` line and exit 3.
_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.EFBIG: ("file too large (the file system's or this process's file-size limit, "
                  "`ulimit -f`); raise the limit or choose another path"),
    errno.EACCES: "permission denied; check the permissions or choose another path",
    errno.EPERM: "operation not permitted; check the permissions or choose another path",
    errno.EROFS: "read-only file system; choose a writable path",
    errno.ENAMETOOLONG: "file name too long; choose a shorter name",
    errno.EISDIR: "is a directory; give a file path",
    errno.ENOTDIR: "a part of the path is not a directory; check the path",
    errno.ENOENT: "no such file or directory; check the path",
    errno.EEXIST: "already exists; choose another path",
    errno.ENOTEMPTY: "directory not empty; choose another path",
    errno.EMLINK: "too many links; choose another path",
    errno.ELOOP: "too many levels of symbolic links; check the path",
    errno.EIO: "input/output error; check the disk",
    errno.EXDEV: "cannot move across file systems; choose a path on the same file system",
    errno.EBUSY: "device or resource busy; choose another path",
}
# Longest message shown whole: a huge field echoed by an error would flood the terminal.
_MESSAGE_MAX = 600


def os_error_message(exc: OSError) -> str | None:
    """`PATH: what went wrong; what to do` for a file-system error, None for other errors."""
    reason = _OS_ERRORS.get(exc.errno) if exc.errno is not None else None
    if reason is None:
        return None
    path = exc.filename if exc.filename is not None else exc.filename2
    return f"{path}: {reason}" if path is not None else reason[:1].upper() + reason[1:]


def one_line(message: str) -> str:
    """A message as one bounded line: control characters escaped, the middle of a very long
    message cut (the start names the file, the end says what to do)."""
    if any(ord(c) < 32 or c == "\x7f" for c in message):
        message = "".join(
            c if ord(c) >= 32 and c != "\x7f" else c.encode("unicode_escape").decode("ascii")
            for c in message
        )
    if len(message) > _MESSAGE_MAX:
        cut = len(message) - _MESSAGE_MAX
        message = f"{message[:400]} ...[{cut} characters cut]... {message[-200:]}"
    return message


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# Click's UsageError, found through typer's public BadParameter (typer vendors its own Click).
_USAGE_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

# `regmixd --help` lists commands in pipeline order rather than registration order.
COMMAND_ORDER = (
    "run", "ingest", "fit", "evaluate", "schedule", "online", "export", "show", "compare",
    "predict", "simulate", "design",
)  # fmt: skip


class _Group(TyperGroup):
    """Maps every RegmixdError to `Error: ...` on stderr and its exit code.

    The codes are listed in docs/reference/exit-codes.md.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda n: (rank.get(n, len(rank)), n))

    def invoke(self, ctx: Any) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
            return result
        except RegmixdError as exc:
            err.print(f"Error: {one_line(in_flags(str(exc)))}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # The reader of stdout went away (`regmixd show ... | head`): stop quietly, exit 0,
            # as `grep`/`rg` do; nothing more can be written there.
            _silence_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            message = os_error_message(exc)
            if message is None:
                raise  # not a condition of the file system the user can fix: a bug
            err.print(f"Error: {one_line(message)}", markup=False, highlight=False)
            raise typer.Exit(3) from None
        except _USAGE_ERROR as exc:
            # Click prints usage, a hint and a blank line before its message; scripts get the
            # one `Error:` line every command promises, with the way to the help in it.
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            where = exc.ctx.command_path if exc.ctx is not None else "regmixd"
            message = f"Error: {one_line(exc.format_message())} (see `{where} --help`)"
            err.print(message, markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="regmixd",
    help="Data-mixture schedules for LLM pretraining from proxy-run trajectories (RegMix-D).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        print(f"regmixd {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Data-mixture schedules for LLM pretraining from proxy-run trajectories (RegMix-D).

    Pipeline: ingest logs -> fit regressors -> schedule mixtures (or steer a live run online).
    """
