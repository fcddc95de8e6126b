"""Offline schedules (Algorithm 1), static RegMix, schedule JSON v1 and its shipped schema."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regmixd_cli.domain import METHOD_OFFLINE, METHOD_STATIC
from regmixd_cli.errors import InputError, ModelError, UsageError
from regmixd_cli.plan.schedule import (
    build_schedule,
    build_static,
    resolve_schedule_prior,
    stage_boundaries,
)
from regmixd_cli.plan.schedule_file import (
    read_schedule,
    schedule_from_dict,
    schedule_json,
    schedule_schema_path,
    schedule_to_dict,
    write_schedule,
)
from regmixd_cli.plan.search import SearchConfig
from regmixd_cli.weights import Prior, round_weights
from tests.helpers.fakes import OneTarget

DOMAINS = ("code", "prose", "web")
# The best mixture moves during training: code first, then prose, then web.
STAGE_OPTIMA = np.array(
    [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.2, 0.6, 0.2], [0.1, 0.5, 0.4], [0.1, 0.2, 0.7]]
)
ENDPOINT_OPTIMUM = np.array([0.3, 0.4, 0.3])


@dataclass(frozen=True)
class FakeModel(OneTarget):
    """The FittedModel interface with known answers: stage j's best mixture is STAGE_OPTIMA[j-1]."""

    domains: tuple[str, ...] = DOMAINS
    target: str = "val/loss"
    grid: tuple[float, ...] = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0)
    proxy_steps: float = 600.0
    prior: dict[str, float] = field(default_factory=lambda: {"code": 0.2, "prose": 0.5, "web": 0.3})
    prior_source: str = "proxy-mean"
    form: str | None = "per-stage"
    loss_ranges: tuple[tuple[float, float], ...] = ((4.0, 6.0),) * 6
    initial_loss: float = 5.0
    calls: list = field(default_factory=list, compare=False)

    @property
    def n_switch_points(self) -> int:
        return len(self.grid) - 1

    @property
    def has_transitions(self) -> bool:
        return self.form is not None

    def predict_transition(self, stage: int, mixtures: np.ndarray, loss) -> np.ndarray:
        assert 1 <= stage <= self.n_switch_points and mixtures.dtype == np.float32
        self.calls.append((stage, float(loss)))
        optimum = STAGE_OPTIMA[(stage - 1) % len(STAGE_OPTIMA)]
        return (loss - 0.2 + ((mixtures - optimum) ** 2).sum(axis=1)).astype(np.float32)

    def predict_endpoint(self, mixtures: np.ndarray) -> np.ndarray:
        return (3.0 + ((mixtures - ENDPOINT_OPTIMUM) ** 2).sum(axis=1)).astype(np.float32)


FAST = SearchConfig(candidates=4000, top_k=16)
PRIOR = Prior((0.2, 0.5, 0.3), "proxy-mean")


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schedule_schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(schedule) -> None:
    """Everything schedule JSON v1 promises, plus the shipped JSON Schema."""
    doc = json.loads(schedule_json(schedule))
    validator().validate(doc)
    stages = doc["stages"]
    assert stages[0]["start_step"] == 0 and stages[-1]["end_step"] == doc["target_steps"]
    for a, b in zip(stages, stages[1:], strict=False):
        assert a["end_step"] == b["start_step"]
    for s in stages:
        assert isinstance(s["start_step"], int) and isinstance(s["end_step"], int)
        assert s["start_step"] < s["end_step"]
        micro = [round(w * 10**6) for w in s["weights"].values()]
        assert sum(micro) == 10**6 and all(abs(m / 10**6 - w) < 1e-12 for m, w in
                                           zip(micro, s["weights"].values(), strict=True))
        assert s["start_fraction"] == round(s["start_step"] / doc["target_steps"], 4)
    assert schedule_from_dict(doc, "x") == schedule


def test_algorithm_1_finds_the_best_mixture_of_every_stage():
    model = FakeModel()
    schedule = build_schedule(model, FAST, PRIOR, 25_000, seed=0, model_sha256="ab" * 32)
    assert schedule.method == METHOD_OFFLINE
    assert len(schedule.stages) == 6
    assert schedule.stages[0].weights == PRIOR.weights
    assert schedule.stages[0].predicted_loss == 5.0
    for j, stage in enumerate(schedule.stages[1:], start=1):
        assert np.abs(np.array(stage.weights) - STAGE_OPTIMA[j - 1]).max() < 0.06, j
    assert_valid(schedule)


