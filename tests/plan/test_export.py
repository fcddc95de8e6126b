"""`regmixd export`: golden files per trainer, launch scripts, units, and failure paths (CLI)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regmixd_cli._version import __version__
from regmixd_cli.plan.export import DIR_FORMATS, EXPORT_FORMATS, MANIFEST

GOLDEN = Path(__file__).parent / "golden" / "exports"
# REGMIXD_UPDATE_GOLDEN=1 rewrites the golden files from the current exports.
UPDATE = os.environ.get("REGMIXD_UPDATE_GOLDEN") == "1"
DOMAINS = ("pile_cc", "github", "arxiv")
UNITS = ("--batch-size", "512", "--sequence-length", "4096")
PREFIXES = ("--prefix", "pile_cc=/data/pile cc/doc", "--prefix", "github=s3://b/github")
# The file name each one-file format is written to in the golden tests.
ONE_FILE = {"levanter": "levanter.yaml", "llm-foundry": "llm-foundry.yaml",
            "olmo-core-curriculum": "regmixd_curriculum.py", "hf": "hf.json", "csv": "schedule.csv"}


def schedule_doc(method: str = "regmix-d-offline") -> dict:
    stages = [
        ((0, 4167), (0.0, 0.1667), (0.5, 0.3, 0.2), 5.0),
        ((4167, 12500), (0.1667, 0.5), (0.6, 0.4, 0.0), 4.1),
        ((12500, 25000), (0.5, 1.0), (0.999999, 0.000001, 0.0), None),
    ]
    return {
        "schema_version": "regmixd.schedule/v1",
        "method": method,
        "domains": list(DOMAINS),
        "target_steps": 25000,
        "stages": [
            {"start_step": s, "end_step": e, "start_fraction": fs, "end_fraction": fe,
             "weights": dict(zip(DOMAINS, w, strict=True)), "predicted_loss": loss}
            for (s, e), (fs, fe), w, loss in stages
        ],
        "provenance": {"model": "x"},
    }


@pytest.fixture
def schedule(tmp_path) -> Path:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule_doc()), encoding="utf-8")
    return path


def files_of(path: Path) -> dict[str, str]:
    if path.is_file():
        return {path.name: path.read_text(encoding="utf-8")}
    return {p.relative_to(path).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(path.rglob("*")) if p.is_file()}


def normalise(text: str) -> str:
    return text.replace(f"regmixd {__version__} ", "regmixd VERSION ").replace(
        f'"regmixd_version": "{__version__}"', '"regmixd_version": "VERSION"')


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_export_matches_its_golden_files(cli, schedule, tmp_path, fmt):
    out = tmp_path / ONE_FILE.get(fmt, "out")
    result = cli("export", schedule, "--to", fmt, *UNITS, *PREFIXES, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    got = {name: normalise(text) for name, text in files_of(out).items()}
    golden = GOLDEN / fmt
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        for name, text in got.items():
            # .golden: linters and test collectors leave the generated files alone
            (golden / f"{name}.golden").parent.mkdir(parents=True, exist_ok=True)
            (golden / f"{name}.golden").write_text(text, encoding="utf-8")
    want = {name.removesuffix(".golden"): text for name, text in files_of(golden).items()}
    assert got == want
    # Every export but csv says which trainer source (path and commit, or version) it follows.
    if fmt != "csv":
        cites = [t for t in got.values() if "follows" in t]
        assert cites and all("@" in t or "datasets 5.2.0" in t for t in cites), fmt


@pytest.mark.parametrize("fmt", [f for f in EXPORT_FORMATS if f not in DIR_FORMATS])
def test_one_file_formats_go_to_stdout_byte_identically(cli, schedule, fmt):
    a = cli("export", schedule, "--to", fmt, *UNITS)
    b = cli("export", schedule, "--to", fmt, *UNITS, "--out", "-")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.stdout == b.stdout and a.stdout.endswith("\n") and not a.stdout.endswith("\n\n")


def test_an_online_schedule_exports_the_same_way(cli, tmp_path):
    offline, online = tmp_path / "offline.json", tmp_path / "online.json"
    offline.write_text(json.dumps(schedule_doc()), encoding="utf-8")
    online.write_text(json.dumps(schedule_doc("regmix-d-online")), encoding="utf-8")
    for fmt in EXPORT_FORMATS:
        outs = []
        for path in (offline, online):
            out = tmp_path / path.stem / fmt
            result = cli("export", path, "--to", fmt, *UNITS, "--out", out)
            assert result.exit_code == 0, (fmt, result.output)
            outs.append({k: v.replace("regmix-d-online", "regmix-d-offline")
                         for k, v in files_of(out).items()})
        assert outs[0] == outs[1], fmt


# --- units and required numbers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "args", "line"),
    [
        ("megatron", (), "Error: --to megatron needs --batch-size (sequences per step, for "
         "--global-batch-size and the sample counts of sample-based training)"),
        ("olmo-core", ("--batch-size", "8"), "Error: --to olmo-core needs --sequence-length "
         "(OLMo-core's global_batch_size and requested_tokens are in tokens)"),
        ("levanter", (), "Error: --to levanter needs --batch-size (Levanter turns a stage's "
         "start step into the sequence index step x batch size)"),
        ("llm-foundry", ("--sequence-length", "8"), "Error: --to llm-foundry needs --batch-size "
         "(curriculum durations are in tokens (tok))"),
        ("olmo-core-curriculum", ("--batch-size", "8"), "Error: --to olmo-core-curriculum needs "
         "--sequence-length (stage sizes are in instances and OLMo-core's global_batch_size in "
         "tokens)"),
        ("hf", (), "Error: --to hf needs --batch-size (each stage's length is given in samples)"),
        ("hf", ("--batch-size", "0"), "Error: --batch-size 0: give a positive integer"),
        ("levanter", ("--batch-size", "4", "--mixture-block-size", "0"),
         "Error: --mixture-block-size 0: give a positive integer"),
    ],
)
def test_a_missing_number_is_a_usage_error_naming_the_option(cli, schedule, tmp_path, fmt, args,
                                                             line):
    out = tmp_path / "out"
    result = cli("export", schedule, "--to", fmt, *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert result.stderr == line + "\n"
    assert result.stdout == "" and not out.exists()


def test_levanter_snaps_stage_starts_to_mixture_blocks_and_says_so(cli, schedule):
    result = cli("export", schedule, "--to", "levanter", "--batch-size", "512")
    assert result.exit_code == 0, result.output
    assert "train_weights:\n  - [0, " in result.stdout and "  - [4168, " in result.stdout
    assert result.stderr.splitlines()[0] == (
        "levanter: stage 1 starts at step 4168, not 4167 (+1 steps): Levanter needs step x "
        "--batch-size 512 to be a multiple of --mixture-block-size 2048")
    assert "stage 2" not in result.stderr  # 12500 x 512 is already a multiple of 2048
    exact = cli("export", schedule, "--to", "levanter", "--batch-size", "2048")
    assert exact.exit_code == 0 and exact.stderr == "" and "  - [4167, " in exact.stdout
    # Every start (times the batch) lands on a block boundary.
    for batch, block in ((256, 2048), (1024, 2048), (3, 4096), (512, 64)):
        got = cli("export", schedule, "--to", "levanter", "--batch-size", str(batch),
                  "--mixture-block-size", str(block))
        assert got.exit_code == 0, got.output
        starts = [int(line.split("[")[1].split(",")[0]) for line in got.stdout.splitlines()
                  if line.startswith("  - [")]
        assert starts[0] == 0 and all(s * batch % block == 0 for s in starts), (batch, starts)
        assert starts == sorted(set(starts))


def test_levanter_blocks_too_coarse_for_the_stages_are_a_usage_error(cli, schedule):
    result = cli("export", schedule, "--to", "levanter", "--batch-size", "1",
                 "--mixture-block-size", "30000")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --to levanter: stage 1 (step 4167) has no start step of its own that is a "
        "multiple of 30000 steps (--mixture-block-size 30000 sequences, --batch-size 1); give "
        "a smaller --mixture-block-size\n")


def test_llm_foundry_durations_sum_to_max_duration_in_tokens(cli, schedule):
    result = cli("export", schedule, "--to", "llm-foundry", *UNITS)
    assert result.exit_code == 0, result.output
    durations = [int(line.split('"')[1].removesuffix("tok")) for line in result.stdout.splitlines()
                 if "duration:" in line]
    assert durations[0] == 25000 * 512 * 4096  # max_duration
    assert sum(durations[1:]) == durations[0]
    assert durations[1:] == [4167 * 512 * 4096, 8333 * 512 * 4096, 12500 * 512 * 4096]


# --- launch scripts ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_megatron_launch_script_picks_the_phase_from_the_checkpoint(cli, schedule, tmp_path):
    out = tmp_path / "megatron"
    assert cli("export", schedule, "--to", "megatron", *UNITS, *PREFIXES, "--out", out)\
        .exit_code == 0
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()

    def launch(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(out / "launch.sh"), str(ckpt), *extra, "--",
                               "printf", "%s\\n", "CMD"], capture_output=True, text=True)

    first = launch()
    assert first.returncode == 0, first.stderr
    args = first.stdout.splitlines()
    assert args[:11] == ["CMD", "--global-batch-size", "512", "--train-samples", "12800000",
                         "--lr-decay-samples", "12800000", "--phase-transition-iterations",
                         "4167,12500", "--data-path", "0.5"]
    assert args[11:] == ["/data/pile cc/doc", "0.3", "s3://b/github", "0.2", "arxiv"]
    (ckpt / "latest_checkpointed_iteration.txt").write_text("4167\n")
    second = launch()
    assert second.stdout.splitlines()[:9] == args[:9]  # identical except --data-path
    assert second.stdout.splitlines()[9:] == ["--data-path", "0.6", "/data/pile cc/doc", "0.4",
                                              "s3://b/github"]
    assert "phase 1" in second.stderr
    legacy = launch("--legacy")
    assert legacy.stdout.splitlines()[1:9] == [
        "--global-batch-size", "512", "--train-iters", "12500", "--lr-decay-iters", "25000",
        "--override-opt_param-scheduler", "--data-path"]
    (ckpt / "latest_checkpointed_iteration.txt").write_text("25000")
    done = launch()
    assert done.returncode == 0 and done.stdout == "" and "training is complete" in done.stderr


def test_nanotron_launch_builds_one_config_per_stage(cli, schedule, tmp_path):
    yaml = pytest.importorskip("yaml", reason="launch.py needs PyYAML, a nanotron dependency")
    out = tmp_path / "nanotron"
    assert cli("export", schedule, "--to", "nanotron", *PREFIXES, "--out", out).exit_code == 0
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({
        "checkpoints": {"checkpoints_path": "/ckpt", "checkpoint_interval": 1000},
        "optimizer": {"learning_rate_scheduler": {"learning_rate": 3e-4, "lr_warmup_steps": 500}},
        "tokens": {"train_steps": 1, "sequence_length": 4096},
        "data_stages": [{"name": "user", "start_training_step": 1, "data": {}}],
    }))
    for stage, end in enumerate((4167, 12500, 25000)):
        merged = tmp_path / f"run_{stage}.yaml"
        subprocess.run([sys.executable, str(out / "launch.py"), str(stage), str(base),
                        str(merged)], check=True)
        config = yaml.safe_load(merged.read_text())
        assert config["tokens"] == {"train_steps": end, "sequence_length": 4096}
        assert config["checkpoints"]["resume_checkpoint_path"] == "/ckpt"
        assert config["optimizer"]["learning_rate_scheduler"]["lr_decay_steps"] == 25000 - 500
        stages = config["data_stages"]
        assert [s["start_training_step"] for s in stages] == [1, 4168, 12501][: stage + 1]
        assert stages[0]["data"]["dataset"] == {
            "dataset_folder": ["/data/pile cc/doc", "s3://b/github", "arxiv"],
            "dataset_weights": [0.5, 0.3, 0.2]}
    assert stages[2]["data"]["dataset"]["dataset_weights"] == [0.999999, 0.000001]


def test_olmo_core_requests_tokens_up_to_each_stage_end(cli, schedule, tmp_path):
    yaml = pytest.importorskip("yaml", reason="reads the YAML back")
    out = tmp_path / "olmo"
    assert cli("export", schedule, "--to", "olmo-core", *UNITS, "--out", out).exit_code == 0
    for i, end in enumerate((4167, 12500, 25000)):
        doc = yaml.safe_load((out / f"stage_{i}.yaml").read_text())
        mix = doc["source_mixture_config"]
        assert mix["global_batch_size"] == doc["data_loader"]["global_batch_size"] == 512 * 4096
        assert mix["requested_tokens"] == end * 512 * 4096
        assert doc["data_loader"]["ignore_fingerprint_mismatch"] is True
        assert doc["max_duration"] == {"value": end, "unit": "steps"}
        assert sum(s["target_ratio"] for s in mix["source_list"]["sources"]) == \
            pytest.approx(1.0)


def test_hf_stages_drop_zero_weights_and_count_samples(cli, schedule):
    result = cli("export", schedule, "--to", "hf", "--batch-size", "8")
    doc = json.loads(result.stdout)
    assert doc["format"] == "regmixd.export.hf/v2" and doc["batch_size"] == 8
    assert [(s["datasets"], s["samples"]) for s in doc["stages"]] == [
        (["pile_cc", "github", "arxiv"], 4167 * 8), (["pile_cc", "github"], 8333 * 8),
        (["pile_cc", "github"], 12500 * 8)]
    assert doc["stages"][2]["probabilities"] == [0.999999, 0.000001]


def test_csv_has_one_row_per_stage_and_needs_no_units(cli, schedule):
    result = cli("export", schedule, "--to", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["start_step"] for r in rows] == ["0", "4167", "12500"]
    assert rows[0]["pile_cc"] == "0.5" and rows[2]["predicted_loss"] == ""


# --- outputs: never partial, never someone else's ------------------------------------------


@pytest.mark.parametrize("fmt", DIR_FORMATS)
def test_launch_formats_need_an_output_directory(cli, schedule, fmt):
    for extra in ((), ("--out", "-")):
        result = cli("export", schedule, "--to", fmt, *UNITS, *extra)
        assert result.exit_code == 2
        assert result.stderr == f"Error: --to {fmt} writes one file per launch; give --out DIR\n"
        assert result.stdout == ""


def test_the_output_may_not_be_the_input(cli, schedule):
    before = schedule.read_bytes()
    for fmt, out in (("csv", schedule), ("megatron", schedule.parent)):
        result = cli("export", schedule, "--to", fmt, *UNITS, "--out", out)
        assert result.exit_code == 2, result.output
        assert result.stderr == (f"Error: --out {out} would overwrite the schedule {schedule}; "
                                 "choose another path\n")
    assert schedule.read_bytes() == before


def test_a_file_regmixd_did_not_write_is_never_overwritten(cli, schedule, tmp_path):
    mine = tmp_path / "notes.yaml"
    mine.write_text("my own config\n")
    result = cli("export", schedule, "--to", "levanter", "--batch-size", "2048", "--out", mine)
    assert result.exit_code == 3
    assert result.stderr == f"Error: {mine}: exists and is not a regmixd export; choose another " \
        "--out\n"
    assert mine.read_text() == "my own config\n"
    # An earlier export is replaced.
    ours = tmp_path / "levanter.yaml"
    for batch in ("2048", "4096"):
        result = cli("export", schedule, "--to", "levanter", "--batch-size", batch, "--out", ours)
        assert result.exit_code == 0, result.output
    assert "train_batch_size: 4096" in ours.read_text()


def test_a_directory_regmixd_did_not_write_is_never_replaced(cli, schedule, tmp_path):
    theirs = tmp_path / "run"
    theirs.mkdir()
    (theirs / "checkpoint.pt").write_text("weights")
    result = cli("export", schedule, "--to", "megatron", *UNITS, "--out", theirs)
    assert result.exit_code == 3
    assert result.stderr == f"Error: {theirs}: a directory that `regmixd export` did not write; " \
        "choose another --out (or an empty directory)\n"
    assert [p.name for p in theirs.iterdir()] == ["checkpoint.pt"]
    # Empty: filled. Ours: replaced whole (no stale phase files left behind).
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("export", schedule, "--to", "nanotron", "--out", empty).exit_code == 0
    assert (empty / MANIFEST).is_file() and (empty / "stage_2.yaml").is_file()
    static = tmp_path / "static.json"
    doc = schedule_doc()
    doc["stages"] = [{**doc["stages"][0], "end_step": 25000, "end_fraction": 1.0}]
    static.write_text(json.dumps(doc))
    assert cli("export", static, "--to", "nanotron", "--out", empty).exit_code == 0
    assert sorted(p.name for p in empty.iterdir()) == ["launch.py", MANIFEST, "stage_0.yaml"]


def test_a_failed_export_leaves_nothing_behind(cli, schedule, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    for fmt in ("levanter", "megatron", "olmo-core"):
        result = cli("export", schedule, "--to", fmt, "--out", tmp_path / f"x-{fmt}")
        assert result.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unknown_format_and_bad_prefix_are_usage_errors(cli, schedule):
    result = cli("export", schedule, "--to", "deepspeed")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --to 'deepspeed': unknown format; choose one of "
                             f"{', '.join(EXPORT_FORMATS)}\n")
    for item, message in (("pile_cc", "expected DOMAIN=PATH"),
                          ("books=/x", "unknown domain 'books'; the schedule has pile_cc, "
                           "github, arxiv"), ("=/x", "expected DOMAIN=PATH")):
        result = cli("export", schedule, "--to", "csv", "--prefix", item)
        assert result.exit_code == 2
        assert result.stderr == f"Error: --prefix {item!r}: {message}\n"


def test_a_bad_schedule_is_an_input_error_before_any_option_check(cli, tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"schema_version": "regmixd.schedule/v0"}))
    result = cli("export", bad, "--to", "megatron")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: {bad}: schedule schema 'regmixd.schedule/v0'")
