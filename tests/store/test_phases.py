"""Phased proxies through `ingest` and `show`: every input format, phases.parquet, bad input."""

from __future__ import annotations

import json

import polars as pl
import pytest

from regmixd_cli.store.files import read_store
from tests.helpers.cli import fails

OBS = [
    {"run": "r1", "step": 100, "val/x": 3.0},
    {"run": "r1", "step": 300, "val/x": 2.7},
    {"run": "r2", "step": 100, "val/x": 3.1},
    {"run": "r2", "step": 300, "val/x": 2.75},
]
PHASES = [("r1", 0, 0.5, 0.5), ("r1", 200, 0.9, 0.1), ("r2", 0, 0.2, 0.8)]


def _lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _mixtures_csv(path, rows):
    path.write_text("run,start_step,a,b\n" + "".join(f"{r},{s},{a},{b}\n" for r, s, a, b in rows))
    return path


def _check_phases(store_dir):
    store = read_store(store_dir)
    assert store.phases is not None
    assert store.phases.rows() == list(PHASES)
    # runs.parquet keeps the first phase, so readers of static stores see what they saw before
    assert store.runs.select("run", "a", "b").rows() == [("r1", 0.5, 0.5), ("r2", 0.2, 0.8)]
    assert store.manifest["n_phased_runs"] == 1
    assert "phases.parquet" in store.manifest["files"]


