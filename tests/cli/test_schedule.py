"""`regmixd schedule`, `regmixd export` and the schedule renderer, on a tiny real model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from regmixd_cli.cli._render import render_schedule, show_schedule
from regmixd_cli.plan.schedule_file import read_schedule, schedule_schema_path
from tests.helpers.cli import fails
from tests.helpers.online_world import DOMAINS
from tests.helpers.paths import PROXY_PRIOR


@pytest.fixture(scope="module")
def model_dir(tiny_model: Path) -> Path:
    """The session's tiny model (tests/conftest.py), fitted once for every module."""
    return tiny_model


def validate(text: str) -> dict:
    doc = json.loads(text)
    schema = json.loads(schedule_schema_path().read_text(encoding="utf-8"))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    return doc


FAST = ("--candidates", "3000", "--top-k", "16")


def test_schedule_writes_a_valid_file_and_shows_the_table(cli, model_dir, tmp_path):
    out = tmp_path / "schedule.json"
    result = cli("schedule", model_dir, "--out", out, "--target-steps", "25000",
                 *FAST, "--force-dynamic")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    doc = validate(out.read_text(encoding="utf-8"))
    assert doc["method"] == "regmix-d-offline" and doc["domains"] == list(DOMAINS)
    assert [s["end_step"] for s in doc["stages"]] == [6250, 12500, 18750, 25000]
    assert len(doc["provenance"]["model"]) == 64
    assert "prior: the model's (proxy-mean)" in result.stderr
    assert "regmix-d-offline: 4 stage(s) over 25000 steps" in result.stderr
    assert f"wrote {out}" in result.stderr


def test_same_seed_gives_byte_identical_output(cli, model_dir):
    a = cli("schedule", model_dir, "--out", "-", "--seed", "5", *FAST)
    b = cli("schedule", model_dir, "--json", "--seed", "5", *FAST)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.stdout == b.stdout
    validate(a.stdout)


def test_static_gives_one_stage(cli, model_dir):
    result = cli("schedule", model_dir, "--static", "--json", "--target-steps", "1000", *FAST)
    assert result.exit_code == 0, result.output
    doc = validate(result.stdout)
    assert doc["method"] == "regmix-static"
    assert [(s["start_step"], s["end_step"]) for s in doc["stages"]] == [(0, 1000)]


def test_uniform_prior_is_recorded(cli, model_dir):
    result = cli("schedule", model_dir, "--json", "--prior", "uniform", *FAST, "--force-dynamic")
    assert result.exit_code == 0, result.output
    doc = validate(result.stdout)
    assert doc["provenance"]["prior_source"] == "uniform"
    assert doc["stages"][0]["weights"] == {d: pytest.approx(1 / 3, abs=1e-6) for d in DOMAINS}


def test_schedule_without_an_output_is_a_usage_error(cli, model_dir):
    result = cli("schedule", model_dir)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: give --out FILE")


def test_missing_model_is_a_model_error_naming_it(cli, tmp_path):
    result = cli("schedule", tmp_path / "nope", "--json")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error:") and "nope" in result.stderr


def test_bad_search_options_are_usage_errors(cli, model_dir):
    result = cli("schedule", model_dir, "--json", "--candidates", "10", "--top-k", "20")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --top-k 20 is larger than --candidates 10")


def test_failed_schedule_leaves_an_existing_file_alone(cli, model_dir, tmp_path):
    out = tmp_path / "schedule.json"
    precious = '{"schema_version": "regmixd.schedule/v1", "note": "an earlier schedule"}'
    out.write_text(precious, encoding="utf-8")
    result = cli("schedule", model_dir, "--out", out, "--target-steps", "2")
    assert result.exit_code == 2, result.output
    assert out.read_text(encoding="utf-8") == precious
    assert [p.name for p in tmp_path.iterdir()] == ["schedule.json"]


