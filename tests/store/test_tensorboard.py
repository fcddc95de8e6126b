"""TensorBoard event files through `regmixd ingest`, written byte by byte in the real format."""

from __future__ import annotations

import json

import polars as pl

from tests.helpers.cli import fails
from tests.helpers.paths import SAMPLE_LOGS
from tests.helpers.tfevents import (
    event,
    record,
    scalar_run,
    simple_value,
    tensor_value,
    write_events,
)

MIX = {"a": 0.5, "b": 0.5}


def _trajectories(store):
    return pl.read_parquet(store / "trajectories.parquet")


def test_event_files_ingest_by_name_with_runs_named_by_relative_directory(cli, tmp_path):
    root = tmp_path / "runs"
    for i, exp in enumerate(("exp_a", "exp_b")):
        # Both runs' directories are called `tb`: their names must still differ.
        scalar_run(root / exp / "tb" / "events.out.tfevents.1700000000.host.1.0",
                   {s: 4.0 - i / 10 - s / 1000 for s in (100, 200, 300)},
                   extra={"learning-rate": 1e-4})
    (root / "mixtures.json").write_text(json.dumps({"exp_a/tb": MIX, "exp_b/tb": MIX}))
    result = cli("ingest", root, "--out", tmp_path / "store")
    assert result.exit_code == 0, result.output
    table = _trajectories(tmp_path / "store")
    assert sorted(set(table["run"])) == ["exp_a/tb", "exp_b/tb"]
    assert sorted(set(table["metric"])) == ["learning-rate", "lm loss validation"]
    loss = table.filter((pl.col("run") == "exp_b/tb") & (pl.col("metric") == "lm loss validation"))
    assert loss["step"].to_list() == [100, 200, 300]
    assert abs(loss["value"][0] - 3.8) < 1e-6  # float32, as TensorBoard stores it


def test_tensor_scalars_of_tensorflow_2_are_read(cli, tmp_path):
    log = write_events(tmp_path / "r" / "events.out.tfevents.1", [
        event(10, [tensor_value("eval/loss", 3.5)]),
        event(20, [tensor_value("eval/loss", 3.25, double=True)]),
        event(30, [tensor_value("eval/loss", 3.0, packed=False)]),
    ])
    (tmp_path / "m.json").write_text(json.dumps({"r": MIX}))
    result = cli("ingest", log, "--mixtures", tmp_path / "m.json", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    table = _trajectories(tmp_path / "s")
    assert table["value"].to_list() == [3.5, 3.25, 3.0]


def test_format_tensorboard_reads_only_event_files(cli, tmp_path):
    scalar_run(tmp_path / "logs" / "r" / "events.out.tfevents.9", {100: 3.0})
    (tmp_path / "logs" / "r" / "config.json").write_text("{}")
    (tmp_path / "m.json").write_text(json.dumps({"r": MIX}))
    result = cli("ingest", tmp_path / "logs", "--format", "tensorboard", "--mixtures",
                 tmp_path / "m.json", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output


def test_a_corrupt_event_file_is_one_error(cli, tmp_path):
    log = scalar_run(tmp_path / "r" / "events.out.tfevents.2", {100: 3.0, 200: 2.9})
    data = bytearray(log.read_bytes())
    data[-6] ^= 0xFF  # inside the last record's payload
    log.write_bytes(bytes(data))
    fails(cli("ingest", log, "--out", tmp_path / "s"), 3, "CRC mismatch")


def test_a_record_cut_short_is_left_out(cli, tmp_path):
    log = scalar_run(tmp_path / "r" / "events.out.tfevents.3", {100: 3.0})
    log.write_bytes(log.read_bytes() + record(event(200, [simple_value("x", 1.0)]))[:-7])
    (tmp_path / "m.json").write_text(json.dumps({"r": MIX}))
    result = cli("ingest", log, "--mixtures", tmp_path / "m.json", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert _trajectories(tmp_path / "s")["step"].to_list() == [100]


def test_the_bundled_examples_ingest(cli, tmp_path):
    result = cli("ingest", SAMPLE_LOGS / "formats" / "tensorboard", "--out", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    assert "4 runs x 4 domains" in result.stderr
    result = cli("ingest", SAMPLE_LOGS / "formats" / "wandb_runs", "--out", tmp_path / "wr")
    assert result.exit_code == 0, result.output
    table = _trajectories(tmp_path / "wr")
    assert set(table["step"]) == {1000}
    assert "learning_rate" not in set(table["metric"])
