"""`regmixd run` end to end on the bundled sample logs, and `regmixd show` on each output."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.cli import fails
from tests.helpers.paths import SAMPLE_LOGS

LOGS = SAMPLE_LOGS / "proxies" / "logs"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from typer.testing import CliRunner

    from regmixd_cli.cli import app

    out = tmp_path_factory.mktemp("run") / "demo"
    result = CliRunner().invoke(app, ["run", str(LOGS), "--out", str(out), "--candidates", "4000"])
    assert result.exit_code == 0, result.output
    return out, result


def test_run_writes_every_output_and_prints_the_schedule(demo):
    out, result = demo
    for name in ("store/manifest.json", "model/model.json", "schedule.json", "static.json"):
        assert (out / name).is_file(), name
    schedule = json.loads((out / "schedule.json").read_text())
    static = json.loads((out / "static.json").read_text())
    assert schedule["method"] == "regmix-d-offline"
    assert len(schedule["stages"]) == 6
    assert static["method"] == "regmix-static"
    assert "regmix-d-offline: 6 stage(s)" in result.stdout
    assert "static RegMix baseline" in result.stdout
    assert "Ingested 64 runs" in result.stderr
    assert "curve booster: learning rate" in result.stderr  # the same report as `fit`


def test_run_json_is_the_schedule_file(demo, cli, tmp_path):
    out, _ = demo
    again = tmp_path / "again"
    result = cli("run", LOGS, "--out", again, "--candidates", "4000", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == (again / "schedule.json").read_text()
    # Same inputs and seed: byte-identical outputs.
    assert (again / "schedule.json").read_bytes() == (out / "schedule.json").read_bytes()
    model_json = "model/model.json"
    assert (again / model_json).read_bytes() == (out / model_json).read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("store", "Trajectory store"),
        ("model", "Held-out next-interval loss"),
        ("schedule.json", "legend"),
    ],
)
def test_show_each_kind(demo, cli, name, expected):
    out, _ = demo
    result = cli("show", out / name)
    assert result.exit_code == 0, result.output
    assert expected.lower() in result.stdout.lower()


def test_show_rejects_unknown_inputs(cli, tmp_path):
    result = cli("show", tmp_path)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: ") and str(tmp_path) in result.stderr
    missing = cli("show", tmp_path / "nope.json")
    assert missing.exit_code == 3
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    result = cli("show", junk)
    assert result.exit_code == 3 and "junk.json" in result.stderr


def test_run_on_bad_logs_leaves_no_outputs(cli, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(LOGS, logs)
    with open(logs / "part-0.jsonl", "a") as handle:
        handle.write('{"run": "p000", "step": \n')
    out = tmp_path / "out"
    result = cli("run", logs, "--out", out)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: ") and "part-0.jsonl" in result.stderr
    assert not (out / "store").exists()


def test_run_with_a_missing_prior_fails_before_ingesting(cli, tmp_path):
    out = tmp_path / "runs" / "r2"
    fails(cli("run", LOGS, "--out", out, "--prior", tmp_path / "nope.json"), 2, "nope.json")
    assert not (tmp_path / "runs").exists()


def test_run_failing_late_removes_only_what_it_created(cli, tmp_path):
    out = tmp_path / "runs" / "r2"
    fails(cli("run", LOGS, "--out", out, "--target", "val/nope"), 2, "val/nope")
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    fails(cli("run", LOGS, "--out", kept, "--target", "val/nope"), 2, "val/nope")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
