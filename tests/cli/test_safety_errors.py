"""User-caused conditions end in one `Error:` line with the right exit code, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.helpers.cli import SAMPLE_FIT, fails
from tests.helpers.paths import PROXY_PRIOR, ROOT


@pytest.mark.parametrize("command", [
    ("schedule", "{model}", "--out", "{tmp}/s.json"),
    ("online", "{model}", "--step", "100", "--loss", "3", "--target-steps", "1000"),
    ("fit", "{store}", "--out", "{tmp}/m"),
    ("design", "--static", "--prior", str(PROXY_PRIOR), "--runs", "4", "--out", "{tmp}/d.csv"),
    ("simulate", "--runs", "4", "--domains", "3", "--out", "{tmp}/sim"),
    ("run", str(ROOT / "sample_logs" / "proxies"), "--out", "{tmp}/run"),
])
@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_out_of_range_is_a_usage_error(cli, fitted, tmp_path, command, seed):
    store, model, _schedule = fitted
    args = [a.format(model=model, store=store, tmp=tmp_path) for a in command]
    fails(cli(*args, "--seed", seed), 2, "--seed")


@pytest.mark.parametrize("alpha", ["1e300", "1e-300", "0", "nan"])
def test_extreme_alpha_is_a_usage_error(cli, fitted, tmp_path, alpha):
    _store, model, _schedule = fitted
    fails(cli("schedule", model, "--out", tmp_path / "s.json", "--alpha", alpha), 2, "--alpha")
    fails(cli("online", model, "--step", "100", "--loss", "3", "--target-steps", "1000",
              "--alpha", alpha), 2, "--alpha")


def test_extreme_beta_is_a_usage_error(cli, fitted):
    _store, model, _schedule = fitted
    fails(cli("online", model, "--step", "100", "--loss", "3", "--target-steps", "1000",
              "--beta", "1e300"), 2, "--beta")


def test_a_deeply_nested_toml_is_bad_input(cli, fitted, tmp_path):
    _store, model, _schedule = fitted
    deep = tmp_path / "c.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    fails(cli("schedule", model, "--out", tmp_path / "s.json", "--constraints", deep), 3,
          "nested too deeply")


def _edited(model, tmp_path, edit):
    copy = tmp_path / "edited"
    shutil.copytree(model, copy)
    document = json.loads((copy / "model.json").read_text())
    edit(document)
    (copy / "model.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    return copy


@pytest.mark.parametrize("edit", [
    lambda d: d.update(domains=list(reversed(d["domains"]))),
    lambda d: d.update(prior={k: -v if i == 0 else v for i, (k, v) in
                              enumerate(d["prior"].items())}),
    lambda d: d.update(prior=dict.fromkeys(d["prior"], 0.0)),
    lambda d: d.update(proxy_steps=0),
], ids=["renamed-domains", "negative-prior", "zero-prior", "zero-proxy-steps"])
def test_an_edited_model_is_a_model_error(cli, fitted, tmp_path, edit):
    _store, model, _schedule = fitted
    copy = _edited(model, tmp_path, edit)
    fails(cli("schedule", copy, "--out", tmp_path / "s.json"), 4, "model.json")
    fails(cli("online", copy, "--step", "100", "--loss", "3", "--target-steps", "1000"), 4)


def test_a_schedule_given_as_the_model_says_what_it_is(cli, fitted, tmp_path):
    _store, model, schedule = fitted
    fails(cli("schedule", schedule, "--out", tmp_path / "s.json"), 4, "a schedule file")
    fails(cli("schedule", model / "model.json", "--out", tmp_path / "s.json"), 4,
          "give the model directory")


def test_design_refuses_a_huge_run_count_up_front(cli, tmp_path):
    fails(cli("design", "--static", "--prior", PROXY_PRIOR, "--runs", "100000000", "--out",
              tmp_path / "d.csv"), 2, "--runs 100000000")


def test_follow_on_a_directory_is_bad_input(cli, fitted, tmp_path):
    _store, model, _schedule = fitted
    fails(cli("online", model, "--follow", tmp_path, "--target-steps", "1000"), 3,
          "is a directory")


def test_error_lines_escape_newlines_and_cut_huge_values(cli, fitted, tmp_path):
    store, _model, _schedule = fitted
    result = cli("fit", store, "--out", tmp_path / "m", "--target", "bad\nname", *SAMPLE_FIT)
    assert result.exit_code in (2, 3), result.output
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert "bad\\nname" in result.stderr
    huge = "x" * 1_000_000
    result = cli("fit", store, "--out", tmp_path / "m", "--target", huge, *SAMPLE_FIT)
    assert result.exit_code in (2, 3), result.output
    assert len(result.stderr) < 2000 and "characters cut" in result.stderr


def test_a_closed_stdout_pipe_exits_quietly(fitted):
    _store, model, _schedule = fitted
    command = f"{sys.executable} -m regmixd_cli show {model} | head -c1 >/dev/null; " \
              "echo ${PIPESTATUS[0]}"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "0", done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr


def test_a_weak_fit_is_warned_in_fit_and_schedule(cli, tmp_path):
    log = tmp_path / "log.jsonl"
    lines = []
    for i in range(12):  # identical runs: nothing to rank
        run = f"r{i}"
        lines.append(json.dumps({"run": run, "mixture": {"a": 0.5, "b": 0.5}}))
        lines += [json.dumps({"run": run, "step": s, "val": 5 - s / 1000}) for s in
                  range(100, 1001, 100)]
    log.write_text("\n".join(lines) + "\n")
    assert cli("ingest", log, "--out", tmp_path / "s").exit_code == 0
    result = cli("fit", tmp_path / "s", "--out", tmp_path / "m", "--switch-points", "2",
                 *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    assert "weak fit" in result.stderr
    result = cli("schedule", tmp_path / "m", "--out", tmp_path / "x.json", "--candidates",
                 "500")
    assert "weak fit" in result.stderr
