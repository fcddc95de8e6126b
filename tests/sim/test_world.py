"""Synthetic worlds: reproducibility, the dynamics against a direct simulation, oracle, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.sim.files import stages_from_document, world_from_dict, world_to_dict
from regmixd_cli.sim.oracle import OracleConfig, find_oracle, oracle_document
from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
from regmixd_cli.sim.world import (
    Dynamics,
    World,
    even_stages,
    make_world,
    static_stages,
    true_final_loss,
    true_loss_curve,
)
from tests.helpers.cli import fails
from tests.helpers.paths import PROXY_WORLD

FAST = OracleConfig(candidates=256, refine_starts=2, static_iterations=40, schedule_iterations=60)


def reference_loss(world: World, stages, until: float = 1.0, n: int = 20_000) -> float:
    """The world's dynamics stepped directly (midpoint rule) up to fraction `until`."""
    d = world.dynamics
    avail = np.asarray(world.available)
    seen = np.zeros(world.n_domains)
    skill = np.zeros(world.n_domains)

    def effective(raw):
        x = raw / avail
        rep = d.repetition_decay
        return avail * np.where(x <= 1, x, 1 + rep * (1 - np.exp(-(x - 1) / rep)))

    for i in range(round(n * until)):
        u = (i + 0.5) / n
        w = next(np.asarray(ws) for s, e, ws in stages if s <= u < e)
        late = u**d.transition_power
        value = (1 - late) * np.asarray(world.early) + late * np.asarray(world.late)
        skill += value * (effective(seen + w / n) - effective(seen))
        seen = seen + w / n
    q = (skill**d.concavity).sum()
    return d.loss_floor + d.amplitude * (1 + q / d.scale) ** -d.exponent


def test_world_is_reproducible_from_its_seed():
    assert world_to_dict(make_world(6, 3)) == world_to_dict(make_world(6, 3))
    assert world_to_dict(make_world(6, 3)) != world_to_dict(make_world(6, 4))
    world = make_world(19, 0)
    assert world.domains[:3] == ("pile_cc", "github", "arxiv")
    assert world.domains[-2:] == ("domain_17", "domain_18")
    assert world.target_metric == "val/pile_cc"
    assert math.isclose(sum(world.prior), 1.0)


def test_world_round_trips_through_json():
    world = make_world(5, 2)
    text = json.dumps(world_to_dict(world))
    assert world_from_dict(json.loads(text), "w.json") == world


def test_world_file_errors_name_the_file():
    data = world_to_dict(make_world(3, 0))
    with pytest.raises(InputError, match=r"^w\.json: schema"):
        world_from_dict({**data, "schema_version": "other/v9"}, "w.json")
    broken = {**data, "dynamics": {"loss_floor": 1.0}}
    with pytest.raises(InputError, match=r"^w\.json: malformed world"):
        world_from_dict(broken, "w.json")


def test_loss_magnitudes_are_realistic():
    world = make_world(6, 0)
    curve = true_loss_curve(world, static_stages(world.prior), [0, 50, 200, 500, 1000])
    assert 9.5 < curve[0] < 10.5
    assert np.all(np.diff(curve) < 0)
    assert 4.0 < curve[-1] < 6.5
    pure_code = true_final_loss(world, static_stages([0, 1, 0, 0, 0, 0]))
    assert pure_code > curve[-1] + 0.5


def test_true_loss_agrees_with_a_direct_simulation():
    world = make_world(4, 1)
    stages = [
        (0.0, 0.3, [0.7, 0.1, 0.1, 0.1]),
        (0.3, 0.55, [0.25, 0.25, 0.25, 0.25]),
        (0.55, 1.0, [0.0, 0.1, 0.2, 0.7]),
    ]
    assert true_final_loss(world, stages) == pytest.approx(reference_loss(world, stages), abs=1e-6)


def test_true_loss_agrees_with_a_direct_simulation_when_data_repeats():
    world = make_world(10, 0)
    assert world.domains[9] == "hackernews" and world.available[9] < 0.1
    stages = [(0.0, 0.4, [0.5] + [0.5 / 9] * 9), (0.4, 1.0, [0.05] * 9 + [0.55])]
    curve = true_loss_curve(world, stages, [300, 700, 1000])
    for step, loss in zip((300, 700, 1000), curve, strict=True):
        assert loss == pytest.approx(reference_loss(world, stages, step / 1000), abs=1e-4)


