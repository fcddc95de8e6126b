"""RegMix's real proxy runs: ingest, fit and evaluate through the CLI.

The numbers are reported in docs/explanation/accuracy.md.

Honest protocol: the model is fitted on the 512 training runs with the default settings; early
stopping uses a split of those runs; the 256 test runs are only predicted, once.
The per-target table is `python bench/regmix_accuracy.py`.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

# RegMix paper, 1M proxies, Pile-CC: LightGBM 0.9845, linear regression 0.9008.
MIN_TEST_RHO = 0.98


def _ingest(cli, data, split, out):
    result = cli(
        "ingest", data / f"{split}_mixture_1m.csv", data / f"{split}_pile_loss_1m.csv", "--out", out
    )
    assert result.exit_code == 0, result.output
    return out


def test_pile_cc_rank_correlation_on_held_out_runs(cli, regmix_data, tmp_path):
    train = _ingest(cli, regmix_data, "train", tmp_path / "train")
    test = _ingest(cli, regmix_data, "test", tmp_path / "test")

    result = cli("fit", train, "--out", tmp_path / "model", "--target", "val/pile_cc", "--json")
    assert result.exit_code == 0, result.output
    assert "endpoint losses only" in result.stderr
    report = json.loads(result.stdout)
    assert report["n_runs"] == 512 and report["endpoint_only"]
    cv_rho = report["endpoint"]["endpoint"]["spearman"]
    assert cv_rho >= MIN_TEST_RHO, f"cross-validated rho {cv_rho}"

    result = cli("evaluate", tmp_path / "model", test, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["n_runs"] == 256
    print(f"\nPile-CC: CV rho {cv_rho:.4f}, test {json.dumps(scores['endpoint'])}")
    assert scores["endpoint"]["spearman"] >= MIN_TEST_RHO
    assert scores["endpoint"]["pearson"] >= MIN_TEST_RHO
    assert "rollout" not in scores


def test_mean_of_all_losses_ranks_held_out_runs(cli, regmix_data, tmp_path):
    """The RegMix-D paper judges mixtures on an average over tasks: the objective `mean` of all
    13 losses (one regressor per loss) ranks the 256 held-out runs as well as one loss does."""
    train = _ingest(cli, regmix_data, "train", tmp_path / "train")
    test = _ingest(cli, regmix_data, "test", tmp_path / "test")
    result = cli("fit", train, "--out", tmp_path / "model", "--target", "val/*", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["objective"]["metrics"]) == 13 and report["objective"]["kind"] == "mean"
    result = cli("evaluate", tmp_path / "model", test, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    print(f"\nmean of 13: CV rho {report['endpoint']['endpoint']['spearman']:.4f}, "
          f"test {json.dumps(scores['endpoint'])}")
    assert scores["n_runs"] == 256 and len(scores["targets"]) == 13
    assert scores["endpoint"]["spearman"] >= MIN_TEST_RHO
