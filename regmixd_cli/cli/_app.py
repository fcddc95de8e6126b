"""The Typer application, its consoles, and the one place errors become exit codes.

Only the `regmixd_cli.cli` package imports typer and rich. Command modules import heavy
libraries (polars, xgboost) inside their functions so `regmixd --help` stays instant.
"""

from __future__ import annotations

import os
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


# stdout carries data only; everything meant for a person goes to stderr.
out = Console(soft_wrap=True, highlight=False, width=_width(sys.stdout))
err = Console(stderr=True, soft_wrap=True, highlight=False, width=_width(sys.stderr))


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    err.print(f"[yellow]Warning:[/yellow] {message}", markup=True, highlight=False)


def info(message: str) -> None:
    """Print one informational line on stderr."""
    err.print(message, markup=False, highlight=False)

# Library parameters (named `like_this` in messages, see errors.param) and their flags.
CLI_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in (
        "step", "loss", "target_steps", "param_ratio", "beta", "prior", "prefix", "to", "out",
        "batch_size", "sequence_length", "mixture_block_size",
    )
}


def in_flags(message: str) -> str:
    """A library message with its parameter names shown as the CLI's flags."""
    for name, flag in CLI_FLAGS.items():
        message = message.replace(f"`{name}`", flag)
    return message


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
            return super().invoke(ctx)
        except RegmixdError as exc:
            err.print(f"Error: {in_flags(str(exc))}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except _USAGE_ERROR as exc:
            # Click prints usage, a hint and a blank line before its message; scripts get the
            # one `Error:` line every command promises, with the way to the help in it.
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            where = exc.ctx.command_path if exc.ctx is not None else "regmixd"
            message = f"Error: {exc.format_message()} (see `{where} --help`)"
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