def test_each_search_starts_from_the_loss_predicted_for_the_chosen_mixture():
    model = FakeModel()
    schedule = build_schedule(model, FAST, PRIOR, None, seed=0)
    loss = model.initial_loss
    for j, stage in enumerate(schedule.stages[1:], start=1):
        # The searches at stage j were all scored at the loss carried from stage j-1 ...
        assert {at for s, at in model.calls if s == j} == {loss}
        # ... and the stage's prediction is the model at its own (rounded) mixture.
        expected = model.predict_transition(j, np.array([stage.weights], np.float32), loss)[0]
        assert stage.predicted_loss == round(float(expected), 6)
        loss = float(expected)
        assert loss < 5.0 - 0.2 * (j - 1)


def test_stage_boundaries_map_proxy_steps_linearly_to_the_target_run():
    schedule = build_schedule(FakeModel(), FAST, PRIOR, 25_000, seed=0)
    ends = [s.end_step for s in schedule.stages]
    assert ends == [4167, 8333, 12500, 16667, 20833, 25000]
    assert [s.end_fraction for s in schedule.stages] == [0.1667, 0.3333, 0.5, 0.6667, 0.8333, 1.0]


def test_default_target_steps_is_the_proxy_length():
    schedule = build_schedule(FakeModel(), FAST, PRIOR, None, seed=0)
    assert schedule.target_steps == 600
    assert [s.start_step for s in schedule.stages] == [0, 100, 200, 300, 400, 500]


def test_same_seed_gives_byte_identical_json_and_another_seed_does_not():
    a = schedule_json(build_schedule(FakeModel(), FAST, PRIOR, 1000, seed=3))
    b = schedule_json(build_schedule(FakeModel(), FAST, PRIOR, 1000, seed=3))
    c = schedule_json(build_schedule(FakeModel(), FAST, PRIOR, 1000, seed=4))
    assert a == b
    assert a != c


def test_provenance_records_how_the_schedule_was_made():
    schedule = build_schedule(FakeModel(), FAST, PRIOR, 1000, seed=9, model_sha256="cd" * 32)
    p = schedule.provenance
    assert p["model"] == "cd" * 32 and p["seed"] == 9 and p["target"] == "val/loss"
    assert (p["candidates"], p["top_k"], p["alpha"]) == (4000, 16, 1.0)
    assert p["prior"] == {"code": 0.2, "prose": 0.5, "web": 0.3}
    assert p["prior_source"] == "proxy-mean" and p["model_form"] == "per-stage"
    assert p["interval_ends"] == [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]


def test_static_regmix_is_one_stage_with_the_endpoint_optimum():
    schedule = build_static(FakeModel(), FAST, PRIOR, 25_000, seed=0)
    assert schedule.method == METHOD_STATIC
    (stage,) = schedule.stages
    assert (stage.start_step, stage.end_step) == (0, 25_000)
    assert np.abs(np.array(stage.weights) - ENDPOINT_OPTIMUM).max() < 0.06
    assert 3.0 <= stage.predicted_loss < 3.01
    assert_valid(schedule)


def test_static_works_for_an_endpoint_only_model():
    model = FakeModel(form=None, grid=(1000.0,), proxy_steps=1000.0, initial_loss=math.nan)
    schedule = build_static(model, FAST, PRIOR, None, seed=0)
    assert schedule.target_steps == 1000
    assert_valid(schedule)


def test_dynamic_schedule_from_an_endpoint_only_model_suggests_static():
    model = FakeModel(form=None, grid=(1000.0,), proxy_steps=1000.0)
    with pytest.raises(ModelError, match="--static"):
        build_schedule(model, FAST, PRIOR, None, seed=0)


def test_too_few_target_steps_for_the_stages_is_a_usage_error():
    with pytest.raises(UsageError, match="``target_steps`` 4 is too small for 6 stages"):
        build_schedule(FakeModel(), FAST, PRIOR, 4, seed=0)
    with pytest.raises(UsageError, match="``target_steps`` 0"):
        build_static(FakeModel(), FAST, PRIOR, 0, seed=0)


