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


# Fit options that keep a fit of the sample proxy logs quick (the `fitted` fixture's).
SAMPLE_FIT = ("--max-rounds", "20", "--folds", "3")


def fails(result, code: int, *names: object) -> None:
    """`result` exited with `code` and one `Error:` line, the last, naming each of `names`."""
    assert result.exit_code == code, result.output
    # One `Error:` line, the last (`run` reports its finished steps first).
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    for name in names:
        assert str(name) in errors[0], result.stderr


def make_dir(path):
    """Create the directory `path` and return it."""
    path.mkdir()
    return path
