"""RegMix-style proxy mixture design: simplex, rounding, caps, determinism, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regmixd_cli.errors import InfeasibleError, UsageError
from regmixd_cli.sim.design import caps_from_tokens, design_mixtures
from regmixd_cli.sim.world import make_world
from regmixd_cli.store.readers.mixtures import read_mixtures
from tests.helpers.cli import fails
from tests.helpers.paths import PROXY_PRIOR

PILE = make_world(17, 0).prior  # token shares of the 17 Pile domains


def _units(mixtures: np.ndarray) -> np.ndarray:
    return np.rint(mixtures * 5000).astype(int)


def test_mixtures_lie_on_the_simplex_on_a_2e4_grid():
    mixtures = design_mixtures(PILE, 300, seed=0)
    assert mixtures.shape == (300, 17)
    assert np.all(mixtures >= 0)
    units = _units(mixtures)
    np.testing.assert_allclose(mixtures * 5000, units, atol=1e-9)
    assert np.all(units.sum(axis=1) == 5000)  # sums exactly 1 on the grid
    assert np.all((mixtures == 0) | (mixtures >= 2e-4))
    assert len({row.tobytes() for row in units}) == 300  # no duplicates


def test_sparsity_resembles_regmix():
    mixtures = design_mixtures(PILE, 512, seed=0)
    zero_share = float(np.mean(mixtures == 0))
    nonzero = (mixtures > 0).sum(axis=1)
    # RegMix's documented procedure gives about 2/3 zero weights here (its published 1M
    # mixtures have 45%): sparse mixtures, from one domain to nearly all of them.
    assert 0.5 < zero_share < 0.8
    assert nonzero.min() == 1 and nonzero.max() >= 14


def test_design_is_reproducible():
    a = design_mixtures(PILE, 50, seed=3)
    np.testing.assert_array_equal(a, design_mixtures(PILE, 50, seed=3))
    assert not np.array_equal(a, design_mixtures(PILE, 50, seed=4))


def test_caps_are_respected():
    available = [1e9] + [None] * 16  # pile_cc: 1B unique tokens
    caps = caps_from_tokens(available, max_epochs=0.25, proxy_tokens=1e9)
    assert caps[0] == 0.25 and caps[1:] == (1.0,) * 16
    mixtures = design_mixtures(PILE, 200, seed=0, caps=caps)
    assert mixtures[:, 0].max() <= 0.25
    assert mixtures[:, 0].max() > 0.2  # the cap binds, it is not just avoided


def test_zero_prior_domain_stays_zero():
    prior = [0.5, 0.0, 0.5]
    mixtures = design_mixtures(prior, 40, seed=0)
    assert np.all(mixtures[:, 1] == 0)


def test_infeasible_requests():
    with pytest.raises(InfeasibleError, match="caps sum to 0.5"):
        design_mixtures([0.5, 0.5], 3, seed=0, caps=[0.25, 0.25])
    with pytest.raises(InfeasibleError, match="only 1 distinct"):
        design_mixtures([1.0], 2, seed=0)
    with pytest.raises(UsageError):
        design_mixtures([0.5, 0.5], 0, seed=0)


# ------------------------------------------------------------------------------------ CLI


@pytest.fixture
def prior_file(tmp_path):
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"pile_cc": 0.5, "github": 0.3, "wikipedia_en": 0.2}))
    return path


def test_cli_design_json_and_csv_are_readable_mixtures(cli, tmp_path, prior_file):
    for name in ("m.json", "m.csv"):
        result = cli("design", "--static", "--prior", prior_file, "--runs", "20",
                     "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
    parsed = {n: read_mixtures(tmp_path / n).mixtures for n in ("m.json", "m.csv")}
    assert list(parsed["m.json"]) == [f"p{i:03d}" for i in range(20)]
    for run, record in parsed["m.json"].items():
        assert dict(record.weights) == pytest.approx(dict(parsed["m.csv"][run].weights))
        assert sum(record.weights.values()) == pytest.approx(1.0, abs=1e-12)
    again = cli("design", "--static", "--prior", prior_file, "--runs", "20", "--out", "-")
    assert again.exit_code == 0, again.output
    assert again.stdout == (tmp_path / "m.json").read_text()


def test_cli_design_caps(cli, tmp_path, prior_file):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"pile_cc": 1e9}))
    out = tmp_path / "m.json"
    result = cli(
        "design", "--static", "--prior", prior_file, "--runs", "30", "--available-tokens", tokens,
        "--max-epochs", "0.3", "--proxy-tokens", "1e9", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert max(m["pile_cc"] for m in json.loads(out.read_text()).values()) <= 0.3


def test_cli_design_errors(cli, tmp_path, prior_file):
    base = ("design", "--static", "--prior", prior_file, "--runs", "5")
    result = cli(*base, "--out", tmp_path / "m.txt")
    assert result.exit_code == 2 and result.stderr.startswith("Error:")
    result = cli(*base, "--max-epochs", "4", "--out", tmp_path / "m.json")
    assert result.exit_code == 2 and "--available-tokens" in result.stderr
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"reddit": 1e9}))
    result = cli(*base, "--available-tokens", tokens, "--out", tmp_path / "m.json")
    assert result.exit_code == 3 and str(tokens) in result.stderr
    tokens.write_text(json.dumps({"pile_cc": 1e6, "github": 1e6, "wikipedia_en": 1e6}))
    result = cli(*base, "--available-tokens", tokens, "--out", tmp_path / "m.json")
    assert result.exit_code == 5 and result.stderr.startswith("Error:")
    bad_prior = tmp_path / "bad.json"
    bad_prior.write_text(json.dumps({"pile_cc": 0.5, "github": -0.5}))
    result = cli("design", "--static", "--prior", bad_prior, "--runs", "5",
                 "--out", tmp_path / "m.json")
    assert result.exit_code == 3 and str(bad_prior) in result.stderr
    assert not (tmp_path / "m.json").exists()


def test_design_explains_it_needs_a_prior_file(cli, tmp_path):
    fails(cli("design", "--static", "--prior", "uniform", "--runs", "4",
              "--out", tmp_path / "m.json"),
          2, "--prior uniform", "prior FILE")


def test_design_constraints_name_the_prior(cli, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[domains.nope]\nmax = 0.5\n")
    result = cli(
        "design", "--static", "--prior", PROXY_PRIOR, "--runs", "3", "--out", "-",
        "--constraints", toml
    )
    fails(result, 3, toml, "the prior has")
    assert "the model" not in result.stderr
