"""Prior resolution and mixture validation."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.weights import check_mixture, resolve_prior

DOMAINS = ("a", "b", "c")


def test_uniform_and_proxy_mean():
    assert resolve_prior("uniform", DOMAINS).weights == pytest.approx((1 / 3,) * 3)
    prior = resolve_prior(None, DOMAINS, [0.2, 0.2, 0.4])
    assert prior.weights == pytest.approx((0.25, 0.25, 0.5))
    assert prior.source == "proxy-mean"


def test_prior_file_is_renormalised(tmp_path):
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"a": 0.5, "b": 0.3, "c": 0.205}))
    prior = resolve_prior(str(path), DOMAINS)
    assert sum(prior.weights) == pytest.approx(1.0)
    assert prior.as_dict(DOMAINS)["a"] == pytest.approx(0.5 / 1.005)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": 0.5, "b": 0.5, "z": 0.0}, "unknown domain"),
        ({"a": 0.5, "b": 0.5}, "no weight for domain"),
        ({"a": -0.1, "b": 0.6, "c": 0.5}, ">= 0"),
        ({"a": 0.5, "b": 0.3, "c": 0.1}, "sum to"),
        ({"a": "x", "b": 0.5, "c": 0.5}, "not a number"),
    ],
)
def test_bad_mixtures(weights, message):
    with pytest.raises(InputError, match=message):
        check_mixture(weights, DOMAINS, "f.json")


def test_fill_missing():
    assert check_mixture({"a": 1.0}, DOMAINS, "x", fill_missing=True) == (1.0, 0.0, 0.0)


def test_bad_prior_spec():
    with pytest.raises(UsageError):
        resolve_prior("nope.json", DOMAINS)
