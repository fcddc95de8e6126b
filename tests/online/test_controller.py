"""Online control: the pure decision (fake model), the controller, and `regmixd online` one-shot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from regmixd_cli.errors import ModelError, UsageError
from regmixd_cli.online.controller import (
    OnlineController,
    correct_loss,
    decide_online,
    target_switch_steps,
)
from regmixd_cli.online.decision import Decision
from regmixd_cli.plan.search import SearchConfig
from tests.helpers.fakes import OneTarget
from tests.helpers.online_world import build_store

SMALL = SearchConfig(candidates=2000, top_k=32)


@dataclass(frozen=True)
class FakeModel(OneTarget):
    """Quadratic bowls whose centre moves with the loss: the correction visibly matters."""

    domains: tuple[str, ...] = ("a", "b", "c")
    target: str = "val/loss"
    grid: tuple[float, ...] = (200.0, 400.0, 600.0, 800.0, 1000.0)
    proxy_steps: float = 1000.0
    prior: dict[str, float] = field(default_factory=lambda: {"a": 0.4, "b": 0.3, "c": 0.3})
    prior_source: str = "uniform"
    form: str | None = "per-stage"
    loss_ranges: tuple[tuple[float, float], ...] = ((4.0, 6.0),) * 5
    initial_loss: float = 5.0
    calls: list = field(default_factory=list, compare=False)

    @property
    def n_switch_points(self) -> int:
        return len(self.grid) - 1

    @property
    def has_transitions(self) -> bool:
        return self.form is not None

    def optimum(self, loss: float) -> np.ndarray:
        """High loss -> favour domain a; low loss -> favour domain c."""
        share = float(np.clip((loss - 3.0) / 4.0, 0.05, 0.9))
        return np.array([share, 0.1, 0.9 - share])

    def predict_transition(self, stage, mixtures, loss):
        self.calls.append((stage, float(np.asarray(loss).reshape(-1)[0])))
        centre = self.optimum(float(np.asarray(loss).reshape(-1)[0]))
        gap = ((np.asarray(mixtures, dtype=np.float64) - centre) ** 2).sum(axis=1)
        return (0.9 * np.asarray(loss, dtype=np.float64) + gap).astype(np.float32)

    def predict_endpoint(self, mixtures):
        return ((np.asarray(mixtures) - 0.3) ** 2).sum(axis=1).astype(np.float32)


def decide(model=None, step=2000, loss=3.6, target_steps=10_000, **kw):
    kw.setdefault("search_config", SMALL)
    return decide_online(model or FakeModel(), step, loss, target_steps, **kw)


# --------------------------------------------------------------------------- pure decision


def test_switch_steps_map_the_grid_to_the_target_run():
    assert target_switch_steps((200.0, 400.0, 600.0, 800.0, 1000.0), 4, 10_000) == (
        2000,
        4000,
        6000,
        8000,
    )
    # Rounded half up, like `regmixd schedule`'s stage boundaries.
    assert target_switch_steps((1.0, 2.0, 3.0), 2, 5) == (2, 3)
    with pytest.raises(UsageError, match="``target_steps``"):
        target_switch_steps((200.0, 400.0, 600.0, 800.0, 1000.0), 4, 3)


def test_cross_scale_correction():
    assert correct_loss(3.0, 1000.0, 0.05) == pytest.approx(3.0 * 1000**0.05)
    assert correct_loss(3.0, 1000.0, 0.0) == 3.0
    decision = decide(loss=3.6, param_ratio=1000.0, beta=0.05)
    assert decision.corrected_loss == pytest.approx(3.6 * 1000**0.05)
    assert decision.predicted_target_loss == pytest.approx(
        decision.predicted_loss / 1000**0.05, rel=1e-6
    )


def test_decision_at_a_switch_point():
    model = FakeModel()
    decision = decide(model, step=4000, loss=3.5)
    assert (decision.switch, decision.start_step, decision.end_step) == (2, 4000, 6000)
    assert decision.proxy_step == pytest.approx(400.0)
    assert decision.warnings == ()
    assert sum(decision.weights.values()) == pytest.approx(1.0, abs=1e-9)
    # The search queried stage 2 at the corrected loss, never at the raw one.
    assert {stage for stage, _ in model.calls} == {2}
    assert {round(loss, 9) for _, loss in model.calls} == {round(decision.corrected_loss, 9)}
    # The chosen mixture sits near the bowl's centre for that loss.
    centre = model.optimum(decision.corrected_loss)
    assert np.abs(np.array(list(decision.weights.values())) - centre).max() < 0.1


def test_the_correction_changes_the_decision():
    high = decide(loss=3.6, param_ratio=1000.0, beta=0.1)  # corrected ~7.2: favour a
    low = decide(loss=3.6, param_ratio=1.0, beta=0.0)  # corrected 3.6: favour c
    assert high.weights["a"] > low.weights["a"] + 0.2


def test_last_interval_ends_at_the_target():
    decision = decide(step=8000)
    assert (decision.switch, decision.start_step, decision.end_step) == (4, 8000, 10_000)


def test_a_step_between_switch_points_snaps_to_the_next_one():
    decision = decide(step=2500)
    assert (decision.switch, decision.start_step) == (2, 4000)
    assert decision.step == 2500 and decision.proxy_step == pytest.approx(250.0)
    assert any("not a switch point" in w and "4000" in w for w in decision.warnings)


@pytest.mark.parametrize("step", [8001, 9999, 10_000, 12_000])
def test_nothing_to_decide_after_the_last_switch_point(step):
    with pytest.raises(UsageError, match=r"``step`` \d+ is (after the last switch|at or past)"):
        decide(step=step)


def test_extrapolation_warning_names_the_range():
    decision = decide(loss=1.0)  # corrected ~1.41, the model saw 4..6
    [warning] = decision.warnings
    assert "outside the range" in warning and "4..6" in warning and "switch point 1" in warning
    assert decide(loss=3.6).warnings == ()


def test_decisions_are_deterministic_and_independent_of_history():
    first = decide(step=4000, loss=3.5, seed=7)
    again = decide(step=4000, loss=3.5, seed=7)
    assert first == again
    assert decide(step=4000, loss=3.5, seed=8).weights != first.weights
    # A controller that decided switch 1 first reaches the same switch-2 decision.
    controller = OnlineController(FakeModel(), 10_000, seed=7, candidates=2000, top_k=32)
    controller.decide(2000, 3.9)
    assert controller.decide(4000, 3.5).weights == first.weights


def test_endpoint_only_model_points_to_static():
    with pytest.raises(ModelError, match="schedule MODEL --static"):
        decide(FakeModel(form=None, grid=(1000.0,)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": float("nan")}, "``loss``"),
        ({"loss": -1.0}, "``loss``"),
        ({"step": -5}, "``step``"),
        ({"param_ratio": 0.0}, "``param_ratio``"),
        ({"target_steps": 0}, "``target_steps``"),
    ],
)
def test_bad_numbers_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        decide(**kwargs)


def test_decision_json_round_trip():
    decision = decide(loss=1.0)
    assert Decision.from_json(json.loads(json.dumps(decision.to_json()))) == decision


# --------------------------------------------------------------------------- controller


def controller(**kw):
    kw.setdefault("candidates", 2000)
    kw.setdefault("top_k", 32)
    return OnlineController(FakeModel(), 10_000, **kw)


def test_controller_decides_once_per_switch_point():
    ctl = controller()
    assert ctl.switch_steps == (2000, 4000, 6000, 8000)
    assert ctl.mixture_for(1000, 4.5) is None
    mixture = ctl.mixture_for(2000, 4.0)
    assert mixture is not None and set(mixture) == {"a", "b", "c"}
    assert ctl.mixture_for(2000, 4.0) is None  # already decided
    assert ctl.mixture_for(3900, 3.7) is None
    late = ctl.decide(4100, 3.6)  # first evaluation after switch point 2
    assert late is not None and (late.switch, late.step, late.start_step) == (2, 4100, 4000)
    assert not ctl.done


def test_controller_skips_switch_points_without_an_evaluation():
    ctl = controller()
    ctl.decide(2000, 4.0)
    jumped = ctl.decide(6500, 3.4)  # no evaluation between 4000 and 6500
    assert jumped is not None and jumped.switch == 3
    assert any("no evaluation" in w and "4000" in w for w in jumped.warnings)
    assert ctl.decide(8000, 3.3).switch == 4
    assert ctl.done
    assert ctl.mixture_for(9000, 3.2) is None


def test_controller_ignores_evaluations_at_the_end():
    ctl = controller()
    assert ctl.decide(10_000, 3.0) is None
    assert ctl.decisions == []


def test_controller_keeps_restored_decisions():
    ctl = controller()
    first = ctl.decide(2000, 4.0)
    restored = controller(decisions=[first])
    assert restored.decide(2000, 9.9) is None  # never re-decided, even with another loss
    assert restored.decide(4000, 3.5).switch == 2


def test_controller_schedule_is_valid_schedule_json():
    import jsonschema

    from regmixd_cli.plan.schedule_file import schedule_from_dict, schedule_schema_path

    ctl = controller()
    assert [s["weights"] for s in ctl.to_schedule()["stages"]] == [pytest.approx(FakeModel().prior)]
    ctl.decide(2000, 4.0)
    ctl.decide(6000, 3.4)  # switch point 2 skipped: its segment keeps the first decision
    document = ctl.to_schedule()
    schema_path = schedule_schema_path()
    jsonschema.validate(document, json.loads(schema_path.read_text()))
    schedule = schedule_from_dict(document, "online")
    assert schedule.method == "regmix-d-online"
    assert [(s.start_step, s.end_step) for s in schedule.stages] == [
        (0, 2000),
        (2000, 6000),
        (6000, 10_000),
    ]
    assert schedule.stages[0].predicted_loss == 5.0
    assert schedule.weights_of(schedule.stages[1]) == ctl.decisions[0].weights


def test_controller_checks_its_settings_up_front():
    with pytest.raises(UsageError, match="--top-k"):
        controller(top_k=5000)
    with pytest.raises(ModelError):
        OnlineController(FakeModel(form=None, grid=(1000.0,)), 10_000)


# --------------------------------------------------------------------------- real model, CLI


@pytest.fixture(scope="module")
def model_dir(tiny_model: Path) -> Path:
    """The session's tiny model (tests/conftest.py), fitted once for every module."""
    return tiny_model


