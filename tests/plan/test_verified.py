"""A measured plan beats a predicted one: the best measured run's plan competes with the
guard's choice (plan.guard.weigh_verified), in `schedule` and `online`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from regmixd_cli.fit.files import METADATA_HASH, metadata_hash
from regmixd_cli.plan.guard import (
    DYNAMIC,
    FORCED,
    STATIC,
    VERIFIED,
    Verdict,
    VerifiedRun,
    evidence_from_report,
    weigh_verified,
)
from tests.helpers.cli import Invoker

FIT = ("--max-rounds", "60", "--folds", "3")
FAST = ("--candidates", "2000", "--top-k", "16")


class Linear:
    """A model whose every interval lowers the loss by 0.1 x the first domain's weight."""

    initial_state = 5.0
    n_switch_points = 2
    form = "pooled"
    grid = (1.0, 2.0, 3.0)

    def predict_state(self, stage, mixtures, state, history=None):
        return state - 0.1 * np.asarray(mixtures)[:, 0]

    def objective_of(self, state):
        return state

    def predict_endpoint(self, mixtures):
        return 5.0 - np.asarray(mixtures)[:, 0]


def _verdict(decision: str, threshold: float = 0.05) -> Verdict:
    return Verdict(decision, 0.0, threshold, "the guard's reason", {"rollout_mae": 0.25})


def test_the_run_is_handed_out_unless_the_model_credibly_beats_it():
    model = Linear()
    chosen = [(0.5, 0.5), (1.0, 0.0), (1.0, 0.0)]  # rollout 5 - 0.2 = 4.8
    close = VerifiedRun("vd001", 4.7, ((0.5, 0.5), (0.9, 0.1), (0.9, 0.1)))  # rollout 4.82
    verdict = weigh_verified(_verdict(DYNAMIC), chosen, close, model)
    assert verdict.decision == VERIFIED and not verdict.keep_dynamic
    seen = verdict.evidence["verified_run"]
    assert seen["run"] == "vd001" and seen["observed"] == 4.7 and seen["scored_by"] == "rollout"
    assert seen["predicted"] == pytest.approx(4.82) and seen["chosen_predicted"] == 4.8
    assert "rollout_mae" in verdict.evidence  # the guard's own evidence is kept
    far = VerifiedRun("vs003", 4.7, ((0.0, 1.0),) * 3)  # rollout 5.0: 0.2 worse than chosen
    kept = weigh_verified(_verdict(DYNAMIC), chosen, far, model)
    assert kept.decision == DYNAMIC and "kept over the best measured run vs003" in kept.reason
    # The chosen plan IS the run's plan: nothing to weigh.
    same = VerifiedRun("vd002", 4.7, tuple(chosen))
    assert weigh_verified(_verdict(DYNAMIC), chosen, same, model).decision == DYNAMIC
    # A forced verdict stays forced; a plan of another length is not comparable.
    assert weigh_verified(_verdict(FORCED), chosen, close, model).decision == FORCED
    assert weigh_verified(_verdict(DYNAMIC), chosen[:2], close, model).decision == DYNAMIC


def test_two_static_plans_are_ranked_by_the_endpoint_model_as_regmix_is():
    model = Linear()
    static = [(0.6, 0.4)] * 3  # endpoint 4.4
    better = VerifiedRun("vs001", 4.9, ((0.62, 0.38),) * 3)  # endpoint 4.38: within threshold
    verdict = weigh_verified(_verdict(STATIC), static, better, model)
    assert verdict.decision == VERIFIED
    assert verdict.evidence["verified_run"]["scored_by"] == "endpoint model"
    worse = VerifiedRun("vs002", 4.1, ((0.2, 0.8),) * 3)  # endpoint 4.8: 0.4 above static
    assert weigh_verified(_verdict(STATIC), static, worse, model).decision == STATIC


