"""`regmixd predict` and `regmixd compare` on a tiny real model, and the mixture-file reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regmixd_cli.errors import InputError
from regmixd_cli.plan.compare import Plan, interval_weights, token_share
from regmixd_cli.plan.mixture_file import read_plan_file
from tests.helpers.online_world import DOMAINS, build_store

MIXTURE = {"code": 0.2, "prose": 0.6, "web": 0.2}


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Path:
    """The session's tiny model (tests/conftest.py), fitted once for every module."""
    return tiny_model


# Not the session's tiny_model: the same settings fitted on an endpoint-only store (one
# observation per run), so the model has no transitions.
@pytest.fixture(scope="module")
def endpoint_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny endpoint-only model (one observation per run)."""
    from regmixd_cli.fit.files import save_model
    from regmixd_cli.fit.model import FitConfig, XGBSettings
    from regmixd_cli.fit.training import fit_model
    from tests.helpers.online_world import TARGET

    settings = XGBSettings(learning_rate=0.3, max_rounds=20, early_stopping_rounds=5, nthread=1)
    config = FitConfig(target=TARGET, folds=2, xgb=settings)
    path = tmp_path_factory.mktemp("compare") / "endpoint"
    save_model(path, fit_model(build_store(endpoint_only=True), config))
    return path


def _schedule(cli, model: Path, path: Path, *extra: str) -> Path:
    result = cli("schedule", model, "--out", path, "--candidates", "500", "--top-k", "8",
                 "--force-dynamic", *extra)  # the dynamic plan itself (the guard: test_guard)
    assert result.exit_code == 0, result.output
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_predict_reproduces_an_offline_schedules_own_predictions(cli, model, tmp_path):
    schedule = _schedule(cli, model, tmp_path / "s.json")
    stages = json.loads(schedule.read_text())["stages"]
    result = _json(cli("predict", model, schedule, "--json"))
    assert [p["loss"] for p in result["points"]] == pytest.approx(
        [s["predicted_loss"] for s in stages], abs=2e-6
    )
    assert [p["step"] for p in result["points"]] == [s["end_step"] for s in stages]
    # The mixture in force up to each point is the stage that ends there.
    assert result["points"][2]["weights"] == pytest.approx(stages[2]["weights"])
    assert result["endpoint_loss"] is None and result["static"] is False
    assert result["final_loss"] == result["rollout_loss"] == result["points"][-1]["loss"]
    assert result["final_from"] == "rollout"


def test_a_schedule_maps_onto_the_grid_by_fraction(cli, model, tmp_path):
    short = _json(cli("predict", model, _schedule(cli, model, tmp_path / "a.json"), "--json"))
    long = _json(cli("predict", model, _schedule(cli, model, tmp_path / "b.json",
                                                 "--target-steps", "25000"), "--json"))
    assert [p["loss"] for p in long["points"]] == [p["loss"] for p in short["points"]]
    assert [p["step"] for p in long["points"]] == [6250, 12500, 18750, 25000]
    # --target-steps only rescales the axis shown.
    again = _json(cli("predict", model, tmp_path / "b.json", "--target-steps", "600", "--json"))
    assert [p["step"] for p in again["points"]] == [p["step"] for p in short["points"]]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.json", json.dumps(MIXTURE)),
        ("m.yaml", "# RegMix style\ntrain:\n  train_the_pile_code: 0.2\n  train_the_pile_prose: "
                   "'0.6'\n  train_the_pile_web: 0.2\nvalid:\n  valid_the_pile_prose: 1.0\n"
                   "model_name: tinyllama_1_1b\n"),
        ("flat.yaml", "code: 0.2\nprose: 0.6  # most\nweb: 0.2\n"),
        ("m.csv", "run,code,prose,web\nhuman,0.2,0.6,0.2\n"),
        ("bare.csv", "web,prose,code\n0.2,0.6,0.2\n"),
    ],
)
def test_predict_a_mixture_in_every_format(cli, model, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    result = _json(cli("predict", model, path, "--json"))
    assert len(result["points"]) == 4 and result["static"] is True
    assert all(p["weights"] == pytest.approx(MIXTURE) for p in result["points"])
    assert result["share"] == pytest.approx(MIXTURE)
    # A static mixture's final loss is the endpoint model's (RegMix); the rollout is kept too.
    assert result["final_loss"] == result["endpoint_loss"] is not None
    assert result["final_from"] == "endpoint"
    assert result["rollout_loss"] == result["points"][-1]["loss"]
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(MIXTURE))
    assert result["points"] == _json(cli("predict", model, reference, "--json"))["points"]


def test_predict_table_goes_to_stdout(cli, model, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(MIXTURE))
    result = cli("predict", model, path)
    assert result.exit_code == 0, result.output
    assert "predicted final val/loss loss" in result.stdout
    assert "endpoint model, RegMix" in result.stdout


def test_missing_and_unknown_domains(cli, model, tmp_path):
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"code": 0.4, "prose": 0.6}))
    result = cli("predict", model, missing)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and str(missing) in result.stderr
    assert "web" in result.stderr
    filled = _json(cli("predict", model, missing, "--allow-missing-domains", "--json"))
    assert filled["share"] == pytest.approx({"code": 0.4, "prose": 0.6, "web": 0.0})

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"code": 0.4, "prose": 0.5, "math": 0.1}))
    result = cli("predict", model, unknown, "--allow-missing-domains")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and "math" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,prose,web\n0.2,0.6,0.2\n0.3,0.3,0.4\n", "exactly one row"),
        ("code,prose,web\n0.2,lots,0.2\n", "not a number"),
        ("valid:\n  valid_the_pile_prose: 1.0\n", "no mixture found"),
        ("train:\n  code: heavy\n", ":2:"),
        ("{\"code\": 0.5, ", "malformed JSON"),
        ("{\"code\": 0.5, \"prose\": 0.6, \"web\": 0.2}", "sum to"),
    ],
)
def test_bad_mixture_files_are_input_errors(cli, model, tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    result = cli("predict", model, path)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("Error:") and str(path) in result.stderr
    assert message in result.stderr


def test_endpoint_only_model(cli, model, endpoint_model, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(MIXTURE))
    result = _json(cli("predict", endpoint_model, path, "--json"))
    assert result["points"] == [] and result["final_loss"] == result["endpoint_loss"]
    schedule = _schedule(cli, model, tmp_path / "s.json")
    result = cli("predict", endpoint_model, schedule)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error:") and str(schedule) in result.stderr
    compared = _json(cli("compare", endpoint_model, "prior", "static", path, "--json",
                         "--candidates", "500"))
    assert [i["item"] for i in compared["items"]] == ["prior", "static", str(path)]


def test_compare_builtins_and_files(cli, model, tmp_path):
    schedule = _schedule(cli, model, tmp_path / "s.json")
    mixture = tmp_path / "m.yaml"
    mixture.write_text("code: 0.2\nprose: 0.6\nweb: 0.2\n")
    args = ("compare", model, "prior", "static", "offline", schedule, mixture,
            "--candidates", "500", "--json")
    first = cli(*args)
    result = _json(first)
    assert cli(*args).stdout == first.stdout  # same seed, same bytes
    items = {i["item"]: i for i in result["items"]}
    assert list(items) == ["prior", "static", "offline", str(schedule), str(mixture)]
    assert [items[n]["method"] for n in ("prior", "static", "offline")] == [
        "prior", "regmix-static", "regmix-d-offline"]
    best = min(i["final_loss"] for i in result["items"])
    assert items[result["best"]]["final_loss"] == best
    for item in result["items"]:
        assert item["delta_to_best"] == pytest.approx(item["final_loss"] - best)
        assert sum(item["share"].values()) == pytest.approx(1.0)
        assert len(item["switch_losses"]) == 3
    # `offline` is what `regmixd schedule` builds with the same search settings (top-k aside).
    again = _schedule(cli, model, tmp_path / "again.json", "--top-k", "128")
    assert items["offline"]["points"] == _json(cli("predict", model, again, "--json"))["points"]
    assert items["static"]["final_loss"] == items["static"]["endpoint_loss"] is not None
    assert items["offline"]["endpoint_loss"] is None
    assert items["offline"]["final_loss"] == items["offline"]["rollout_loss"]
    assert result["switch_steps"] == [150, 300, 450]


def test_compare_table(cli, model, tmp_path):
    result = cli("compare", model, "prior", "static", "--candidates", "500")
    assert result.exit_code == 0, result.output
    assert "Predicted val/loss loss" in result.stdout
    assert "Share of tokens" in result.stdout
    for domain in DOMAINS:
        assert domain in result.stdout


def test_compare_needs_a_readable_item(cli, model, tmp_path):
    result = cli("compare", model, "prior", tmp_path / "nope.json")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and "nope.json" in result.stderr


def test_interval_weights_average_stages_that_straddle_an_interval():
    # Grid 150, 300, 450, 600 on a 600-step plan; a switch at 225 splits interval 2 in half.
    plan = Plan("p", "mixture", 600, ((0, 225, (1.0, 0.0)), (225, 600, (0.0, 1.0))))
    rows = interval_weights(plan, (150.0, 300.0, 450.0, 600.0), 600.0)
    assert rows == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]]
    assert token_share(plan) == pytest.approx((0.375, 0.625))


def test_read_plan_file_tells_schedules_from_mixtures(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"train_the_pile_code": 1.0}))
    assert read_plan_file(path) == {"code": 1.0}
    path.write_text(json.dumps({"schema_version": "regmixd.schedule/v0"}))
    with pytest.raises(InputError, match="schema"):
        read_plan_file(path)


class _Linear:
    """A stand-in model: loss drops by `rate` x the weight of domain 0 at every transition."""

    domains = ("a", "b")
    grid = (1.0, 2.0, 3.0)
    proxy_steps = 3.0
    has_transitions = True
    initial_loss = initial_state = 5.0
    loss_ranges = ((4.0, 6.0), (4.0, 6.0), (4.2, 6.0))

    def __init__(self, rate: float, members: tuple = ()) -> None:
        self.rate = rate
        if members:
            self.ensemble = type("Ensemble", (), {"members": members})()

    def predict_transition(self, stage, mixtures, loss):
        import numpy as np

        return np.asarray(loss) - self.rate * mixtures[:, 0]

    predict_state = predict_transition

    def objective_of(self, state):
        return state

    def predict_endpoint(self, mixtures):
        return 5.0 - mixtures[:, 0]


def test_the_ensemble_gives_an_interval_where_the_model_has_one():
    from regmixd_cli.plan.compare import predict_plans

    plan = Plan("p", "mixture", 1, ((0, 1, (1.0, 0.0)),))
    (plain,) = predict_plans(_Linear(0.5), [plan])
    assert plain.losses == (5.0, 4.5, 4.0) and plain.bands is None
    (banded,) = predict_plans(_Linear(0.5, (_Linear(0.4), _Linear(0.7))), [plan])
    assert banded.bands == ((5.0, 5.0), (4.3, 4.6), (3.6, 4.2))
    assert banded.outside == (False, False, True)  # 4.0 is below what the proxies reached


def test_compare_table_marks_exactly_the_extrapolated_points(cli, model):
    args = ("compare", model, "prior", "static", "offline", "--candidates", "500")
    table = cli(*args)
    data = _json(cli(*args, "--json"))
    assert table.exit_code == 0, table.output
    expected = 0
    for item in data["items"]:
        flags = [p["outside_training_range"] for p in item["points"]]
        expected += sum(flags[1:-1]) + flags[-1] * (1 if item["final_from"] == "endpoint" else 2)
    assert table.stdout.count(" *") == expected
    assert ("* marks predictions outside" in table.stderr) == (expected > 0)
