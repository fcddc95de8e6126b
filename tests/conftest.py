"""Shared fixtures: a CLI runner and the location of the real RegMix data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regmixd_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = ROOT / "sample_logs"


def regmix_data_dir() -> Path:
    """Where the RegMix CSVs live: $REGMIXD_REGMIX_DATA or ../shared/external/regmix/data."""
    env = os.environ.get("REGMIXD_REGMIX_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "external" / "regmix" / "data"


@pytest.fixture
def regmix_data() -> Path:
    """The RegMix data directory, or a visible skip where it is absent."""
    path = regmix_data_dir()
    if not (path / "train_mixture_1m.csv").is_file():
        pytest.skip(f"RegMix data not found at {path} (set REGMIXD_REGMIX_DATA)")
    return path


class Invoker:
    """Runs the CLI in-process; stdout and stderr are kept apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | os.PathLike[str], input: str | None = None):  # noqa: A002
        return self.runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture
def cli() -> Invoker:
    """Call as `cli("ingest", path, "--out", store)`; returns a click Result."""
    return Invoker()