@pytest.mark.parametrize("best", [
    {"run": "v1", "loss": "low", "stages": [[0.5, 0.5]]},
    {"run": "v1", "loss": 4.0, "stages": [[0.5, 0.6]]},
    {"run": "v1", "loss": 4.0, "stages": [[1.5, -0.5]]},
    {"run": "v1", "loss": 4.0, "stages": [[0.5, 0.5], [1.0]]},
    {"run": "v1", "loss": 4.0, "stages": []},
    {"run": 3, "loss": 4.0, "stages": [[0.5, 0.5]]},
    "v1",
])
def test_a_hand_edited_best_run_is_ignored_not_fatal(best):
    report = {"verification": {"dynamic": 4.0, "static": 4.1, "sd": 0.01, "best": best}}
    evidence = evidence_from_report(report, "pooled")
    assert evidence.verification is not None and evidence.best_verified is None


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    """simulate -> ingest -> fit -> design --refine -> simulate --world -> ingest --append ->
    fit --verify-prefix v: a model whose report names its best measured run."""
    cli, root = Invoker(), tmp_path_factory.mktemp("verified")
    store, first = root / "store", root / "w1"

    def ok(*args):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)

    ok("simulate", "--runs", "36", "--domains", "3", "--seed", "5", "--out", first)
    ok("ingest", first / "logs", "--out", store)
    ok("fit", store, "--out", root / "m1", *FIT)
    ok("design", "--refine", root / "m1", "--runs", "8", "--proxy-steps", "1000",
       "--prefix", "v", "--out", root / "v.csv", "--seed", "1")
    ok("simulate", "--mixtures", root / "v.csv", "--world", first / "world.json", "--seed", "6",
       "--out", root / "w2")
    ok("ingest", root / "w2" / "logs", "--out", store, "--append")
    ok("fit", store, "--out", root / "model", "--verify-prefix", "v", *FIT)
    return root


def _with_report(model, where, **changes):
    """A copy of `model` whose report carries `changes` (re-sealed as `fit` would)."""
    shutil.copytree(model, where)
    document = json.loads((where / "model.json").read_text())
    document["report"] |= changes
    document[METADATA_HASH] = metadata_hash(document)
    (where / "model.json").write_text(json.dumps(document))
    return where


def _final_losses(root, target):
    """Every run's last logged value of the target, from the simulated logs of both rounds."""
    finals: dict[str, tuple[int, float]] = {}
    for log in sorted([*(root / "w1" / "logs").glob("*.jsonl"),
                       *(root / "w2" / "logs").glob("*.jsonl")]):
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if target in row and row["step"] >= finals.get(row["run"], (-1, 0.0))[0]:
                finals[row["run"]] = (row["step"], row[target])
    return {run: value for run, (_, value) in finals.items()}


def test_fit_names_the_run_of_the_store_that_ended_lowest(two_rounds):
    document = json.loads((two_rounds / "model" / "model.json").read_text())
    best = document["report"]["verification"]["best"]
    assert len(best["stages"]) == 6  # [0, t_1) .. [t_5, T_p)
    assert all(len(w) == 3 and abs(sum(w) - 1) < 1e-9 for w in best["stages"])
    finals = _final_losses(two_rounds, document["target"])
    assert len(finals) == 36 + 8  # round one's proxies and the verification runs compete
    assert best["run"] == min(finals, key=finals.get)
    assert best["loss"] == pytest.approx(finals[best["run"]], abs=1e-6)


