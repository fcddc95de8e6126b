"""The guard: `schedule` gives static RegMix unless the evidence backs the schedule."""

from __future__ import annotations

import json
import shutil

import pytest

from regmixd_cli.fit.files import METADATA_HASH, metadata_hash
from regmixd_cli.plan.guard import (
    DYNAMIC,
    FORCED,
    GUARD_K,
    STATIC,
    Evidence,
    evidence_from_report,
    judge,
)

FAST = ("--candidates", "2000", "--top-k", "16")


def _with_report(model, tmp_path, **changes):
    """A copy of the tiny model whose report carries `changes` (nested dicts merge)."""
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    document = json.loads((copy / "model.json").read_text())
    report = document["report"]
    for key, value in changes.items():
        report[key] = value
    # The model carries a hash of its own metadata; re-seal it as `fit` would have.
    document[METADATA_HASH] = metadata_hash(document)
    (copy / "model.json").write_text(json.dumps(document))
    return copy


def test_judge_keeps_a_credible_advantage_and_refuses_the_rest():
    evidence = Evidence(rollout_mae=0.05, rollout_spearman=0.95)
    assert judge(4.80 - 2 * GUARD_K * 0.05, 4.80, evidence).decision == DYNAMIC
    small = judge(4.80 - 0.5 * GUARD_K * 0.05, 4.80, evidence)
    assert small.decision == STATIC and small.threshold == pytest.approx(GUARD_K * 0.05)
    assert judge(4.90, 4.80, evidence).decision == STATIC  # predicted worse than static
    poor_rank = Evidence(rollout_mae=0.001, rollout_spearman=0.2)
    assert judge(4.0, 4.8, poor_rank).decision == STATIC
    forced = judge(4.80 - 0.5 * GUARD_K * 0.05, 4.80, evidence, force=True)
    assert forced.decision == FORCED and forced.keep_dynamic
    assert forced.record()["evidence"]["rollout_mae"] == 0.05


def test_after_change_error_and_verification_runs_are_used_when_present():
    report = {
        "endpoint": {"rollout": {"pooled": {"mae": 0.01, "spearman": 0.99}}},
        "after_change": {"pooled": {"mae": 0.2}},
    }
    evidence = evidence_from_report(report, "pooled")
    assert evidence.after_change_mae == 0.2
    advantage = 0.5 * GUARD_K * 0.2  # beats k x the static-run error 0.01, not k x 0.2
    verdict = judge(4.80 - advantage, 4.80, evidence)
    assert verdict.decision == STATIC and verdict.threshold == pytest.approx(GUARD_K * 0.2)
    report["verification"] = {"dynamic": 4.60, "static": 4.80, "sd": 0.02}
    assert judge(4.79, 4.80, evidence_from_report(report, "pooled")).decision == DYNAMIC
    report["verification"] = {"dynamic": 4.79, "static": 4.80, "sd": 0.02}
    assert judge(4.0, 4.80, evidence_from_report(report, "pooled")).decision == STATIC


def test_schedule_returns_static_when_the_model_sees_no_advantage(cli, tiny_model, tmp_path):
    # The tiny model's trees cannot tell its schedule from static RegMix: same predicted loss.
    out = tmp_path / "s.json"
    result = cli("schedule", tiny_model, "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["method"] == "regmix-static" and len(doc["stages"]) == 1
    guard = doc["provenance"]["guard"]
    assert guard["decision"] == STATIC and guard["predicted_advantage"] <= 1e-6
    assert {"rollout_mae", "dynamic_predicted", "static_predicted"} <= set(guard["evidence"])
    assert "guard" in result.stderr and "--force-dynamic" in result.stderr
    static = json.loads(cli("schedule", tiny_model, "--static", "--json", *FAST).stdout)
    assert doc["stages"][0]["weights"] == static["stages"][0]["weights"]
    # The file reads back as a schedule (schema v1 with the optional provenance.guard).
    assert cli("show", out).exit_code == 0

    forced = tmp_path / "f.json"
    result = cli("schedule", tiny_model, "--out", forced, "--force-dynamic", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(forced.read_text())
    assert doc["method"] == "regmix-d-offline" and len(doc["stages"]) > 1
    assert doc["provenance"]["guard"]["decision"] == FORCED
    assert cli("schedule", tiny_model, "--static", "--force-dynamic", "--json").exit_code == 2


def test_terrible_held_out_error_blocks_and_verification_runs_unblock(cli, tiny_model, tmp_path):
    form = json.loads((tiny_model / "model.json").read_text())["form"]
    bad = _with_report(
        tiny_model, tmp_path / "bad", endpoint={"rollout": {form: {"mae": 5.0, "spearman": 0.1}}}
    )
    doc = json.loads(cli("schedule", bad, "--json", *FAST).stdout)
    assert doc["method"] == "regmix-static"
    assert doc["provenance"]["guard"]["decision"] == STATIC
    verified = _with_report(
        tiny_model, tmp_path / "ok", verification={"dynamic": 3.0, "static": 3.4, "sd": 0.01}
    )
    result = cli("schedule", verified, "--json", *FAST)
    doc = json.loads(result.stdout)
    assert doc["method"] == "regmix-d-offline"
    assert doc["provenance"]["guard"]["decision"] == DYNAMIC
    assert "verification runs" in doc["provenance"]["guard"]["reason"]


def test_compare_shows_the_guard_evidence(cli, tiny_model):
    result = cli("compare", tiny_model, "static", "offline", "--candidates", "500")
    assert result.exit_code == 0, result.output
    assert "guard: offline vs static: " in result.stdout
    data = json.loads(
        cli("compare", tiny_model, "static", "offline", "--candidates", "500", "--json").stdout
    )
    (row,) = data["guard"]
    assert row["item"] == "offline" and row["against"] == "static" and "evidence" in row
    assert f"({row['reason']})" in result.stdout  # the words `schedule` prints