def test_schedule_transfers_across_run_lengths_and_scales():
    short = make_world(4, 0, proxy_steps=200)
    long = make_world(4, 0, proxy_steps=5000)
    stages = even_stages([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]])
    assert true_final_loss(short, stages) == pytest.approx(true_final_loss(long, stages))
    proxy = true_loss_curve(long, stages, [2500])
    target = true_loss_curve(long, stages, [2500], scale="target")
    assert target[0] == pytest.approx(proxy[0] / 1000**0.05)


def test_repeated_data_helps_less():
    world = make_world(10, 0)
    small = world.domains.index("hackernews")
    assert world.available[small] < 0.1  # a small corpus: a heavy weight repeats it
    unlimited = dataclasses.replace(world, available=(1e6,) * 10)
    light, heavy = np.full(10, 0.95 / 9), np.full(10, 0.5 / 9)
    light[small], heavy[small] = 0.05, 0.5
    for mix, repeats in ((light, False), (heavy, True)):
        finite = true_final_loss(world, static_stages(mix))
        endless = true_final_loss(unlimited, static_stages(mix))
        assert (finite > endless + 1e-3) is repeats


def test_bad_stages_are_usage_errors():
    world = make_world(3, 0)
    with pytest.raises(UsageError, match="does not follow"):
        true_final_loss(world, [(0.0, 0.5, [1, 0, 0]), (0.6, 1.0, [0, 1, 0])])
    with pytest.raises(UsageError, match="sum to 1"):
        true_final_loss(world, static_stages([0.5, 0.2, 0.1]))
    with pytest.raises(UsageError, match="weights for 3 domains"):
        true_final_loss(world, static_stages([1.0]))


def test_simulated_runs_follow_the_truth_with_small_noise():
    world = make_world(4, 1)
    rng = np.random.default_rng(0)
    mixtures = rng.dirichlet(np.ones(4), 16)
    sim = simulate_runs(world, mixtures, seed=7, eval_every=100)
    assert list(sim.steps) == list(range(100, 1001, 100))
    assert list(sim.tokens) == [s * 1_048_576 for s in sim.steps]
    expected = true_loss_curve(world, static_stages(mixtures[3]), sim.steps)
    np.testing.assert_allclose(sim.true_target[3], expected, rtol=0, atol=1e-12)
    assert np.abs(sim.target - sim.true_target).max() < 0.1
    assert np.abs(sim.target - sim.true_target).std() > 0.001
    # Run i's noise depends on (seed, i) alone: a prefix of the runs is the same simulation.
    head = simulate_runs(world, mixtures[:8], seed=7, eval_every=100)
    np.testing.assert_array_equal(head.target, sim.target[:8])


def test_best_mixture_changes_during_training():
    world = make_world(6, 0)
    web = static_stages([0.9, 0.02, 0.02, 0.02, 0.02, 0.02])
    curated = static_stages([0.3, 0.02, 0.1, 0.3, 0.2, 0.08])  # more wikipedia and Q&A
    early_web, late_web = true_loss_curve(world, web, [100, 1000])
    early_curated, late_curated = true_loss_curve(world, curated, [100, 1000])
    assert early_web < early_curated and late_curated < late_web


def test_runs_to_store_has_the_store_layout():
    world = make_world(3, 0)
    sim = simulate_runs(world, np.eye(3), seed=0, eval_every=500)
    store = runs_to_store(sim)
    assert store.domains == world.domains
    assert store.n_runs == 3
    assert store.trajectories.height == 3 * 2 * 2
    assert store.metrics == ("train/loss", "val/pile_cc")


