"""Constraints: parsing, projection, rounding, whole-schedule budgets, the CLI.

What they mean for a user: docs/how-to/constraints.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regmixd_cli.errors import InfeasibleError, InputError, UsageError
from regmixd_cli.plan.budget import ConstrainedSearch, online_region
from regmixd_cli.plan.constraints import parse_constraints, violations
from regmixd_cli.plan.region import Region, project_box_simplex
from regmixd_cli.plan.search import SearchConfig
from tests.helpers.online_world import DOMAINS

FAST = ("--candidates", "2000", "--top-k", "16")


# ------------------------------------------------------------------------------ parsing


def test_toml_tables_become_constraints_in_domain_order():
    data = {
        "domains": {"web": {"min": 0.1, "max": 0.5, "available_tokens": 1e6, "max_epochs": 2}},
        "schedule": {"tokens_per_step": 100, "max_change": 0.3},
    }
    c = parse_constraints(data, DOMAINS, "c.toml")
    assert c.lower == (0.0, 0.0, 0.1) and c.upper == (1.0, 1.0, 0.5)
    assert c.budget == (None, None, 2e6)
    assert (c.tokens_per_step, c.max_change) == (100, 0.3)
    assert c.record["domains"] == {
        "web": {"available_tokens": 1e6, "max": 0.5, "max_epochs": 2, "min": 0.1}
    }


def test_flags_override_the_file_key_by_key():
    data = {"domains": {"web": {"min": 0.1, "max": 0.5}}}
    c = parse_constraints(data, DOMAINS, "c.toml", {"max": {"web": 0.4}, "max_change": 0.2})
    assert c.lower[2] == 0.1 and c.upper[2] == 0.4 and c.max_change == 0.2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"domains": {"nope": {"min": 0.1}}}, "unknown domain(s) nope"),
        ({"domains": {"web": {"minimum": 0.1}}}, "unknown key(s) minimum"),
        ({"domains": {"web": {"min": 0.6, "max": 0.5}}}, "min <= max"),
        ({"domains": {"web": {"max_epochs": 2}}}, "max_epochs without available_tokens"),
        ({"schedule": {"max_change": 3}}, "max_change must be in [0, 2]"),
        ({"domains": {"web": {"min": "a lot"}}}, "must be a finite number"),
        ({"limits": {}}, "unknown table(s) limits"),
    ],
)
def test_bad_files_are_input_errors_naming_the_file(data, fragment):
    with pytest.raises(InputError, match="^c.toml") as info:
        parse_constraints(data, DOMAINS, "c.toml")
    assert fragment in str(info.value)


def test_unknown_domain_in_a_flag_is_a_usage_error():
    with pytest.raises(UsageError, match="--min nope"):
        parse_constraints(None, DOMAINS, "x", {"min": {"nope": 0.1}})


# ------------------------------------------------------------------- projection, rounding


@st.composite
def boxes(draw, max_k: int = 6):
    k = draw(st.integers(2, max_k))
    lower = np.asarray(draw(st.lists(st.floats(0, 0.3), min_size=k, max_size=k)))
    width = np.asarray(draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)))
    upper = np.minimum(lower + width, 1.0)
    if lower.sum() > 1:
        lower = lower / lower.sum() * 0.9
    if upper.sum() < 1:
        upper = np.minimum(upper + (1 - upper.sum()) / k + 1e-3, 1.0)
    upper = np.maximum(upper, lower)
    return lower, upper


@settings(max_examples=200, deadline=None)
@given(box=boxes(), data=st.data())
def test_projection_lands_on_the_box_simplex_and_is_the_nearest_point(box, data):
    lower, upper = box
    k = lower.size
    v = np.asarray(data.draw(st.lists(st.floats(-2, 2), min_size=k, max_size=k)))
    w = project_box_simplex(v[None, :], lower, upper)[0]
    assert abs(w.sum() - 1) < 1e-9
    assert np.all(w >= lower - 1e-12) and np.all(w <= upper + 1e-12)
    # KKT: coordinates strictly inside their bounds all moved by the same shift theta, and
    # none at a bound could move towards v and be closer (v - w >= theta at the upper bound).
    inner = (w > lower + 1e-9) & (w < upper - 1e-9)
    if inner.sum() >= 2:
        shifts = (v - w)[inner]
        assert shifts.max() - shifts.min() < 1e-6
    # No random feasible point is closer.
    others = project_box_simplex(np.random.default_rng(0).normal(size=(50, k)), lower, upper)
    assert np.all(((others - v) ** 2).sum(axis=1) >= ((w - v) ** 2).sum() - 1e-9)


@settings(max_examples=200, deadline=None)
@given(box=boxes(), data=st.data())
def test_rounding_stays_in_the_box_and_sums_to_one(box, data):
    lower, upper = box
    v = np.asarray(data.draw(st.lists(st.floats(0, 1), min_size=lower.size, max_size=lower.size)))
    rounded = Region(lower, upper).round(v + 1e-3)
    units = [round(w * 1e6) for w in rounded]
    assert sum(units) == 1_000_000
    assert all(abs(w * 1e6 - u) < 1e-6 for w, u in zip(rounded, units, strict=True))
    lo_u, hi_u = np.ceil(lower * 1e6 - 1e-6), np.floor(upper * 1e6 + 1e-6)
    if lo_u.sum() <= 1e6 <= hi_u.sum() and np.all(lo_u <= hi_u):
        assert np.all(np.asarray(rounded) >= lower - 1e-12)
        assert np.all(np.asarray(rounded) <= upper + 1e-12)


# -------------------------------------------------------------------- whole schedules


@st.composite
def problems(draw):
    k = draw(st.integers(2, 5))
    domains = tuple(f"d{i}" for i in range(k))
    n_stages = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, 50), min_size=n_stages, max_size=n_stages))
    total = sum(lengths)
    tables = {}
    for d in domains:
        table = {}
        if draw(st.booleans()):
            table["min"] = draw(st.floats(0, 0.4))
        if draw(st.booleans()):
            table["max"] = draw(st.floats(table.get("min", 0), 1))
        if draw(st.booleans()):
            table["available_tokens"] = draw(st.floats(0, 2.0)) * total * 10
            table["max_epochs"] = draw(st.sampled_from([1, 2, 4]))
        tables[d] = table
    schedule = {"tokens_per_step": 10.0}
    if draw(st.booleans()):
        schedule["max_change"] = draw(st.floats(0, 2))
    prior = np.asarray(draw(st.lists(st.floats(0.01, 1), min_size=k, max_size=k)))
    coef = np.asarray(draw(st.lists(st.floats(-1, 1), min_size=k, max_size=k)))
    data = {"domains": tables, "schedule": schedule}
    return domains, data, lengths, prior / prior.sum(), coef


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), seed=st.integers(0, 2**16))
def test_every_stage_satisfies_every_constraint_and_the_budget_holds(problem, seed):
    domains, data, lengths, prior, coef = problem
    c = parse_constraints(data, domains, "c.toml")
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    runner = ConstrainedSearch(c, bounds, prior)
    config = SearchConfig(candidates=300, top_k=8, threads=1)

    def score(m):
        return m @ coef.astype(np.float32)

    try:
        stages = [runner.first()] if len(lengths) > 1 else []
        for i in range(len(stages), len(lengths)):
            _, w = runner.search(i, score, config, np.random.default_rng([seed, i]))
            stages.append(w)
    except InfeasibleError as exc:
        # Infeasible only when the whole-run problem is: bounds or budgets cannot be met.
        assert any(s in str(exc) for s in ("min weights", "max weights", "epoch budget")), exc
        return
    assert all(abs(sum(w) - 1) < 1e-9 for w in stages)
    # Weights are written in millionths: bounds finer than that hold to 1e-6.
    assert violations(c, list(zip(lengths, stages, strict=True)), tol=1e-6) == []


def test_a_tight_budget_switches_to_sampling_inside_the_region():
    domains = ("a", "b", "c", "d")
    data = {
        "domains": {"a": {"min": 0.3}, "b": {"min": 0.3}, "c": {"max": 0.02}},
        "schedule": {"tokens_per_step": 1.0},
    }
    c = parse_constraints(data, domains, "c.toml")
    runner = ConstrainedSearch(c, [0, 100], [0.25] * 4)
    result, weights = runner.search(
        0, lambda m: -m[:, 2], SearchConfig(2000, 16, threads=1), np.random.default_rng(0)
    )
    record = runner.record()["stages"][0]
    assert record["mode"] == "map" and record["feasible_fraction"] < 0.05
    assert result.n_feasible == 2000  # every candidate counted
    assert weights[2] == pytest.approx(0.02)  # the score wants all of c: it gets its max


def test_infeasible_requests_name_the_binding_constraint():
    domains = ("a", "b")
    cases = [
        ({"domains": {"a": {"min": 0.7}, "b": {"min": 0.7}}}, "min weights sum to 1.4"),
        ({"domains": {"a": {"max": 0.3}, "b": {"max": 0.3}}}, "max weights sum to 0.6"),
        (
            {
                "domains": {"a": {"available_tokens": 10}, "b": {"available_tokens": 10}},
                "schedule": {"tokens_per_step": 1.0},
            },
            "epoch budget",
        ),
        (
            {
                "domains": {"a": {"min": 0.5, "available_tokens": 10}},
                "schedule": {"tokens_per_step": 1.0},
            },
            "epoch budget of a",
        ),
    ]
    for data, fragment in cases:
        c = parse_constraints(data, domains, "c.toml")
        with pytest.raises(InfeasibleError, match=fragment):
            ConstrainedSearch(c, [0, 50, 100], [0.5, 0.5]).first()


def test_max_change_unreachable_is_named():
    region = Region(np.array([0.0, 0.5]), np.array([0.5, 1.0]), np.array([0.9, 0.1]), 0.2)
    with pytest.raises(InfeasibleError, match="max_change 0.2 is unreachable"):
        region.check("c.toml", ("a", "b"))


def test_budget_without_tokens_per_step_is_an_input_error():
    c = parse_constraints({"domains": {"a": {"available_tokens": 5}}}, ("a", "b"), "c.toml")
    with pytest.raises(InputError, match="tokens_per_step"):
        ConstrainedSearch(c, [0, 10], [0.5, 0.5]).first()


def test_online_region_counts_earlier_segments_against_the_budget():
    data = {"domains": {"a": {"available_tokens": 50}}, "schedule": {"tokens_per_step": 1.0}}
    c = parse_constraints(data, ("a", "b"), "c.toml")
    # Segment 0 [0, 50) ran a at 0.5 (its fair share): 25 tokens; stage [50, 75) used 0.1: 2.5.
    region, first, projected = online_region(c, 100, [0.5, 0.5], [(50, [0.1, 0.9])], 75)
    assert first == (0.5, 0.5) and not projected
    assert region.upper[0] == pytest.approx(22.5 / 25)  # unused budget rolls forward
    assert region.previous is not None and list(region.previous) == [0.1, 0.9]
    fresh, _, _ = online_region(c, 100, [0.5, 0.5], None, 75)
    assert fresh.upper[0] == pytest.approx(0.5)  # unknown history: the fair share


# -------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def model_dir(tiny_model: Path) -> Path:
    """The session's tiny model (tests/conftest.py), fitted once for every module."""
    return tiny_model