@pytest.fixture(scope="module")
def schedule_file(model_dir, tmp_path_factory):
    from tests.helpers.cli import Invoker

    path = tmp_path_factory.mktemp("sched") / "schedule.json"
    result = Invoker()("schedule", model_dir, "--out", path, "--target-steps", "25000",
                       *FAST, "--force-dynamic")
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("fmt", ["hf", "levanter", "llm-foundry", "olmo-core-curriculum", "csv"])
def test_export_every_one_file_format_to_stdout(cli, schedule_file, fmt):
    result = cli("export", schedule_file, "--to", fmt, "--prefix", "code=/data/code",
                 "--batch-size", "2048", "--sequence-length", "1024")
    assert result.exit_code == 0, result.output
    assert "/data/code" in result.stdout or fmt == "csv"
    assert result.stdout.endswith("\n")


@pytest.mark.parametrize("fmt", ["megatron", "nanotron", "olmo-core"])
def test_export_launch_formats_to_a_directory(cli, schedule_file, tmp_path, fmt):
    out = tmp_path / fmt
    result = cli("export", schedule_file, "--to", fmt, "--prefix", "code=/data/code",
                 "--batch-size", "2048", "--sequence-length", "1024", "--out", out)
    assert result.exit_code == 0, result.output
    assert any("/data/code" in p.read_text() for p in out.rglob("*") if p.is_file())


def test_export_to_a_file(cli, schedule_file, tmp_path):
    out = tmp_path / "mix.csv"
    result = cli("export", schedule_file, "--to", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8").startswith("stage,start_step,end_step")


def test_export_unknown_format_and_prefix_are_usage_errors(cli, schedule_file):
    result = cli("export", schedule_file, "--to", "deepspeed")
    assert result.exit_code == 2 and result.stderr.startswith("Error: --to 'deepspeed'")
    result = cli("export", schedule_file, "--to", "csv", "--prefix", "books=/b")
    assert result.exit_code == 2 and "unknown domain 'books'" in result.stderr


def test_export_of_a_wrong_version_is_an_input_error_naming_the_file(cli, tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"schema_version": "regmixd.schedule/v0"}), encoding="utf-8")
    result = cli("export", bad, "--to", "csv")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: {bad}: schedule schema 'regmixd.schedule/v0'")


def test_show_schedule_prints_table_bars_and_legend(schedule_file, capsys):
    show_schedule(schedule_file)
    shown = capsys.readouterr().out
    assert "regmix-d-offline: 4 stage(s) over 25000 steps" in shown
    assert "6250-12500" in shown and "0.250-0.500" in shown and "%" in shown
    assert "legend:" in shown and all(d in shown for d in DOMAINS)
    # Without colour each domain is drawn with its own letter; every bar is as wide.
    bars = [line for line in shown.splitlines() if re.fullmatch(r"\d [abc]+", line)]
    assert len(bars) == 4 and len({len(b) for b in bars}) == 1


def test_render_uses_coloured_blocks_on_a_terminal(schedule_file):
    from rich.console import Console

    console = Console(record=True, force_terminal=True, color_system="truecolor", width=160)
    render_schedule(read_schedule(schedule_file), console)
    text = console.export_text()
    assert text.count("█") == 4 * 60 + len(DOMAINS)  # the bars and the legend


def test_progress_bar_draws_on_a_terminal_and_is_silent_otherwise(monkeypatch):
    import io

    from rich.console import Console

    import regmixd_cli.cli._output as module

    for terminal in (True, False):
        buffer = io.StringIO()
        monkeypatch.setattr(module, "err", Console(file=buffer, force_terminal=terminal))
        with module.progress_bar("searching mixtures", 2) as progress:
            progress(1, 2)
            progress(2, 2)
        assert ("searching mixtures" in buffer.getvalue()) is terminal


def test_show_and_export_name_a_file_that_is_not_a_schedule(cli):
    for args in (("show", PROXY_PRIOR), ("export", PROXY_PRIOR, "--to", "csv")):
        fails(cli(*args), 3, PROXY_PRIOR, "not a schedule JSON", "regmixd schedule")


def test_available_flag_without_tokens_per_step_is_a_usage_error(cli, fitted, tmp_path):
    model = fitted[1]
    result = cli("schedule", model, "--out", tmp_path / "s.json", "--available", "github=1e9")
    fails(result, 2, "--tokens-per-step")