def test_oracle_orders_schedule_static_prior_and_agrees_with_scoring():
    world = make_world(4, 0)
    found = find_oracle(world, n_switch_points=3, seed=0, config=FAST)
    assert found.schedule_loss <= found.static_loss <= found.prior_loss
    assert found.schedule_loss < found.static_loss - 0.01  # a schedule visibly helps
    assert found.prior_loss == pytest.approx(true_final_loss(world, static_stages(world.prior)))
    static_doc = oracle_document(world, found, "oracle-static", 0, "sha", FAST)
    schedule_doc = oracle_document(world, found, "oracle-schedule", 0, "sha", FAST)
    assert len(schedule_doc["stages"]) == 4
    for doc, loss in ((static_doc, found.static_loss), (schedule_doc, found.schedule_loss)):
        scored = true_final_loss(world, stages_from_document(doc, world, "doc"))
        assert scored == loss
        assert doc["provenance"]["true_final_loss"] == loss
    # The static answer trained as a proxy ends at the same true loss.
    sim = simulate_runs(world, [found.static], seed=0)
    assert sim.true_target[0, -1] == pytest.approx(found.static_loss, abs=1e-12)
    for stage in schedule_doc["stages"]:
        assert math.fsum(stage["weights"].values()) == pytest.approx(1.0, abs=1e-12)


def test_documents_plain_mixture_and_errors():
    world = make_world(3, 0)
    stages = stages_from_document({"pile_cc": 0.5, "github": 0.5}, world, "m.json")
    assert stages == [(0.0, 1.0, (0.5, 0.5, 0.0))]
    with pytest.raises(InputError, match=r"^m\.json: unknown domain\(s\) reddit"):
        stages_from_document({"pile_cc": 0.5, "reddit": 0.5}, world, "m.json")
    by_steps = {
        "target_steps": 100,
        "stages": [
            {"start_step": 0, "end_step": 40, "weights": {"pile_cc": 1.0}},
            {"start_step": 40, "end_step": 100, "weights": {"arxiv": 1.0}},
        ],
    }
    assert [s[:2] for s in stages_from_document(by_steps, world, "s.json")] == [
        (0.0, 0.4),
        (0.4, 1.0),
    ]
    gap = {"stages": [{"start_fraction": 0.0, "end_fraction": 0.5, "weights": {"pile_cc": 1}}]}
    with pytest.raises(InputError, match=r"^s\.json: stages cover"):
        stages_from_document(gap, world, "s.json")


def test_custom_dynamics_are_kept():
    world = make_world(2, 0, dynamics=Dynamics(eval_noise=0.0, run_noise=0.0))
    sim = simulate_runs(world, [[0.5, 0.5]], seed=0)
    np.testing.assert_allclose(sim.target, sim.true_target)


# ------------------------------------------------------------------------------------ CLI