def write_toml(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def check_schedule(doc, toml: dict):
    c = parse_constraints(toml, tuple(doc["domains"]), "file")
    stages = [
        (s["end_step"] - s["start_step"], [s["weights"][d] for d in doc["domains"]])
        for s in doc["stages"]
    ]
    assert violations(c, stages) == []


TOML = """
[domains.prose]
max = 0.25
available_tokens = 4.0e6
max_epochs = 2

[domains.code]
min = 0.1

[schedule]
tokens_per_step = 1000
max_change = 0.2
"""
TOML_DATA = {
    "domains": {
        "prose": {"max": 0.25, "available_tokens": 4e6, "max_epochs": 2},
        "code": {"min": 0.1},
    },
    "schedule": {"tokens_per_step": 1000, "max_change": 0.2},
}


@pytest.mark.parametrize("static", [False, True])
def test_schedule_with_constraints_satisfies_them_and_records_them(
    cli, model_dir, tmp_path, static
):
    path = write_toml(tmp_path / "c.toml", TOML)
    args = ["schedule", model_dir, "--json", "--target-steps", "25000", "--constraints", path]
    result = cli(*args, *FAST, *(["--static"] if static else ["--force-dynamic"]))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    check_schedule(doc, TOML_DATA)
    record = doc["provenance"]["constraints"]
    assert record["source"] == str(path) and record["schedule"]["max_change"] == 0.2
    assert "prose" in record["token_use"]
    if not static:
        # The model's prior (the proxy mean, ~0.37 prose) breaks max 0.25: projected, and said.
        assert record["prior_projected"] is True
        assert "segment 0 uses the nearest feasible mixture" in result.stderr
        assert doc["stages"][0]["weights"]["prose"] <= 0.25


def test_flags_alone_constrain_a_schedule(cli, model_dir):
    result = cli("schedule", model_dir, "--json", "--min", "web=0.5", "--max-change", "0.1", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    check_schedule(doc, {"domains": {"web": {"min": 0.5}}, "schedule": {"max_change": 0.1}})
    assert doc["provenance"]["constraints"]["source"] == "constraint flags"


def test_infeasible_schedule_is_exit_5_naming_the_binding_constraint(cli, model_dir, tmp_path):
    path = write_toml(tmp_path / "c.toml", "[domains.code]\nmin = 0.6\n[domains.web]\nmin = 0.6\n")
    out = tmp_path / "s.json"
    result = cli("schedule", model_dir, "--out", out, "--constraints", path, *FAST)
    assert result.exit_code == 5
    assert result.stderr.startswith("Error:") and str(path) in result.stderr
    assert "min weights sum to 1.2" in result.stderr
    assert not out.exists()


def test_epoch_budget_exhausted_is_exit_5(cli, model_dir, tmp_path):
    text = "[domains.code]\nmax = 0.2\n[domains.web]\navailable_tokens = 1e3\n" + (
        "[domains.prose]\navailable_tokens = 1e3\n[schedule]\ntokens_per_step = 1000\n"
    )
    result = cli(
        "schedule",
        model_dir,
        "--out",
        "-",
        "--constraints",
        write_toml(tmp_path / "c.toml", text),
        *FAST,
    )
    assert result.exit_code == 5
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and "epoch budget" in last and "web" in last


def test_unknown_domain_in_the_file_is_exit_3_naming_it(cli, model_dir, tmp_path):
    path = write_toml(tmp_path / "c.toml", "[domains.books]\nmax = 0.1\n")
    for command in (
        ["schedule", model_dir, "--out", "-"],
        ["online", model_dir, "--step", "150", "--loss", "4", "--target-steps", "600"],
    ):
        result = cli(*command, "--constraints", path, *FAST)
        assert result.exit_code == 3, result.output
        assert (
            result.stderr.startswith("Error:")
            and f"{path}: unknown domain(s) books" in result.stderr
        )


def test_invalid_toml_is_exit_3(cli, model_dir, tmp_path):
    path = write_toml(tmp_path / "c.toml", "[domains.code\nmax = 0.1\n")
    result = cli("schedule", model_dir, "--out", "-", "--constraints", path, *FAST)
    assert result.exit_code == 3 and str(path) in result.stderr


def test_online_decision_respects_constraints(cli, model_dir, tmp_path):
    path = write_toml(tmp_path / "c.toml", TOML)
    result = cli(
        "online", model_dir, "--step", "6250", "--loss", "3.2", "--target-steps", "25000",
        "--param-ratio", "1", "--json", "--constraints", path, *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    weights = json.loads(result.stdout)["weights"]
    assert weights["prose"] <= 0.25 and weights["code"] >= 0.1


def test_online_follow_keeps_the_whole_run_within_constraints(cli, model_dir, tmp_path):
    path = write_toml(tmp_path / "c.toml", TOML)
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(
            json.dumps({"run": "t", "step": s, "val/loss": 3.0 + 3 * np.exp(-s / 5000)}) + "\n"
            for s in range(1000, 25001, 1000)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "online.json"
    result = cli(
        "online", model_dir, "--follow", log, "--target-steps", "25000", "--param-ratio", "1",
        "--timeout", "0.2", "--poll", "0.05", "--out-schedule", out, "--constraints", path, *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert len(doc["stages"]) == 4
    check_schedule(doc, TOML_DATA)
    assert doc["provenance"]["constraints"]["source"] == str(path)


def test_design_respects_min_and_max(cli, tmp_path):
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps({"a": 0.5, "b": 0.3, "c": 0.2}), encoding="utf-8")
    path = write_toml(
        tmp_path / "c.toml", "[domains.a]\nmin = 0.2\nmax = 0.6\n[domains.c]\nmax = 0.1\n"
    )
    result = cli("design", "--static", "--prior", prior, "--runs", "30", "--out", "-",
                 "--constraints", path)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout).values()
    assert all(0.2 <= r["a"] <= 0.6 and r["c"] <= 0.1 for r in rows)
    bad = write_toml(tmp_path / "bad.toml", "[domains.a]\nmin = 0.7\n[domains.b]\nmin = 0.7\n")
    result = cli("design", "--static", "--prior", prior, "--runs", "3", "--out", "-",
                 "--constraints", bad)
    assert result.exit_code == 5 and "min weights" in result.stderr


# ----------------------------------------------------------------------------- ensemble


# Not the session's tiny_model: fit_ensemble needs the in-memory fit, so this refits the tiny
# model's settings and saves it with 4 bootstrap replicas.
@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory):
    from regmixd_cli.fit.ensemble import ENSEMBLE_KEY, ensemble_blobs, fit_ensemble
    from regmixd_cli.fit.files import save_model
    from regmixd_cli.fit.model import FitConfig, XGBSettings
    from regmixd_cli.fit.training import fit_model
    from tests.helpers.online_world import TARGET, build_store

    settings = XGBSettings(learning_rate=0.3, max_rounds=20, early_stopping_rounds=5, nthread=1)
    config = FitConfig(target=TARGET, n_switch_points=3, folds=2, xgb=settings)
    store = build_store()
    fitted = fit_model(store, config)
    ens = fit_ensemble(store, fitted, 4)
    path = tmp_path_factory.mktemp("ens") / "model"
    save_model(path, fitted, {ENSEMBLE_KEY: ens.metadata}, ensemble_blobs(ens))
    return path


def test_schedule_from_an_ensemble_model_carries_intervals(cli, ensemble_dir):
    import jsonschema

    from regmixd_cli.plan.schedule_file import schedule_schema_path

    result = cli("schedule", ensemble_dir, "--json", *FAST, "--force-dynamic")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    schema = json.loads(schedule_schema_path().read_text(encoding="utf-8"))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert "predicted_loss_interval" not in doc["stages"][0]  # segment 0: the prior
    for stage in doc["stages"][1:]:
        p10, p50, p90 = stage["predicted_loss_interval"]
        assert p10 <= p50 <= p90
    assert doc["provenance"]["ensemble"]["size"] == 4
    static = cli("schedule", ensemble_dir, "--json", "--static", *FAST)
    assert static.exit_code == 0, static.output
    assert len(json.loads(static.stdout)["stages"][0]["predicted_loss_interval"]) == 3


def test_risk_ranks_by_an_ensemble_quantile(cli, ensemble_dir):
    low = cli("schedule", ensemble_dir, "--json", "--risk", "0.9", *FAST)
    assert low.exit_code == 0, low.output
    doc = json.loads(low.stdout)
    assert doc["provenance"]["ensemble"]["risk"] == 0.9
    again = cli("schedule", ensemble_dir, "--json", "--risk", "0.9", *FAST)
    assert again.stdout == low.stdout  # deterministic


def test_risk_without_an_ensemble_is_exit_4(cli, model_dir):
    result = cli("schedule", model_dir, "--out", "-", "--risk", "0.8", *FAST)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error:") and "--ensemble 20" in result.stderr
    assert str(model_dir) in result.stderr
    bad = cli("schedule", model_dir, "--out", "-", "--risk", "1.5", *FAST)
    assert bad.exit_code == 2


def test_fit_ensemble_flag_stores_replicas_and_default_stays_plain(cli, tmp_path):
    from tests.helpers.fit_stores import smooth_store

    store = tmp_path / "store"
    smooth_store(store, n_runs=20)
    args = ["--switch-points", "2", "--folds", "2", "--max-rounds", "10"]
    plain = cli("fit", store, "--out", tmp_path / "plain", *args)
    assert plain.exit_code == 0, plain.output
    meta = json.loads((tmp_path / "plain" / "model.json").read_text(encoding="utf-8"))
    assert "ensemble" not in meta and not any(f.startswith("ens") for f in meta["files"])
    ens = cli("fit", store, "--out", tmp_path / "ens", "--ensemble", "3", *args)
    assert ens.exit_code == 0, ens.output
    meta2 = json.loads((tmp_path / "ens" / "model.json").read_text(encoding="utf-8"))
    assert meta2["ensemble"]["size"] == 3 and meta2["ensemble"]["method"].startswith("bootstrap")
    assert "ensemble: 3 bootstrap replicas" in ens.stderr and "ensemble:" not in plain.stderr
    assert sum(f.startswith("ens") for f in meta2["files"]) == 3 * len(meta["files"])
    # The main boosters are the same with and without the ensemble.
    for name, digest in meta["files"].items():
        assert meta2["files"][name] == digest
    assert cli("fit", store, "--out", tmp_path / "x", "--ensemble", "1", *args).exit_code == 2


def test_a_bound_finer_than_a_millionth_is_kept_within_a_millionth():
    """min = max = 0.33203125 has no exact millionth: the rounded weight stays within 1e-6."""
    import numpy as np

    from regmixd_cli.plan.region import Region

    lower = np.array([0.0, 0.0, 0.33203125])
    upper = np.array([1.0, 1.0, 0.33203125])
    rounded = Region(lower, upper).round([0.3, 0.36796875, 0.33203125])
    assert sum(round(w * 1_000_000) for w in rounded) == 1_000_000
    assert abs(rounded[2] - 0.33203125) <= 1e-6