def run_online(cli, model_dir, *args):
    return cli("online", model_dir, "--target-steps", "6000", "--candidates", "2000", *args)


def test_one_shot_json(cli, model_dir):
    # The tiny model predicts no advantage over static RegMix: --force-dynamic tests steering.
    result = run_online(cli, model_dir, "--step", "1500", "--loss", "3.3", "--json",
                        "--force-dynamic")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["switch"], data["start_step"], data["end_step"]) == (1, 1500, 3000)
    assert data["corrected_loss"] == pytest.approx(3.3 * 1000**0.05)
    assert sum(data["weights"].values()) == pytest.approx(1.0, abs=1e-9)
    assert data["warnings"] == []
    assert "Switch point 1 of 3" in result.stderr
    again = run_online(cli, model_dir, "--step", "1500", "--loss", "3.3", "--json",
                       "--force-dynamic")
    assert again.stdout == result.stdout  # byte-identical for the same seed


def test_one_shot_without_json_writes_nothing_to_stdout(cli, model_dir):
    result = run_online(cli, model_dir, "--step", "1600", "--loss", "2.0")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "not a switch point" in result.stderr and "extrapolation" in result.stderr


def test_one_shot_warnings_in_json(cli, model_dir):
    result = run_online(cli, model_dir, "--step", "1600", "--loss", "2.0", "--json",
                        "--force-dynamic")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 2 and "3000" in warnings[0] and "extrapolation" in warnings[1]


