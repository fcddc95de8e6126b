"""Proxy runs of different lengths: T_p is the length most runs reach, not the longest."""

from __future__ import annotations

import json

from tests.helpers.cli import SAMPLE_FIT, fails


def _log(path, lengths):
    lines = []
    for i, last in enumerate(lengths):
        run, a = f"r{i:02d}", (i % 7 + 1) / 8
        lines.append(json.dumps({"run": run, "mixture": {"a": a, "b": 1 - a}}))
        lines += [json.dumps({"run": run, "step": s, "val": 2 + a + 3 * (s / 100) ** -0.3})
                  for s in range(100, last + 1, 100)]
    path.write_text("\n".join(lines) + "\n")


def test_a_few_longer_runs_do_not_make_the_others_short(cli, tmp_path):
    _log(tmp_path / "log.jsonl", [1000] * 14 + [2000] * 2)
    assert cli("ingest", tmp_path / "log.jsonl", "--out", tmp_path / "s").exit_code == 0
    result = cli("fit", tmp_path / "s", "--out", tmp_path / "m", "--switch-points", "2",
                 "--json", *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["proxy_steps"] == 1000 and report["n_runs"] == 16


def test_too_few_runs_reaching_the_grid_says_which_were_short(cli, tmp_path):
    _log(tmp_path / "log.jsonl", [1000] * 4 + [500] * 3)
    assert cli("ingest", tmp_path / "log.jsonl", "--out", tmp_path / "s").exit_code == 0
    fails(cli("fit", tmp_path / "s", "--out", tmp_path / "m", *SAMPLE_FIT), 2,
          "stop before step 1000", "--intervals")
