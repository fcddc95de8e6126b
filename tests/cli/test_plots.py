"""`--plot` on show, compare and fit: files of the requested format, and the missing-extra error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers.online_world import TARGET, build_store, fit_tiny_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Path:
    """The session's tiny model (tests/conftest.py), fitted once for every module."""
    return tiny_model


@pytest.fixture(scope="module")
def schedule(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.cli import Invoker

    path = tmp_path_factory.mktemp("plots") / "schedule.json"
    result = Invoker()("schedule", model, "--out", path, "--candidates", "500", "--top-k", "8",
                         "--force-dynamic")
    assert result.exit_code == 0, result.output
    return path


def _is_svg(data: bytes) -> bool:
    text = data.decode("utf-8")
    return text.lstrip().startswith("<?xml") and "<svg" in text and text.rstrip().endswith(
        "</svg>"
    )


def _check(path: Path) -> bytes:
    data = path.read_bytes()
    assert len(data) > 1000
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    else:
        assert _is_svg(data)
    return data


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_show_schedule_plot(cli, schedule, tmp_path, suffix):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"schedule{suffix}"
    result = cli("show", schedule, "--plot", path)
    assert result.exit_code == 0, result.output
    assert "regmix-d-offline" in result.stdout  # the table is still printed
    _check(path)


def test_svg_is_byte_stable(cli, schedule, tmp_path):
    pytest.importorskip("matplotlib")
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    for path in (a, b):
        assert cli("show", schedule, "--plot", path).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_compare_plot(cli, model, schedule, tmp_path, suffix):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"compare{suffix}"
    result = cli("compare", model, "prior", "static", schedule, "--candidates", "500",
                 "--plot", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"]  # --json still prints the data
    _check(path)


def test_fit_plot(cli, tmp_path):
    pytest.importorskip("matplotlib")
    from regmixd_cli.store.files import write_store

    store = tmp_path / "store"
    write_store(store, build_store())
    path = tmp_path / "fit.png"
    result = cli("fit", store, "--out", tmp_path / "model", "--target", TARGET,
                 "--switch-points", "3", "--folds", "2", "--max-rounds", "10", "--plot", path)
    assert result.exit_code == 0, result.output
    _check(path)


def test_unknown_format_is_a_usage_error(cli, schedule, tmp_path):
    result = cli("show", schedule, "--plot", tmp_path / "schedule.pdf")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and ".png or .svg" in result.stderr
    assert not (tmp_path / "schedule.pdf").exists()
    assert result.stdout == ""  # fails before printing the table


def test_plot_of_a_store_or_model_is_a_usage_error(cli, model, tmp_path):
    result = cli("show", model, "--plot", tmp_path / "m.png")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and "fit" in result.stderr


def test_missing_matplotlib_says_how_to_install_it(cli, model, schedule, tmp_path, monkeypatch):
    # A None entry in sys.modules makes `import matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for args in (
        ("show", schedule, "--plot", tmp_path / "s.png"),
        ("compare", model, "prior", "--plot", tmp_path / "c.svg"),
        ("fit", tmp_path / "no-store", "--out", tmp_path / "m", "--plot", tmp_path / "f.png"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("Error:")
        assert "pip install 'regmixd[plot]'" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written, not even the model


def test_compare_plot_to_a_directory_fails_before_any_work(cli, tmp_path):

    model = fit_tiny_model(tmp_path / "model")
    target = tmp_path / "fig.png"
    target.mkdir()
    result = cli("compare", model, "prior", "--plot", target)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and "fig.png" in result.stderr
    assert result.stdout == ""
