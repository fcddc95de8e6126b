"""Fixtures for the command-level tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import SAMPLE_FIT, Invoker
from tests.helpers.paths import PROXY_LOGS
from tests.helpers.targets import FAST, write_logs


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A store of the sample logs, a small 2-switch-point model and a schedule from it.

    Built through the CLI on the real sample logs (not the tiny synthetic model of
    tests/conftest.py): the error messages checked against it name the sample's domains and
    its step range (it ends at step 1000).
    """
    cli = Invoker()
    root = tmp_path_factory.mktemp("review")
    store, model, schedule = root / "store", root / "model", root / "schedule.json"
    result = cli("ingest", PROXY_LOGS, "--out", store)
    assert result.exit_code == 0, result.output
    result = cli("fit", store, "--out", model, "--switch-points", "2", *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    result = cli("schedule", model, "--out", schedule, "--candidates", "500")
    assert result.exit_code == 0, result.output
    return store, model, schedule


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A store of three validation metrics, and models of several targets fitted on it through
    the CLI (tests/cli/test_targets*.py)."""
    cli = Invoker()
    root = tmp_path_factory.mktemp("targets")
    write_logs(root / "logs.jsonl")
    store = root / "store"
    assert cli("ingest", root / "logs.jsonl", "--out", store).exit_code == 0
    models = {}
    for name, args in {
        "mean": ("--target", "val/a=2", "--target", "val/b"),
        "glob": ("--target", "val/*"),
        "worst": ("--target", "val/*", "--objective", "worst"),
        "single": ("--target", "val/a"),
    }.items():
        models[name] = root / name
        result = cli("fit", store, "--out", models[name], *FAST, *args)
        assert result.exit_code == 0, result.output
    return root, store, models
