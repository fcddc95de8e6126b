"""Data safety: no command deletes or overwrites a path it did not write, or one of its inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.cli import SAMPLE_FIT, fails
from tests.helpers.paths import PROXY_LOGS, PROXY_PRIOR


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_fit_refuses_a_directory_that_is_not_a_model(cli, fitted, tmp_path):
    store, _model, _schedule = fitted
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    fails(cli("fit", store, "--out", user, *SAMPLE_FIT), 2, "not a model directory", "--force")
    assert (user / "notes.txt").read_text() == "precious"
    result = cli("fit", store, "--out", user, "--force", *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    assert (user / "model.json").is_file()


def test_fit_never_replaces_its_input_store(cli, fitted, tmp_path):
    store, _model, _schedule = fitted
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    before = _tree(copy)
    fails(cli("fit", copy, "--out", copy, *SAMPLE_FIT), 2, "is that input")
    fails(cli("fit", copy, "--out", copy, "--force", *SAMPLE_FIT), 2, "is that input")
    fails(cli("fit", copy, "--out", tmp_path, "--force", *SAMPLE_FIT), 2, "holds that input")
    assert _tree(copy) == before


def test_fit_out_dot_in_an_empty_directory_leaves_no_temporary(cli, fitted, tmp_path,
                                                                monkeypatch):
    store, _model, _schedule = fitted
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = cli("fit", store, "--out", ".", *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    assert (work / "model.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("target", ["model.json", "endpoint.ubj"])
def test_schedule_out_onto_the_model_is_refused(cli, fitted, tmp_path, target):
    _store, model, _schedule = fitted
    before = _tree(model)
    fails(cli("schedule", model, "--out", model / target, "--candidates", "500"), 2,
          "is that input")
    assert _tree(model) == before


def test_online_out_schedule_and_state_onto_the_model_are_refused(cli, fitted, tmp_path):
    _store, model, _schedule = fitted
    log = tmp_path / "log.jsonl"
    log.write_text("")
    before = _tree(model)
    for option in ("--out-schedule", "--state"):
        result = cli("online", model, "--follow", log, "--target-steps", "1000",
                     option, model / "model.json", "--timeout", "0.1")
        fails(result, 2, option, "is that input")
    assert _tree(model) == before


def test_design_out_onto_its_prior_is_refused(cli, tmp_path):
    prior = tmp_path / "p.json"
    shutil.copy(PROXY_PRIOR, prior)
    before = prior.read_bytes()
    fails(cli("design", "--static", "--prior", prior, "--runs", "4", "--out", prior), 2,
          "is that input")
    assert prior.read_bytes() == before


def test_ingest_out_onto_an_input_is_refused(cli, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(PROXY_LOGS, logs)
    before = _tree(logs)
    fails(cli("ingest", logs, "--out", logs), 2, "is that input")
    fails(cli("ingest", logs / "part-0.jsonl", "--out", tmp_path), 2, "holds that input")
    assert _tree(logs) == before


def test_a_symlinked_out_is_refused_and_nothing_is_left_behind(cli, fitted, tmp_path):
    store, model, _schedule = fitted
    real = tmp_path / "real"
    shutil.copytree(model, real)
    link = tmp_path / "link"
    link.symlink_to(real)
    fails(cli("fit", store, "--out", link, *SAMPLE_FIT), 3, "symbolic link")
    assert link.is_symlink() and (real / "model.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    target = tmp_path / "s.json"
    target.write_text("{}")
    (tmp_path / "slink.json").symlink_to(target)
    fails(cli("schedule", model, "--out", tmp_path / "slink.json", "--candidates", "500"), 3,
          "symbolic link")
    assert target.read_text() == "{}"


def test_a_250_character_output_name_works(cli, fitted, tmp_path):
    _store, model, _schedule = fitted
    out = tmp_path / ("s" * 245 + ".json")
    result = cli("schedule", model, "--out", out, "--candidates", "500")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["schema_version"].startswith("regmixd.schedule")
    assert os.listdir(tmp_path) == [out.name]


def test_a_full_disk_is_one_error_line(cli, fitted, tmp_path, monkeypatch):
    import errno

    import regmixd_cli.files as files

    _store, model, _schedule = fitted

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "s.json"))

    monkeypatch.setattr(files.os, "fsync", full)
    result = cli("schedule", model, "--out", tmp_path / "s.json", "--candidates", "500")
    fails(result, 3, "no space left")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("code", ["ENOSPC", "EFBIG"])
def test_a_full_disk_while_encoding_the_store_is_one_error_line(cli, tmp_path, monkeypatch,
                                                                code):
    """Appending an encoded row group raises an OSError without a file name: the error line
    names the store's trajectories file, exit 3, and nothing is left behind."""
    import errno

    from regmixd_cli.store import files as store_io

    number = getattr(errno, code)

    def full(*_args, **_kwargs):
        raise OSError(number, f"Error writing bytes to file. Detail: [errno {number}]")

    monkeypatch.setattr(store_io.TrajectoryWriter, "append", full)
    result = cli("ingest", PROXY_LOGS, "--out", tmp_path / "store")
    fails(result, 3, str(tmp_path / "store" / "trajectories.parquet"))
    assert ("no space left" if code == "ENOSPC" else "file too large") in result.stderr
    assert not list(tmp_path.iterdir())


def test_an_unwritable_output_directory_is_one_error_line(cli, fitted, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    _store, model, _schedule = fitted
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails(cli("schedule", model, "--out", locked / "s.json", "--candidates", "500"), 3,
              "permission denied")
    finally:
        locked.chmod(0o700)


def test_plots_and_oracle_outputs_never_overwrite_inputs(cli, fitted, tmp_path):
    _store, model, schedule = fitted
    copy = tmp_path / "schedule.svg"  # an input with a plot's name: still an input
    shutil.copy(schedule, copy)
    before = copy.read_bytes()
    fails(cli("show", copy, "--plot", copy), 2, "is that input")
    fails(cli("compare", model, "prior", str(copy), "--plot", copy), 2, "is that input")
    assert copy.read_bytes() == before
    world = tmp_path / "world.json"
    shutil.copy(PROXY_PRIOR.parent / "world.json", world)
    fails(cli("simulate", "oracle", world, "--out", world), 2, "is that input")
    fails(cli("simulate", "oracle", world, "--out", tmp_path / "o.json", "--static-out",
              tmp_path / "o.json"), 2, "--static-out")


def test_a_250_character_store_and_model_name_works(cli, fitted, tmp_path):
    store, _model, _schedule = fitted
    name = "s" * 250
    result = cli("ingest", PROXY_LOGS, "--out", tmp_path / name)
    assert result.exit_code == 0, result.output
    result = cli("fit", store, "--out", tmp_path / ("m" * 250), *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m" * 250, name]


def test_a_name_too_long_is_refused_before_any_work(cli, fitted, tmp_path):
    store, model, _schedule = fitted
    fails(cli("fit", store, "--out", tmp_path / ("m" * 300), *SAMPLE_FIT), 3,
          "file name too long")
    fails(cli("schedule", model, "--out", tmp_path / ("s" * 300 + ".json")), 3,
          "file name too long")
    assert not list(tmp_path.iterdir())
