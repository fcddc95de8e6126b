"""Trainer exports: every format parses back to the schedule it came from."""

from __future__ import annotations

import csv
import io
import json
import shlex
import shutil
import subprocess

import pytest

from regmixd_cli.errors import UsageError
from regmixd_cli.plan.export import FORMATS, export_schedule, parse_prefixes
from regmixd_cli.plan.schedule import Schedule, Stage

DOMAINS = ("pile_cc", "github", "arxiv")


def make_schedule() -> Schedule:
    stages = (
        Stage(0, 4167, 0.0, 0.1667, (0.5, 0.3, 0.2), 5.0),
        Stage(4167, 12500, 0.1667, 0.5, (0.6, 0.4, 0.0), 4.1),
        Stage(12500, 25000, 0.5, 1.0, (0.999999, 0.000001, 0.0), None),
    )
    return Schedule("regmix-d-offline", DOMAINS, 25000, stages, {"model": "x"})


def parse_yaml(text: str):
    """Parse the YAML subset the exports write: block maps/lists, JSON flow values, comments."""
    lines = [
        [len(raw) - len(raw.lstrip(" ")), raw.strip()]
        for raw in text.splitlines()
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    value, end = _block(lines, 0, lines[0][0])
    assert end == len(lines), f"unparsed line: {lines[end]}"
    return value


def _block(lines, i, indent):
    return (_seq if lines[i][1].startswith("- ") else _map)(lines, i, indent)


def _seq(lines, i, indent):
    out = []
    while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
        rest = lines[i][1][2:]
        if rest[0] in '[{"' or ":" not in rest:
            out.append(json.loads(rest))
            i += 1
        else:  # "- key: value" opens a map indented under the dash
            lines[i] = [indent + 2, rest]
            item, i = _map(lines, i, indent + 2)
            out.append(item)
    return out, i


def _map(lines, i, indent):
    out = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, sep, rest = lines[i][1].partition(": ")
        if not sep:
            assert lines[i][1].endswith(":"), lines[i]
            key, rest = lines[i][1][:-1], ""
        assert key not in out, f"duplicate key {key}"
        if rest.strip():
            out[key] = json.loads(rest)
            i += 1
        else:
            out[key], i = _block(lines, i + 1, lines[i + 1][0])
    return out, i


def header(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def test_megatron_gives_one_data_path_per_stage(tmp_path):
    text = export_schedule(make_schedule(), "megatron", {"pile_cc": "/data/pile cc/doc"})
    assert "Megatron-LM" in header(text)[0]
    env = dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    assert env["N_STAGES"] == "3"
    assert (env["STAGE_1_START"], env["STAGE_1_END"]) == ("4167", "12500")

    def array(value: str) -> list[str]:
        assert value[0] == "(" and value[-1] == ")"
        return shlex.split(value[1:-1])

    assert array(env["STAGE_0_DATA_PATH"]) == [
        "0.5", "/data/pile cc/doc", "0.3", "github", "0.2", "arxiv"
    ]
    assert array(env["STAGE_1_DATA_PATH"]) == ["0.6", "/data/pile cc/doc", "0.4", "github"]
    assert array(env["STAGE_2_DATA_PATH"])[2] == "0.000001"  # never 1e-06


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_megatron_export_is_a_bash_file_with_one_array_per_stage(tmp_path):
    path = tmp_path / "stages.sh"
    path.write_text(export_schedule(make_schedule(), "megatron", {"github": "/d/git hub"}))
    script = f'source {shlex.quote(str(path))}; printf "%s\\n" "${{STAGE_0_DATA_PATH[@]}}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == ["0.5", "pile_cc", "0.3", "/d/git hub", "0.2", "arxiv"]


def test_nanotron_data_stages_start_at_step_one():
    doc = parse_yaml(export_schedule(make_schedule(), "nanotron", {"github": "/tok/github"}))
    stages = doc["data_stages"]
    assert [s["start_training_step"] for s in stages] == [1, 4168, 12501]
    assert len({s["name"] for s in stages}) == 3
    first = stages[0]["data"]["dataset"]
    assert first == {"dataset_folder": ["pile_cc", "/tok/github", "arxiv"],
                     "dataset_weights": [0.5, 0.3, 0.2]}
    assert stages[1]["data"]["dataset"]["dataset_folder"] == ["pile_cc", "/tok/github"]


def test_hf_gives_interleave_probabilities_per_stage():
    doc = json.loads(export_schedule(make_schedule(), "hf", {"arxiv": "org/arxiv"}))
    assert doc["format"] == "regmixd.export.hf/v1"
    assert "interleave_datasets" in doc["description"]
    assert doc["datasets"] == ["pile_cc", "github", "org/arxiv"]
    assert [s["probabilities"] for s in doc["stages"]] == [
        [0.5, 0.3, 0.2], [0.6, 0.4, 0.0], [0.999999, 0.000001, 0.0]
    ]
    assert [(s["start_step"], s["end_step"]) for s in doc["stages"]] == [
        (0, 4167), (4167, 12500), (12500, 25000)
    ]


def test_olmo_core_gives_a_source_mixture_list_per_stage():
    text = export_schedule(make_schedule(), "olmo-core", {"pile_cc": "s3://b/pile/*.npy"})
    assert "OLMo-core" in header(text)[0]
    stages = parse_yaml(text)["stages"]
    assert [(s["start_step"], s["end_step"]) for s in stages] == [
        (0, 4167), (4167, 12500), (12500, 25000)
    ]
    sources = stages[0]["source_list"]["sources"]
    assert sources[0] == {"source_name": "pile_cc", "target_ratio": 0.5,
                          "paths": ["s3://b/pile/*.npy"]}
    assert [s["source_name"] for s in stages[1]["source_list"]["sources"]] == ["pile_cc", "github"]
    for stage in stages:
        total = sum(s["target_ratio"] for s in stage["source_list"]["sources"])
        assert abs(total - 1.0) < 1e-9


def test_levanter_gives_train_weights_with_start_steps():
    doc = parse_yaml(export_schedule(make_schedule(), "levanter", {"arxiv": "arxiv_v2"}))
    weights = doc["data"]["train_weights"]
    assert [step for step, _ in weights] == [0, 4167, 12500]
    assert weights[0][1] == {"pile_cc": 0.5, "github": 0.3, "arxiv_v2": 0.2}
    assert weights[2][1]["github"] == 0.000001


def test_csv_has_one_row_per_stage():
    rows = list(csv.DictReader(io.StringIO(export_schedule(make_schedule(), "csv"))))
    assert [r["start_step"] for r in rows] == ["0", "4167", "12500"]
    assert rows[0]["pile_cc"] == "0.5" and rows[2]["predicted_loss"] == ""
    assert list(rows[0]) == ["stage", "start_step", "end_step", "start_fraction",
                             "end_fraction", "predicted_loss", *DOMAINS]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_deterministic_and_ends_with_a_newline(fmt):
    a = export_schedule(make_schedule(), fmt)
    assert a == export_schedule(make_schedule(), fmt)
    assert a.endswith("\n") and not a.endswith("\n\n")


def test_unknown_format_is_a_usage_error():
    with pytest.raises(UsageError, match="--to 'deepspeed'"):
        export_schedule(make_schedule(), "deepspeed")


@pytest.mark.parametrize(
    ("items", "message"),
    [(["pile_cc"], "expected DOMAIN=PATH"), (["books=/x"], "unknown domain 'books'"),
     (["=/x"], "expected DOMAIN=PATH")],
)
def test_bad_prefix_is_a_usage_error(items, message):
    with pytest.raises(UsageError, match=message):
        parse_prefixes(items, DOMAINS)


def test_prefix_may_contain_equals_signs():
    assert parse_prefixes(["github=/d/a=b"], DOMAINS) == {"github": "/d/a=b"}
