"""Inputs are read whole or refused: nothing skipped or merged silently (through the CLI)."""

from __future__ import annotations

import json
import os
import shutil

import polars as pl
import pytest

from tests.helpers.cli import fails
from tests.helpers.paths import SAMPLE_LOGS

HF = SAMPLE_LOGS / "formats" / "hf"
STATE = HF / "proxy-02" / "trainer_state.json"
MIX = {"arxiv": 0.25, "github": 0.25, "pile_cc": 0.25, "wikipedia_en": 0.25}


def test_hf_runs_in_same_named_directories_stay_apart(cli, tmp_path):
    for exp in ("exp_a", "exp_b"):
        (tmp_path / "in" / exp / "results").mkdir(parents=True)
        shutil.copy(STATE, tmp_path / "in" / exp / "results" / "trainer_state.json")
    mixtures = tmp_path / "m.json"
    mixtures.write_text(json.dumps({"exp_a/results": MIX, "exp_b/results": MIX}))
    result = cli("ingest", tmp_path / "in", "--mixtures", mixtures, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    runs = pl.read_parquet(tmp_path / "s" / "runs.parquet")["run"].to_list()
    assert runs == ["exp_a/results", "exp_b/results"]
    # Named one by one, the two files would both be `results`: refused, not merged.
    fails(cli("ingest", tmp_path / "in" / "exp_a" / "results" / "trainer_state.json",
              tmp_path / "in" / "exp_b" / "results" / "trainer_state.json",
              "--mixtures", mixtures, "--out", tmp_path / "s2"), 3, "common parent")


def test_a_mixtures_json_naming_a_run_twice_is_refused(cli, tmp_path):
    mixtures = tmp_path / "m.json"
    mixtures.write_text('{"proxy-01": {"arxiv": 1}, "proxy-01": {"github": 1}}')
    fails(cli("ingest", HF, "--mixtures", mixtures, "--out", tmp_path / "s"), 3,
          "'proxy-01' is named twice")


def test_an_unreadable_subdirectory_is_an_error(cli, tmp_path, monkeypatch):
    import regmixd_cli.store.readers as readers

    logs = tmp_path / "logs"
    shutil.copytree(HF, logs)
    real_walk = os.walk

    def walk(top, onerror=None, **kwargs):
        for folder, dirs, names in real_walk(top, onerror=onerror, **kwargs):
            if folder.endswith("proxy-03") and onerror is not None:
                onerror(PermissionError(13, "Permission denied", folder))
            yield folder, dirs, names

    monkeypatch.setattr(readers.os, "walk", walk)
    fails(cli("ingest", logs, "--out", tmp_path / "s"), 3, "proxy-03", "cannot read")


def test_an_unreadable_subdirectory_for_real(cli, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every directory")
    logs = tmp_path / "logs"
    shutil.copytree(HF, logs)
    (logs / "proxy-03").chmod(0)
    try:
        fails(cli("ingest", logs, "--out", tmp_path / "s"), 3, "proxy-03")
    finally:
        (logs / "proxy-03").chmod(0o755)


def test_a_git_lfs_pointer_says_git_lfs_pull(cli, tmp_path):
    run = tmp_path / "logs" / "r1"
    run.mkdir(parents=True)
    (run / "trainer_state.json").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n")
    fails(cli("ingest", tmp_path / "logs", "--out", tmp_path / "s"), 3, "git lfs pull")
    fails(cli("ingest", tmp_path / "logs", "--format", "hf", "--out", tmp_path / "s"), 3,
          "Git LFS pointer")


def test_extra_mixtures_are_named_and_can_be_ignored(cli, tmp_path):
    mixtures = tmp_path / "m.csv"
    mixtures.write_text((HF / "mixtures.csv").read_text() + "proxy-99,0.25,0.25,0.25,0.25\n")
    logs = tmp_path / "logs"
    shutil.copytree(HF, logs)
    (logs / "mixtures.csv").unlink()
    fails(cli("ingest", logs, "--mixtures", mixtures, "--out", tmp_path / "s"), 3,
          "proxy-99", "--ignore-extra-mixtures")
    result = cli("ingest", logs, "--mixtures", mixtures, "--out", tmp_path / "s",
                 "--ignore-extra-mixtures")
    assert result.exit_code == 0, result.output
    assert "proxy-99" in result.stderr
    assert pl.read_parquet(tmp_path / "s" / "runs.parquet").height == 3


def test_a_wandb_runs_table_is_endpoint_data(cli, tmp_path):
    table = tmp_path / "runs.csv"
    table.write_text(
        '"Name","State","Runtime","lr","mixture.a","mixture.b","_step","eval/loss","train/loss"\n'
        '"p1","finished","3600","0.001","0.3","0.7","1000","3.21","3.1"\n'
        '"p2","finished","3500","0.001","0.6","0.4","1000","3.35","3.2"\n')
    result = cli("ingest", table, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    trajectories = pl.read_parquet(tmp_path / "s" / "trajectories.parquet")
    assert sorted(set(trajectories["metric"])) == ["eval/loss", "train/loss"]
    assert set(trajectories["step"]) == {1000}
    runs = pl.read_parquet(tmp_path / "s" / "runs.parquet")
    assert runs["a"].to_list() == [0.3, 0.6]


@pytest.mark.parametrize("step", ["9223372036854775808", "1e300", "-1"])
def test_huge_steps_are_one_error(cli, tmp_path, step):
    log = tmp_path / "log.jsonl"
    log.write_text('{"run": "a", "mixture": {"x": 1}}\n'
                   f'{{"run": "a", "step": {step}, "v": 3}}\n')
    fails(cli("ingest", log, "--out", tmp_path / "s"), 3, "'step'")
    log.write_text('{"run": "a", "mixture": {"x": 1}}\n'
                   f'{{"run": "a", "step": 1, "tokens": {step}, "v": 3}}\n')
    fails(cli("ingest", log, "--out", tmp_path / "s"), 3, "'tokens'")
    state = tmp_path / "r" / "trainer_state.json"
    state.parent.mkdir(exist_ok=True)
    state.write_text(f'{{"log_history": [{{"step": {step}, "loss": 3.0}}]}}')
    fails(cli("ingest", state, "--out", tmp_path / "s"), 3, "'step'")


def test_metric_names_equal_up_to_a_nul_are_one_error(cli, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"run": "a", "mixture": {"x": 1}}\n'
                   '{"run": "a", "step": 1, "val": 3.0, "val\\u0000": 2.0}\n')
    fails(cli("ingest", log, "--out", tmp_path / "s"), 3, "control character")


def test_a_huge_loss_flags_its_run_diverged(cli, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"run": "a", "mixture": {"x": 1}}\n{"run": "a", "step": 1, "v": 1e39}\n')
    result = cli("ingest", log, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "flagged diverged" in result.stderr


def test_a_wandb_runs_table_without_losses_says_what_it_is(cli, tmp_path):
    table = tmp_path / "runs.csv"
    table.write_text('"Name","State","lr"\n"p1","finished","0.001"\n')
    fails(cli("ingest", table, "--out", tmp_path / "s"), 3, "W&B runs table", "loss")
