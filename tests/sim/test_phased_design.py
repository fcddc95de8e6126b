"""`regmixd design` phased designs and `regmixd simulate --mixtures` on them."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.store.readers.mixtures import read_mixtures
from tests.helpers.cli import fails


@pytest.fixture
def prior_file(tmp_path):
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"pile_cc": 0.5, "github": 0.3, "wikipedia_en": 0.2}))
    return path


def _design(cli, prior, out, *extra):
    return cli("design", "--prior", prior, "--runs", "20", "--proxy-steps", "600",
               "--switch-points", "2", *extra, "--out", out)


def test_phased_design_csv_and_json_agree(cli, tmp_path, prior_file):
    for name in ("d.csv", "d.json"):
        result = _design(cli, prior_file, tmp_path / name)
        assert result.exit_code == 0, result.output
    csv_text = (tmp_path / "d.csv").read_text()
    assert csv_text.startswith("run,start_step,pile_cc,github,wikipedia_en\n")
    parsed = {n: read_mixtures(tmp_path / n) for n in ("d.csv", "d.json")}
    assert list(parsed["d.csv"].mixtures) == [f"p{i:03d}" for i in range(20)]
    for run, record in parsed["d.csv"].mixtures.items():
        assert dict(record.weights) == pytest.approx(dict(parsed["d.json"].mixtures[run].weights))
    phases = parsed["d.csv"].phases
    # the default share: half the runs switch, only at the grid's switch points (200, 400)
    assert len(phases) == 10
    assert {s for steps in phases.values() for s in steps} <= {200, 400}
    assert phases.keys() == parsed["d.json"].phases.keys()


def test_phased_design_first_phases_are_the_static_design(cli, tmp_path, prior_file):
    assert _design(cli, prior_file, tmp_path / "d.csv").exit_code == 0
    result = cli("design", "--static", "--prior", prior_file, "--runs", "20",
                 "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    phased = read_mixtures(tmp_path / "d.csv").mixtures
    static = read_mixtures(tmp_path / "s.csv").mixtures
    assert {r: dict(m.weights) for r, m in phased.items()} == {
        r: dict(m.weights) for r, m in static.items()}


def test_design_share_prefix_and_determinism(cli, tmp_path, prior_file):
    result = _design(cli, prior_file, "-", "--switch-share", "1", "--prefix", "v", "--seed", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert all(r.startswith("v") and len(p) >= 2 for r, p in data.items())
    again = _design(cli, prior_file, "-", "--switch-share", "1", "--prefix", "v", "--seed", "3")
    assert again.stdout == result.stdout
    none = _design(cli, prior_file, "-", "--switch-share", "0")
    assert all(len(p) == 1 for p in json.loads(none.stdout).values())


def test_design_errors(cli, tmp_path, prior_file):
    out = tmp_path / "d.csv"
    fails(cli("design", "--prior", prior_file, "--runs", "5", "--out", out), 2, "--proxy-steps")
    fails(cli("design", "--static", "--prior", prior_file, "--runs", "5", "--switch-share",
              "0.5", "--out", out), 2, "--switch-share")
    fails(cli("design", "--prior", prior_file, "--runs", "5", "--proxy-steps", "3",
              "--switch-points", "5", "--out", out), 2, "--proxy-steps 3")
    assert not out.exists()


def test_simulate_phased_design_then_ingest(cli, tmp_path, prior_file):
    assert _design(cli, prior_file, tmp_path / "d.csv").exit_code == 0
    sim = tmp_path / "sim"
    result = cli("simulate", "--mixtures", tmp_path / "d.csv", "--steps", "600",
                 "--eval-every", "50", "--out", sim)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (sim / "logs" / "part-0.jsonl").read_text().splitlines()]
    assert any("start_step" in x for x in lines)
    doc = json.loads((sim / "mixtures.json").read_text())
    assert sum(len(p) > 1 for p in doc.values()) == 10
    result = cli("ingest", sim / "logs", "--out", tmp_path / "store")
    assert result.exit_code == 0, result.output
    shown = cli("show", tmp_path / "store")
    assert "phased runs" in shown.stdout


def test_simulated_switch_changes_the_curve(tmp_path):
    import numpy as np

    from regmixd_cli.sim.proxies import simulate_runs
    from regmixd_cli.sim.world import make_world

    world = make_world(3, 0, proxy_steps=600)
    mix = np.array([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1]])
    sim = simulate_runs(world, mix, 0, eval_every=50, phases=[[], [(300, [0.1, 0.1, 0.8])]])
    before = sim.steps <= 300
    # identical until the switch (same mixture, noise-free), different after it
    np.testing.assert_allclose(sim.true_target[0, before], sim.true_target[1, before])
    assert not np.allclose(sim.true_target[0, ~before], sim.true_target[1, ~before])
