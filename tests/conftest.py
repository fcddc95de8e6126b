"""Shared fixtures: a CLI runner, the location of the real RegMix data, one tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import Invoker
from tests.helpers.online_world import fit_tiny_model
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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny real model of tests.helpers.online_world, fitted once per session.

    Three switch points (grid 150, 300, 450, 600 proxy steps) on `build_store()`: the model
    seven modules used to fit each for themselves. Shared by all of them, so treat it as
    read-only (copy it before changing anything, as test_fuzz.py does).
    """
    return fit_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
