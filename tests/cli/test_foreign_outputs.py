"""A file output never replaces a user's file of another kind (unless `schedule --force`)."""

from __future__ import annotations

import json

from tests.helpers.cli import fails


def test_schedule_refuses_to_replace_a_file_it_did_not_write(cli, tiny_model, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    fails(cli("schedule", tiny_model, "--static", "--out", notes), 3, "not a schedule JSON")
    assert notes.read_text() == "my notes\n"
    # An earlier schedule is replaced as before; --force replaces anything.
    out = tmp_path / "s.json"
    assert cli("schedule", tiny_model, "--static", "--out", out).exit_code == 0
    assert cli("schedule", tiny_model, "--static", "--out", out, "--seed", "1").exit_code == 0
    result = cli("schedule", tiny_model, "--static", "--out", notes, "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(notes.read_text())["method"] == "regmix-static"


def test_online_design_and_plots_refuse_foreign_files(cli, tiny_model, tmp_path):
    foreign = tmp_path / "keep.json"
    foreign.write_text('{"mine": 1}\n')
    log = tmp_path / "log.jsonl"
    log.write_text("")
    fails(cli("online", tiny_model, "--follow", log, "--metric", "val", "--target-steps", "600",
              "--state", foreign, "--timeout", "0.1"), 3, "not a regmixd online state file")
    fails(cli("online", tiny_model, "--follow", log, "--metric", "val", "--target-steps", "600",
              "--out-schedule", foreign, "--timeout", "0.1"), 3, "not a schedule JSON")
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    fails(cli("design", "--refine", tiny_model, "--runs", "4", "--proxy-steps", "600",
              "--prefix", "v", "--out", text), 3, "not a design file")
    assert foreign.read_text() == '{"mine": 1}\n' and text.read_text() == "hello\n"