def test_online_matches_offline_when_the_run_follows_the_prediction(cli, model_dir):
    """Same seed, no correction, the loss offline assumed: the same mixture as `schedule`."""
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.plan.schedule import build_schedule
    from regmixd_cli.weights import Prior

    model = load_model(model_dir)
    prior = Prior(tuple(model.prior[d] for d in model.domains), model.prior_source)
    offline = build_schedule(model, SMALL, prior, 6000, seed=3)
    decision = decide_online(
        model,
        1500,
        model.initial_loss,
        6000,
        param_ratio=1.0,
        beta=0.0,
        search_config=SMALL,
        seed=3,
    )
    assert tuple(decision.weights.values()) == offline.stages[1].weights


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--step", "1500"), "give --step and --loss"),
        (("--step", "1500", "--loss", "3", "--follow", "x.jsonl"), "exclusive"),
        (("--step", "1500", "--loss", "3", "--state", "s.json"), "--state only works with"),
        (
            ("--step", "1500", "--loss", "3", "--out-schedule", "s.json"),
            "--out-schedule only works with --follow",
        ),
        (
            ("--step", "1500", "--loss", "3", "--state", "s.json", "--out-schedule", "o.json"),
            "--state, --out-schedule only work with --follow",
        ),
        (("--step", "5000", "--loss", "3"), "after the last switch point"),
        (("--step", "1500", "--loss", "3", "--top-k", "5000"), "--top-k"),
    ],
)
def test_usage_errors(cli, model_dir, args, message):
    result = run_online(cli, model_dir, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error:") and message in result.stderr


def test_missing_model_is_a_model_error(cli, tmp_path):
    result = cli("online", tmp_path / "nope", "--target-steps", "100", "--step", "1", "--loss", "3")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("Error:") and "nope" in result.stderr


def test_endpoint_only_model_exit_code(cli, tmp_path):
    from regmixd_cli.fit.files import save_model
    from regmixd_cli.fit.model import FitConfig, XGBSettings
    from regmixd_cli.fit.training import fit_model

    store = build_store(endpoint_only=True)
    settings = XGBSettings(learning_rate=0.3, max_rounds=5, early_stopping_rounds=2, nthread=1)
    config = FitConfig(target="val/loss", folds=2, xgb=settings)
    save_model(tmp_path / "m", fit_model(store, config))
    result = cli("online", tmp_path / "m", "--target-steps", "100", "--step", "1", "--loss", "3")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("Error:") and "--static" in result.stderr


def test_through_the_whole_cli(cli, tmp_path):
    """simulate -> ingest -> fit -> online, every step through the command line."""
    sim, store, model = tmp_path / "sim", tmp_path / "store", tmp_path / "model"
    steps = [
        ("simulate", "--runs", "16", "--domains", "3", "--steps", "600", "--parts", "1",
         "--out", sim),
        ("ingest", sim / "logs" / "part-0.jsonl", "--out", store),
        ("fit", store, "--out", model, "--target", "val/pile_cc", "--switch-points", "3",
         "--folds", "2", "--max-rounds", "30", "--learning-rate", "0.3"),
    ]  # fmt: skip
    for args in steps:
        result = cli(*args)
        assert result.exit_code == 0, (args[0], result.output)
    result = run_online(cli, model, "--step", "3000", "--loss", "5.0", "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert (decision["switch"], decision["start_step"]) == (2, 3000)
    assert set(decision["weights"]) == {"pile_cc", "github", "arxiv"}


def test_the_guard_steers_with_static_regmix_when_the_schedule_is_not_credible(cli, model_dir):
    """The tiny model's schedule has no predicted advantage over static RegMix: online hands
    out the static RegMix mixture at every switch point, says why, and --force-dynamic steers."""
    static = json.loads(cli("schedule", model_dir, "--static", "--json",
                            "--candidates", "2000").stdout)
    result = run_online(cli, model_dir, "--step", "3000", "--loss", "3.1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["weights"] == static["stages"][0]["weights"]
    assert any(w.startswith("guard: steering with the static RegMix mixture") for w in
               data["warnings"])
    forced = json.loads(run_online(cli, model_dir, "--step", "3000", "--loss", "3.1", "--json",
                                   "--force-dynamic").stdout)
    assert not any(w.startswith("guard:") for w in forced["warnings"])
