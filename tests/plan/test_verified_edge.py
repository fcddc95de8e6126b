"""The measured plan (report.verification.best) through the CLI, at its edges: hand-edited
reports, run names, online schedule files."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.plan.guard import VERIFIED
from tests.plan.test_verified import FAST, _trusting_nothing, _with_report, two_rounds

__all__ = ["two_rounds"]  # the module-scoped fixture, built once for this module too


def _edited_best(two_rounds, tmp_path, edit):
    """The two-round model trusting nothing, its best run passed through `edit`."""
    trusting, report = _trusting_nothing(two_rounds, tmp_path / "trusting")
    best = edit(dict(report["verification"]["best"]))
    return _with_report(trusting, tmp_path / "edited",
                        verification=report["verification"] | {"best": best}), best


def test_weights_a_little_off_one_are_written_summing_to_exactly_one(cli, two_rounds,
                                                                     tmp_path):
    # Within the report's tolerance, but not what a schedule file may hold (nor over 1).
    def edit(best):
        return best | {"stages": [[0.3336] * 3, [1.0004, 0.0, 0.0], *best["stages"][2:]]}

    model, _ = _edited_best(two_rounds, tmp_path, edit)
    result = cli("schedule", model, "--out", tmp_path / "s.json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["provenance"]["guard"]["decision"] == VERIFIED
    weights = [[s["weights"][d] for d in doc["domains"]] for s in doc["stages"]]
    assert all(sum(w) == pytest.approx(1.0, abs=1e-9) and max(w) <= 1 for w in weights)
    assert weights[:2] == [[0.333334, 0.333333, 0.333333], [1.0, 0.0, 0.0]]
    assert cli("show", tmp_path / "s.json").exit_code == 0
    export = cli("export", tmp_path / "s.json", "--to", "csv", "--out", tmp_path / "s.csv")
    assert export.exit_code == 0, export.output


@pytest.mark.parametrize("run", ["v[/]", "v[/bold]x[red]"])
def test_a_run_name_that_looks_like_markup_is_shown_as_is(cli, two_rounds, tmp_path, run):
    verification = json.loads((two_rounds / "model" / "model.json").read_text())[
        "report"]["verification"]
    model = _with_report(two_rounds / "model", tmp_path / "m",
                         verification=verification | {"best": verification["best"] | {"run": run}})
    result = cli("show", model)
    assert result.exit_code == 0, result.output
    assert f"ended lowest: {run}" in result.stdout


def test_online_schedule_file_names_the_verified_run(cli, two_rounds, tmp_path):
    model, report = _trusting_nothing(two_rounds, tmp_path / "m")
    best = report["verification"]["best"]
    log = tmp_path / "train.jsonl"
    log.write_text("".join(json.dumps({"step": s, report["target"]: 7.0 - s / 2000}) + "\n"
                           for s in range(0, 6001, 500)))
    result = cli("online", model, "--follow", log, "--target-steps", "6000", "--timeout", "0.5",
                 "--poll", "0.1", "--out-schedule", tmp_path / "o.json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["provenance"]["guard"]["decision"] == VERIFIED
    assert doc["provenance"]["verified_run"] == best["run"]
    domains = doc["domains"]
    assert [[s["weights"][d] for d in domains] for s in doc["stages"]] == best["stages"]


@pytest.mark.parametrize("width", [2, 4])
def test_a_best_run_over_other_domains_is_ignored_by_every_command(cli, two_rounds, tmp_path,
                                                                   width):
    model, _ = _edited_best(two_rounds, tmp_path,
                            lambda best: best | {"stages": [[1 / width] * width] * 6})
    compared = cli("compare", model, "static", "offline", "--candidates", "2000", "--json")
    assert compared.exit_code == 0, compared.output
    assert [row["decision"] for row in json.loads(compared.stdout)["guard"]] != [VERIFIED]
    scheduled = cli("schedule", model, "--json", *FAST)
    assert scheduled.exit_code == 0, scheduled.output
    assert json.loads(scheduled.stdout)["provenance"]["guard"]["decision"] != VERIFIED


def _history_model(cli, two_rounds, where):
    """The two-round store fitted with the per-stage-history form."""
    fitted = cli("fit", two_rounds / "store", "--out", where, "--model", "per-stage-history",
                 "--verify-prefix", "v", "--max-rounds", "60", "--folds", "3")
    assert fitted.exit_code == 0, fitted.output
    return where


def test_compare_rolls_a_per_stage_history_plan_out_as_schedule_does(cli, two_rounds,
                                                                     tmp_path):
    # The guard's evidence in one compare row (judge's rollout, weigh_verified's rollout)
    # and compare's table must score a plan as `schedule` predicted it.
    model = _history_model(cli, two_rounds, tmp_path / "history")
    result = cli("schedule", model, "--force-dynamic", "--out", tmp_path / "s.json", *FAST)
    assert result.exit_code == 0, result.output
    predicted = [s["predicted_loss"] for s in
                 json.loads((tmp_path / "s.json").read_text())["stages"]]
    compared = cli("compare", model, tmp_path / "s.json", "static", "--candidates", "2000",
                   "--json")
    assert compared.exit_code == 0, compared.output
    doc = json.loads(compared.stdout)
    item = next(i for i in doc["items"] if i["item"].endswith("s.json"))
    assert [p["loss"] for p in item["points"]] == pytest.approx(predicted, abs=1e-6)
    guard = doc["guard"][0]["evidence"]
    assert guard["dynamic_predicted"] == pytest.approx(predicted[-1], abs=1e-6)
    assert guard["verified_run"]["chosen_predicted"] == guard["dynamic_predicted"]


def test_online_predicts_a_held_per_stage_history_plan_as_schedule_does(cli, two_rounds,
                                                                        tmp_path):
    fitted = _history_model(cli, two_rounds, tmp_path / "history")
    document = json.loads((fitted / "model.json").read_text())
    rollout = document["report"]["endpoint"]["rollout"]
    model = _with_report(fitted, tmp_path / "m", endpoint=document["report"]["endpoint"] | {
        "rollout": rollout | {"per-stage-history": rollout["per-stage-history"] | {"mae": 50.0}}})
    result = cli("schedule", model, "--target-steps", "6000", "--out", tmp_path / "s.json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["provenance"]["guard"]["decision"] == VERIFIED
    assert len(doc["stages"]) == 6  # a plan that changes: the history matters
    for j in (2, 3):  # observed exactly what schedule predicted at S_j: the same next loss
        steer = cli("online", model, "--step", str(1000 * j), "--loss",
                    str(doc["stages"][j - 1]["predicted_loss"]), "--param-ratio", "1",
                    "--target-steps", "6000", "--json", *FAST)
        assert steer.exit_code == 0, steer.output
        decision = json.loads(steer.stdout)
        assert decision["switch"] == j
        assert decision["predicted_loss"] == pytest.approx(doc["stages"][j]["predicted_loss"],
                                                           abs=1e-5)
