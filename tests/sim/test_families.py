"""World families: `simulate --family`, and score/oracle for every family."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.sim.families import DEFAULT_FAMILY, FAMILY_NAMES
from regmixd_cli.sim.files import read_world, world_from_dict, world_to_dict
from regmixd_cli.sim.world import make_world, static_stages, true_final_loss, true_loss_curve

OTHER = [f for f in FAMILY_NAMES if f != DEFAULT_FAMILY]


@pytest.mark.parametrize("family", OTHER)
def test_family_world_is_reproducible_and_round_trips(family):
    world = make_world(5, 3, family=family)
    assert world == make_world(5, 3, family=family)
    assert world.family == family and world.family_params
    document = world_to_dict(world)
    assert document["family"] == family
    assert world_from_dict(json.loads(json.dumps(document)), "w") == world
    # The prior ends where the default family's does, and losses fall during training.
    assert true_final_loss(world, static_stages(world.prior)) == pytest.approx(5.0, abs=0.02)
    curve = true_loss_curve(world, static_stages(world.prior), [0, 250, 500, 1000])
    assert curve[0] == pytest.approx(world.initial_loss) and all(curve[1:] < curve[:-1])


def test_default_family_files_carry_no_family_key_and_old_files_load():
    world = make_world(4, 0)
    document = world_to_dict(world)
    assert "family" not in document  # byte-identical to earlier versions' world.json
    assert world_from_dict(document, "w").family == DEFAULT_FAMILY
    broken = world_to_dict(make_world(4, 0, family=OTHER[0])) | {"family": "nope"}
    with pytest.raises(Exception, match="unknown world family"):
        world_from_dict(broken, "w")


def test_curriculum_order_matters():
    world = make_world(6, 0, family="curriculum")
    basics = [1.0 if n == "pile_cc" else 0.0 for n in world.domains]
    advanced = [1.0 / 5 if n != "pile_cc" else 0.0 for n in world.domains]
    first_basics = [(0.0, 0.5, basics), (0.5, 1.0, advanced)]
    first_advanced = [(0.0, 0.5, advanced), (0.5, 1.0, basics)]
    assert true_final_loss(world, first_basics) < true_final_loss(world, first_advanced)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_cli_simulate_family_score_and_oracle(cli, tmp_path, family):
    out = tmp_path / "w"
    args = ("simulate", "--runs", "8", "--domains", "4", "--seed", "1", "--out", out)
    result = cli(*args, "--family", family)
    assert result.exit_code == 0, result.output
    again = tmp_path / "again"
    assert cli(*args[:-1], again, "--family", family).exit_code == 0
    for name in ("world.json", "mixtures.json", "logs/part-0.jsonl"):
        assert (out / name).read_bytes() == (again / name).read_bytes()
    world = read_world(out / "world.json")
    assert world.family == family
    oracle = tmp_path / "oracle.json"
    result = cli("simulate", "oracle", out / "world.json", "--switch-points", "2",
                 "--out", oracle, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["schedule_loss"] <= summary["static_loss"] <= summary["prior_loss"]
    scored = json.loads(cli("simulate", "score", out / "world.json", oracle, "--json").stdout)
    assert scored["final_loss"] == pytest.approx(summary["schedule_loss"], abs=1e-9)
    prior = json.loads(cli("simulate", "score", out / "world.json", out / "prior.json",
                           "--json").stdout)  # fmt: skip
    assert prior["final_loss"] == pytest.approx(summary["prior_loss"], abs=1e-9)


def test_cli_simulate_default_family_is_unchanged(cli, tmp_path):
    plain, named = tmp_path / "plain", tmp_path / "named"
    args = ("simulate", "--runs", "6", "--domains", "3", "--seed", "2")
    assert cli(*args, "--out", plain).exit_code == 0
    assert cli(*args, "--out", named, "--family", DEFAULT_FAMILY).exit_code == 0
    for name in ("world.json", "simulation.json", "logs/part-0.jsonl"):
        assert (plain / name).read_bytes() == (named / name).read_bytes()
    result = cli(*args, "--out", tmp_path / "x", "--family", "nope")
    assert result.exit_code == 2 and "--family" in result.stderr
    result = cli("simulate", "--family", "curriculum", "score", plain / "world.json",
                 plain / "prior.json")  # fmt: skip
    assert result.exit_code == 2
