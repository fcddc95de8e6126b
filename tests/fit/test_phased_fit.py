"""`fit` on phased stores: history features, after-change CV evidence, auto by evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regmixd_cli.fit.transitions import after_change, phase_mixtures
from tests.helpers.cli import fails

FAST = ("--max-rounds", "40", "--learning-rate", "0.2", "--switch-points", "2", "--folds", "3")


@pytest.fixture(scope="module")
def phased_store(tmp_path_factory):
    """design -> simulate -> ingest: 36 runs, half switching at steps 200 / 400 of 600."""
    from tests.helpers.cli import Invoker

    cli = Invoker()
    root = tmp_path_factory.mktemp("phased")
    prior = root / "prior.json"
    prior.write_text(json.dumps({"pile_cc": 0.5, "github": 0.3, "wikipedia_en": 0.2}))
    design = cli("design", "--prior", prior, "--runs", "36", "--proxy-steps", "600",
                 "--switch-points", "2", "--out", root / "d.csv")
    assert design.exit_code == 0, design.output
    sim = cli("simulate", "--mixtures", root / "d.csv", "--steps", "600", "--eval-every", "50",
              "--out", root / "sim")
    assert sim.exit_code == 0, sim.output
    ingest = cli("ingest", root / "sim" / "logs", "--out", root / "store")
    assert ingest.exit_code == 0, ingest.output
    return root / "store"


def test_phase_mixtures_weigh_steps():
    import polars as pl

    phases = pl.DataFrame({"run": ["a", "a", "b"], "start_step": [0, 150, 0],
                           "x": [1.0, 0.0, 0.5], "y": [0.0, 1.0, 0.5]})
    in_force, history = phase_mixtures(phases, ["x", "y"], ["a", "b"], [100.0, 200.0, 300.0])
    # run a: x until 150 -> interval [100, 200) is half x, half y
    np.testing.assert_allclose(in_force[0, :, 0], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(history[0, :, 0], [1.0, 0.75, 0.5])
    np.testing.assert_allclose(in_force[1], 0.5)
    np.testing.assert_allclose(history[1], 0.5)


def test_fit_reports_after_change_evidence_and_chooses_by_it(cli, tmp_path, phased_store):
    result = cli("fit", phased_store, "--out", tmp_path / "m", *FAST, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    evidence = report["evidence"]
    assert evidence["n_phased_runs"] == 18 and evidence["n_after_change_rows"] > 0
    forms = evidence["forms"]
    assert set(forms) == {"per-stage", "pooled", "curve-shift", "per-stage-history"}
    errors = {f: e["after_change"]["mae"] for f, e in forms.items()}
    assert all("phased_rollout" in e for e in forms.values())
    assert report["choice"]["form"] == min(errors, key=lambda f: errors[f])
    assert "after a mixture change" in report["choice"]["reason"]
    assert "warnings" not in report and "blind" not in result.stderr
    schedule = cli("schedule", tmp_path / "m", "--out", "-", "--candidates", "2000",
                   "--target-steps", "600")
    assert schedule.exit_code == 0, schedule.output


def test_every_form_fits_and_schedules(cli, tmp_path, phased_store):
    for form in ("per-stage", "pooled", "curve-shift", "per-stage-history"):
        out = tmp_path / form
        result = cli("fit", phased_store, "--out", out, *FAST, "--model", form)
        assert result.exit_code == 0, result.output
        assert json.loads((out / "model.json").read_text())["form"] == form
        schedule = cli("schedule", out, "--out", "-", "--candidates", "2000",
                       "--target-steps", "600", "--seed", "1")
        assert schedule.exit_code == 0, schedule.output
        again = cli("schedule", out, "--out", "-", "--candidates", "2000",
                    "--target-steps", "600", "--seed", "1")
        assert again.stdout == schedule.stdout


def test_verification_runs_come_first(cli, tmp_path, phased_store):
    result = cli("fit", phased_store, "--out", tmp_path / "m", *FAST, "--json",
                 "--verify-prefix", "p00")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["evidence"]["n_verification_runs"] == 10
    assert "verification runs" in report["choice"]["reason"]


def test_static_store_choice_is_blind(cli, tmp_path):
    sim = tmp_path / "sim"
    assert cli("simulate", "--runs", "30", "--domains", "3", "--steps", "600", "--eval-every",
               "50", "--out", sim).exit_code == 0
    assert cli("ingest", sim / "logs", "--out", tmp_path / "s").exit_code == 0
    result = cli("fit", tmp_path / "s", "--out", tmp_path / "m", *FAST, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "blind" in result.stderr and report["warnings"]
    assert "evidence" not in report
    forced = cli("fit", tmp_path / "s", "--out", tmp_path / "m2", *FAST, "--model", "pooled")
    assert forced.exit_code == 0 and "blind" not in forced.stderr


def test_after_change_marks_rows_whose_mixture_differs_from_the_history():
    from regmixd_cli.fit.transitions import LossTable

    in_force = np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    history = np.array([[[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]]])
    table = LossTable(("x", "y"), "v", (1.0, 2.0, 3.0), ("a",), np.array([[1.0, 0.0]]),
                      np.zeros((1, 3)), (), (), False, False, in_force, history)
    assert after_change(table).tolist() == [[False, True]]


def test_unknown_form_is_a_usage_error(cli, tmp_path, phased_store):
    fails(cli("fit", phased_store, "--out", tmp_path / "m", *FAST, "--model", "nope"), 2,
          "per-stage-history")


def test_online_steers_per_stage_history_from_what_the_run_trained_on(cli, tmp_path,
                                                                      phased_store):
    """The per-stage-history form reads the run's history: online, that is segment 0 and the
    decisions so far, so a run that reports the losses the offline schedule predicted gets the
    offline schedule's mixture at EVERY switch point (not only the first)."""
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.online.controller import OnlineController
    from regmixd_cli.plan.schedule import build_schedule
    from regmixd_cli.plan.search import SearchConfig
    from regmixd_cli.weights import Prior

    out = tmp_path / "m"
    assert cli("fit", phased_store, "--out", out, *FAST, "--model",
               "per-stage-history").exit_code == 0
    model = load_model(out)
    config = SearchConfig(candidates=2000, top_k=32)
    prior = Prior(tuple(model.prior[d] for d in model.domains), model.prior_source)
    offline = build_schedule(model, config, prior, 600, seed=5)
    controller = OnlineController(model, 600, param_ratio=1.0, beta=0.0, candidates=2000,
                                  top_k=32, seed=5, force_dynamic=True)
    for j, stage in enumerate(offline.stages[1:], start=1):
        loss = offline.stages[j - 1].predicted_loss
        mixture = controller.mixture_for(stage.start_step, loss)
        assert mixture is not None
        assert tuple(mixture[d] for d in model.domains) == stage.weights, j