def test_jsonl_phase_lines(cli, tmp_path):
    rows = [{"run": "r1", "mixture": {"a": 0.5, "b": 0.5}},
            {"run": "r1", "mixture": {"a": 0.9, "b": 0.1}, "start_step": 200},
            {"run": "r2", "mixture": {"a": 0.2, "b": 0.8}, "start_step": 0}, *OBS]
    log = _lines(tmp_path / "log.jsonl", rows)
    result = cli("ingest", log, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    _check_phases(tmp_path / "s")
    shown = cli("show", tmp_path / "s")
    assert shown.exit_code == 0, shown.output
    assert "phased runs" in shown.stdout and "Phases" in shown.stdout


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_mixtures_file_phases(cli, tmp_path, kind):
    log = _lines(tmp_path / "log.jsonl", OBS)
    if kind == "csv":
        mixtures = _mixtures_csv(tmp_path / "m.csv", PHASES)
    else:
        mixtures = tmp_path / "m.json"
        mixtures.write_text(json.dumps({
            "r1": [{"start_step": 0, "weights": {"a": 0.5, "b": 0.5}},
                   {"start_step": 200, "weights": {"a": 0.9, "b": 0.1}}],
            "r2": {"a": 0.2, "b": 0.8},
        }))
    result = cli("ingest", log, "--mixtures", mixtures, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    _check_phases(tmp_path / "s")


def test_static_store_has_no_phases(cli, tmp_path):
    rows = [{"run": "r1", "mixture": {"a": 0.5, "b": 0.5}},
            {"run": "r2", "mixture": {"a": 0.2, "b": 0.8}}, *OBS]
    result = cli("ingest", _lines(tmp_path / "log.jsonl", rows), "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "s" / "phases.parquet").exists()
    store = read_store(tmp_path / "s")
    assert store.phases is None and "n_phased_runs" not in store.manifest


def test_append_keeps_phases(cli, tmp_path):
    rows = [{"run": "r1", "mixture": {"a": 0.5, "b": 0.5}},
            {"run": "r1", "mixture": {"a": 0.9, "b": 0.1}, "start_step": 200}, *OBS[:2]]
    more = [{"run": "r2", "mixture": {"a": 0.2, "b": 0.8}}, *OBS[2:]]
    assert cli("ingest", _lines(tmp_path / "a.jsonl", rows), "--out", tmp_path / "s").exit_code == 0
    result = cli("ingest", _lines(tmp_path / "b.jsonl", more), "--out", tmp_path / "s", "--append")
    assert result.exit_code == 0, result.output
    _check_phases(tmp_path / "s")


@pytest.mark.parametrize(
    ("rows", "line", "words"),
    [
        ([("r1", 100, 0.5, 0.5), ("r2", 0, 0.2, 0.8)], 2, "not 0"),
        ([("r1", 0, 0.5, 0.5), ("r1", 0, 0.9, 0.1), ("r2", 0, 0.2, 0.8)], 3, "repeats"),
        ([("r1", 0, 0.5, 0.5), ("r1", 250, 0.9, 0.1), ("r1", 200, 0.9, 0.1),
          ("r2", 0, 0.2, 0.8)], 4, "comes before"),
        ([("r1", 0, 0.5, 0.5), ("r1", 300, 0.9, 0.1), ("r2", 0, 0.2, 0.8)], 3, "last logged"),
        ([("r1", 0, 0.5, 0.5), ("r1", 200, 0.9, 0.3), ("r2", 0, 0.2, 0.8)], 3, "sum to"),
    ],
)
def test_bad_phases_in_a_mixtures_csv(cli, tmp_path, rows, line, words):
    log = _lines(tmp_path / "log.jsonl", OBS)
    mixtures = _mixtures_csv(tmp_path / "m.csv", rows)
    result = cli("ingest", log, "--mixtures", mixtures, "--out", tmp_path / "s")
    fails(result, 3, f"{mixtures}:{line}", words)
    assert not (tmp_path / "s").exists()


def test_bad_phases_in_jsonl(cli, tmp_path):
    late = _lines(tmp_path / "late.jsonl", [
        {"run": "r1", "mixture": {"a": 0.9, "b": 0.1}, "start_step": 200}, *OBS[:2]])
    fails(cli("ingest", late, "--out", tmp_path / "s"), 3, f"{late}:1", "not 0")
    twice = _lines(tmp_path / "twice.jsonl", [
        {"run": "r1", "mixture": {"a": 0.5, "b": 0.5}},
        {"run": "r1", "mixture": {"a": 0.9, "b": 0.1}, "start_step": 200},
        {"run": "r1", "mixture": {"a": 0.8, "b": 0.2}, "start_step": 200}, *OBS[:2]])
    fails(cli("ingest", twice, "--out", tmp_path / "s"), 3, f"{twice}:3", "start_step 200")
    past = _lines(tmp_path / "past.jsonl", [
        {"run": "r1", "mixture": {"a": 0.5, "b": 0.5}},
        {"run": "r1", "mixture": {"a": 0.9, "b": 0.1}, "start_step": 400}, *OBS[:2]])
    fails(cli("ingest", past, "--out", tmp_path / "s"), 3, f"{past}:2", "last logged")


def test_bad_phases_in_a_mixtures_json(cli, tmp_path):
    log = _lines(tmp_path / "log.jsonl", OBS)
    mixtures = tmp_path / "m.json"
    mixtures.write_text(json.dumps({
        "r1": [{"start_step": 0, "weights": {"a": 0.5, "b": 0.5}},
               {"start_step": 0, "weights": {"a": 0.9, "b": 0.1}}],
        "r2": {"a": 0.2, "b": 0.8},
    }))
    fails(cli("ingest", log, "--mixtures", mixtures, "--out", tmp_path / "s"), 3,
          mixtures, "phase 1", "repeats")


def test_phases_frame_types(cli, tmp_path):
    log = _lines(tmp_path / "log.jsonl", OBS)
    mixtures = _mixtures_csv(tmp_path / "m.csv", PHASES)
    assert cli("ingest", log, "--mixtures", mixtures, "--out", tmp_path / "s").exit_code == 0
    frame = pl.read_parquet(tmp_path / "s" / "phases.parquet")
    assert frame.schema == {"run": pl.String, "start_step": pl.Int64, "a": pl.Float64,
                            "b": pl.Float64}


def test_a_phased_mixtures_json_is_detected_as_a_positional_input(cli, tmp_path):
    log = _lines(tmp_path / "log.jsonl", OBS)
    mixtures = tmp_path / "m.json"
    mixtures.write_text(json.dumps({
        "r1": [{"start_step": 0, "weights": {"a": 0.5, "b": 0.5}},
               {"start_step": 200, "weights": {"a": 0.9, "b": 0.1}}],
        "r2": [{"start_step": 0, "weights": {"a": 0.2, "b": 0.8}}],
    }, indent=2))
    result = cli("ingest", log, mixtures, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    _check_phases(tmp_path / "s")