def _read_dir(path):
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_cli_simulate_writes_reproducible_native_logs(cli, tmp_path):
    args = ("simulate", "--runs", "12", "--domains", "5", "--seed", "3", "--eval-every", "100")
    result = cli(*args, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert cli(*args, "--out", tmp_path / "b").exit_code == 0
    files = _read_dir(tmp_path / "a")
    assert files == _read_dir(tmp_path / "b")
    assert sorted(files) == [
        "logs/part-0.jsonl", "logs/part-1.jsonl", "logs/part-2.jsonl", "logs/part-3.jsonl",
        "mixtures.json", "prior.json", "simulation.json", "world.json",
    ]  # fmt: skip
    world = json.loads(files["world.json"])
    assert world["schema_version"] == "regmixd.world/v1"
    assert world == world_to_dict(make_world(5, 3))
    lines = [json.loads(x) for f in files if f.startswith("logs/") for x in files[f].splitlines()]
    mixtures = {x["run"]: x["mixture"] for x in lines if "mixture" in x}
    assert mixtures == json.loads(files["mixtures.json"])
    assert len(mixtures) == 12
    obs = [x for x in lines if "step" in x]
    assert len(obs) == 12 * 10
    assert set(obs[0]) == {"run", "step", "tokens", "val/pile_cc", "train/loss"}
    assert all(x["tokens"] == x["step"] * 1_048_576 for x in obs)
    changed = cli(*args[:-2], "--eval-every", "100", "--seed", "4", "--out", tmp_path / "a")
    assert changed.exit_code == 0, changed.output
    assert _read_dir(tmp_path / "a") != files


def test_cli_simulate_with_user_mixtures(cli, tmp_path):
    path = tmp_path / "mix.csv"
    path.write_text("run,pile_cc,github,wikipedia_en\nr1,0.5,0.5,0\nr2,0.2,0.3,0.5\n")
    result = cli("simulate", "--mixtures", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    mixtures = json.loads((tmp_path / "out" / "mixtures.json").read_text())
    assert mixtures == {
        "r1": {"pile_cc": 0.5, "github": 0.5, "wikipedia_en": 0.0},
        "r2": {"pile_cc": 0.2, "github": 0.3, "wikipedia_en": 0.5},
    }
    world = json.loads((tmp_path / "out" / "world.json").read_text())
    assert world["domains"] == ["pile_cc", "github", "wikipedia_en"]
    bad = cli("simulate", "--mixtures", path, "--domains", "4", "--out", tmp_path / "x")
    assert bad.exit_code == 2


def test_cli_simulate_usage_errors(cli, tmp_path):
    result = cli("simulate", "--runs", "4", "--domains", "3")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and "--out" in result.stderr
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = cli("simulate", "--runs", "4", "--domains", "3", "--out", precious)
    assert result.exit_code == 2
    assert str(precious) in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    assert cli("simulate", "--runs", "0", "--domains", "3", "--out", tmp_path / "z").exit_code == 2


def test_cli_score_and_oracle(cli, tmp_path):
    out = tmp_path / "w"
    assert cli("simulate", "--runs", "8", "--domains", "4", "--out", out).exit_code == 0
    world_path = out / "world.json"
    world = make_world(4, 0)
    mixture = tmp_path / "m.json"
    mixture.write_text(json.dumps({"pile_cc": 0.7, "arxiv": 0.3}))
    result = cli("simulate", "score", world_path, mixture, "--json", "--allow-missing-domains")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["final_loss"] == true_final_loss(world, static_stages([0.7, 0, 0.3, 0]))
    assert scored["n_stages"] == 1
    assert "True final val/pile_cc" in result.stderr

    oracle_path = tmp_path / "oracle.json"
    result = cli(
        "simulate", "oracle", world_path, "--switch-points", "2", "--out", oracle_path,
        "--static-out", tmp_path / "static.json", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["schedule_loss"] <= summary["static_loss"] <= summary["prior_loss"]
    assert json.loads(oracle_path.read_text()) == summary["schedule"]
    assert len(summary["schedule"]["stages"]) == 3
    for name, key in (("oracle.json", "schedule_loss"), ("static.json", "static_loss")):
        result = cli("simulate", "score", world_path, tmp_path / name, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["final_loss"] == summary[key]


def test_cli_score_bad_inputs(cli, tmp_path):
    out = tmp_path / "w"
    assert cli("simulate", "--runs", "4", "--domains", "3", "--out", out).exit_code == 0
    unknown = tmp_path / "u.json"
    unknown.write_text(json.dumps({"pile_cc": 0.5, "reddit": 0.5}))
    result = cli("simulate", "score", out / "world.json", unknown)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and str(unknown) in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = cli("simulate", "score", out / "world.json", broken)
    assert result.exit_code == 3 and str(broken) in result.stderr
    result = cli("simulate", "score", broken, unknown)
    assert result.exit_code == 3 and str(broken) in result.stderr
    result = cli("simulate", "score", out / "mixtures.json", unknown)
    assert result.exit_code == 3 and "schema" in result.stderr
    assert cli("simulate", "oracle", out / "world.json", "--json", "--out", "-").exit_code == 2
    assert cli("simulate", "oracle", out / "world.json", "--switch-points", "-1").exit_code == 2


def test_cli_simulate_subcommands_have_help(cli):
    for args in (
        ("simulate", "--help"),
        ("simulate", "score", "--help"),
        ("simulate", "oracle", "--help"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "Example" in result.stdout
    assert "score" in cli("simulate", "--help").stdout


def test_simulate_score_rejects_missing_domains_unless_allowed(cli, tmp_path):
    partial = tmp_path / "pc.json"
    partial.write_text(json.dumps({"pile_cc": 1}))
    fails(cli("simulate", "score", PROXY_WORLD, partial), 3, partial, "github")
    result = cli("simulate", "score", PROXY_WORLD, partial, "--allow-missing-domains", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_stages"] == 1
