"""Running the CLI in-process, for fixtures and tests alike."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from regmixd_cli.cli import app


class Invoker:
    """Runs the CLI in-process; stdout and stderr are kept apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | os.PathLike[str], input: str | None = None):  # noqa: A002
        return self.runner.invoke(app, [str(a) for a in args], input=input)
