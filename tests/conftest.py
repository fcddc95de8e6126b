"""Shared fixtures: a CLI runner, the location of the real RegMix data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import Invoker
from tests.helpers.paths import regmix_data_dir


@pytest.fixture
def regmix_data() -> Path:
    """The RegMix data directory, or a visible skip where it is absent."""
    path = regmix_data_dir()
    if not (path / "train_mixture_1m.csv").is_file():
        pytest.skip(f"RegMix data not found at {path} (set REGMIXD_REGMIX_DATA)")
    return path


@pytest.fixture
def cli() -> Invoker:
    """Call as `cli("ingest", path, "--out", store)`; returns a click Result."""
    return Invoker()