def test_zero_prior_domain_never_enters_the_schedule():
    prior = Prior((0.0, 0.6, 0.4), "prior.json")
    schedule = build_schedule(FakeModel(), FAST, prior, 1000, seed=0)
    assert all(stage.weights[0] == 0.0 for stage in schedule.stages)
    assert_valid(schedule)


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=7, unique=True),
    proxy_steps=st.sampled_from([1000.0, 600.0, 37.0]),
    target_steps=st.integers(8, 10**7),
    seed=st.integers(0, 2**31),
)
def test_every_schedule_is_valid_json_v1_and_round_trips(cuts, proxy_steps, target_steps, seed):
    grid = tuple(sorted(c * proxy_steps for c in cuts)) + (proxy_steps,)
    model = FakeModel(grid=grid, proxy_steps=proxy_steps)
    try:
        schedule = build_schedule(model, SearchConfig(200, 8), PRIOR, target_steps, seed=seed)
    except UsageError as exc:  # two interval ends land on the same target step
        assert "too small" in str(exc)
        return
    assert len(schedule.stages) == len(grid)
    assert_valid(schedule)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=20).filter(lambda w: sum(w) > 0))
def test_rounded_weights_sum_to_exactly_one(weights):
    rounded = round_weights(weights)
    micro = [round(w * 10**6) for w in rounded]
    assert sum(micro) == 10**6
    assert all(w >= 0 for w in rounded)
    total = math.fsum(weights)
    slack = len(weights) * 0.5e-6 + 1e-12
    assert all(abs(r - w / total) <= slack for r, w in zip(rounded, weights, strict=True))


def test_stage_boundaries_are_rounded_half_up():
    assert stage_boundaries((1.0, 2.0), 2.0, 3) == [0, 2, 3]  # 1.5 -> 2
    assert stage_boundaries((1.0, 3.0), 3.0, 10) == [0, 3, 10]


def test_write_and_read_round_trip(tmp_path):
    schedule = build_schedule(FakeModel(), FAST, PRIOR, 25_000, seed=0)
    path = tmp_path / "schedule.json"
    write_schedule(path, schedule)
    assert read_schedule(path) == schedule
    assert path.read_text(encoding="utf-8") == schedule_json(schedule)


def corrupt(tmp_path, edit) -> str:
    doc = schedule_to_dict(build_schedule(FakeModel(), FAST, PRIOR, 600, seed=0))
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version="regmixd.schedule/v0"), "is not 'regmixd.schedule/v1'"),
        (lambda d: d.pop("stages"), "lacks stages"),
        (lambda d: d.update(method="magic"), "unknown method"),
        (lambda d: d["stages"][2].update(start_step=201), "contiguous"),
        (lambda d: d["stages"].pop(), "not target_steps 600"),
        (lambda d: d["stages"][1]["weights"].update(code=0.9), "not 1"),
        (lambda d: d["stages"][1]["weights"].pop("web"), "exactly the schedule's domains"),
        (lambda d: d["stages"][0].update(end_step=99.5), "`end_step` must be an integer"),
        (lambda d: d.update(domains=["code", "code", "web"]), "distinct"),
    ],
)
def test_reading_a_bad_schedule_is_an_input_error_naming_the_file(tmp_path, edit, message):
    path = corrupt(tmp_path, edit)
    with pytest.raises(InputError, match=message) as info:
        read_schedule(path)
    assert str(info.value).startswith(path)
    assert info.value.exit_code == 3


def test_reading_a_missing_or_malformed_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_schedule(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version":\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.json:2: malformed schedule file"):
        read_schedule(bad)


def test_schema_rejects_what_v1_forbids():
    doc = schedule_to_dict(build_schedule(FakeModel(), FAST, PRIOR, 600, seed=0))
    v = validator()
    v.validate(doc)
    for broken in (
        {**doc, "schema_version": "regmixd.schedule/v2"},
        {**doc, "extra": 1},
        {**doc, "stages": []},
        {**doc, "stages": [{**doc["stages"][0], "weights": {"code": -0.1}}]},
    ):
        assert not v.is_valid(broken)


def test_prior_defaults_to_the_models_and_proxy_mean_needs_it():
    model = FakeModel()
    assert resolve_schedule_prior(None, model) == Prior((0.2, 0.5, 0.3), "proxy-mean")
    assert resolve_schedule_prior("uniform", model).source == "uniform"
    assert resolve_schedule_prior("proxy-mean", model).weights == (0.2, 0.5, 0.3)
    with pytest.raises(UsageError, match="proxy-mean"):
        resolve_schedule_prior("proxy-mean", replace(model, prior_source="uniform"))