def test_only_runs_that_switch_on_grid_points_are_measured_plans():
    import polars as pl

    from regmixd_cli.fit.transitions import phases_on_grid

    phases = pl.DataFrame({"run": ["a", "b", "b", "c", "c", "d", "d"],
                           "start_step": [0, 0, 167, 0, 250, 0, 600],
                           "x": [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
                           "y": [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]})
    grid = (166.66666666666666, 400.0, 600.0)
    # a: static; b: switches at step 167, within half a step of t_1; c: inside an interval;
    # d: at T_p (shapes nothing).
    on_grid, plans = phases_on_grid(phases, ["x", "y"], ["a", "b", "c", "d"], grid)
    assert on_grid.tolist() == [True, True, False, True]
    assert plans[1].tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    assert plans[3].tolist() == [[1.0, 0.0]] * 3


def _trusting_nothing(two_rounds, where):
    """The two-round model with a huge held-out error: no searched plan is credibly better
    than the run that was measured, so `schedule` must hand the run's plan out."""
    document = json.loads((two_rounds / "model" / "model.json").read_text())
    report, form = document["report"], document["form"]
    rollout = report["endpoint"]["rollout"] | {form: {"mae": 50.0, "spearman": 0.99}}
    return _with_report(two_rounds / "model", where,
                        endpoint=report["endpoint"] | {"rollout": rollout}), report


def test_schedule_hands_out_the_measured_plan_when_the_model_cannot_beat_it(
    cli, two_rounds, tmp_path
):
    model, report = _trusting_nothing(two_rounds, tmp_path / "m")
    best = report["verification"]["best"]
    result = cli("schedule", model, "--out", tmp_path / "s.json", "--target-steps", "6000",
                 *FAST)
    assert result.exit_code == 0, result.output
    assert f"plan of measured run {best['run']}" in result.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    guard = doc["provenance"]["guard"]
    assert guard["decision"] == VERIFIED and doc["provenance"]["verified_run"] == best["run"]
    assert guard["evidence"]["verified_run"]["observed"] == best["loss"]
    domains = doc["domains"]
    static = len({tuple(w) for w in best["stages"]}) == 1
    expected = best["stages"][:1] if static else best["stages"]
    assert [[s["weights"][d] for d in domains] for s in doc["stages"]] == expected
    assert doc["method"] == ("regmix-static" if static else "regmix-d-offline")
    assert doc["stages"][-1]["end_step"] == 6000
    shown = cli("show", tmp_path / "s.json")  # a valid schedule file, and it says why
    assert shown.exit_code == 0, shown.output
    assert f"guard: verified (the measured plan of run {best['run']})" in shown.stdout
    # The same model and seed, again: byte-identical.
    again = cli("schedule", model, "--out", tmp_path / "t.json", "--target-steps", "6000", *FAST)
    assert again.exit_code == 0
    assert (tmp_path / "t.json").read_bytes() == (tmp_path / "s.json").read_bytes()

    # Online steering from it holds that plan: segment 0 and every decision.
    steer = cli("online", model, "--step", "2000", "--loss", "5.5", "--target-steps", "6000",
                "--json", *FAST)
    assert steer.exit_code == 0, steer.output
    decision = json.loads(steer.stdout)
    held = best["stages"][decision["switch"]]
    assert [decision["weights"][d] for d in domains] == held
    assert "best measured run's plan" in " ".join(decision["warnings"])


def test_force_dynamic_constraints_and_static_ignore_the_verified_run(cli, two_rounds, tmp_path):
    model, _ = _trusting_nothing(two_rounds, tmp_path / "m")
    forced = json.loads(cli("schedule", model, "--force-dynamic", "--json", *FAST).stdout)
    assert forced["provenance"]["guard"]["decision"] in (FORCED, DYNAMIC)
    assert "verified_run" not in forced["provenance"]
    loose = tmp_path / "c.toml"
    loose.write_text("[schedule]\nmax_change = 2.0\n")
    constrained = json.loads(
        cli("schedule", model, "--constraints", loose, "--json", *FAST).stdout)
    assert constrained["provenance"]["guard"]["decision"] != VERIFIED
    static = json.loads(cli("schedule", model, "--static", "--json", *FAST).stdout)
    assert "guard" not in static["provenance"] and "verified_run" not in static["provenance"]


def test_a_report_without_a_best_run_schedules_as_before(cli, two_rounds, tmp_path):
    report = json.loads((two_rounds / "model" / "model.json").read_text())["report"]
    verification = {k: v for k, v in report["verification"].items() if k != "best"}
    old = _with_report(two_rounds / "model", tmp_path / "old", verification=verification)
    broken = _with_report(two_rounds / "model", tmp_path / "broken",
                          verification=verification | {"best": {"run": "v", "loss": None}})
    outputs = []
    for model in (old, broken):
        result = cli("schedule", model, "--json", *FAST)
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["provenance"]["guard"]["decision"] != VERIFIED
        doc["provenance"].pop("model")
        outputs.append(doc)
    assert outputs[0] == outputs[1]


def test_compare_shows_the_verified_run_as_evidence(cli, two_rounds, tmp_path):
    model, report = _trusting_nothing(two_rounds, tmp_path / "m")
    run = report["verification"]["best"]["run"]
    data = json.loads(cli("compare", model, "static", "offline", "--json", *FAST[:2]).stdout)
    (row,) = data["guard"]
    assert row["decision"] == VERIFIED and row["evidence"]["verified_run"]["run"] == run
    text = cli("compare", model, "static", "offline", *FAST[:2]).stdout
    assert f"not credible against the measured plan of run {run}" in text
    assert row["reason"] in text  # the guard's own words, as `schedule` prints them


def test_fit_and_show_print_what_the_runs_measured(cli, two_rounds, tmp_path):
    document = json.loads((two_rounds / "model" / "model.json").read_text())
    best = document["report"]["verification"]["best"]
    shown = cli("show", two_rounds / "model")
    assert shown.exit_code == 0, shown.output
    assert f"ended lowest: {best['run']}" in shown.stdout
    edited = _with_report(two_rounds / "model", tmp_path / "m", verification={
        "dynamic": "low", "static": None, "best": {"run": "x", "loss": [1]}})
    shown = cli("show", edited)
    assert shown.exit_code == 0 and "ended lowest: x" in shown.stdout


def test_show_reads_a_report_whose_scores_were_edited(cli, two_rounds, tmp_path):
    model, _ = _trusting_nothing(two_rounds, tmp_path / "m")  # its rollout entry has no r2
    shown = cli("show", model)
    assert shown.exit_code == 0, shown.output
    assert "50.0000" in shown.stdout
