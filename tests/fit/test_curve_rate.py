"""The curve booster's learning rate, chosen by cross-validation (`choose_curve_rate`).

A schedule predicts the curve booster once per candidate, so its tree count is the search's
cost; `fit` also tries CURVE_FAST_RATE and keeps it only where the held-out errors say it
costs nothing. Through the CLI: the report shows both rates and the reason, the model holds
the booster it says, `show` and `fit` print it; and the rule itself on made-up predictions.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from regmixd_cli.fit.boosters import booster_task
from regmixd_cli.fit.crossval import CURVE_FAST_RATE, FAST_CURVE, choose_curve_rate
from regmixd_cli.fit.files import METADATA_HASH, metadata_hash
from regmixd_cli.fit.model import CURVE, CURVE_SHIFT, ENDPOINT, XGBSettings
from tests.helpers.fit_stores import smooth_store

FIT = ("--max-rounds", "80", "--switch-points", "2", "--folds", "3")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("curve_rate") / "store"
    smooth_store(path, n_runs=30)
    return path


def _booster_rounds(path):
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(path))
    return booster.num_boosted_rounds()


def test_fit_reports_both_rates_and_keeps_the_booster_it_names(cli, store, tmp_path):
    out = tmp_path / "m"
    result = cli("fit", store, "--out", out, *FIT, "--learning-rate", "0.05",
                 "--model", "curve-shift")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "model.json").read_text())
    record = meta["report"]["curve_learning_rate"]
    base, fast = record["tried"]
    assert (base["learning_rate"], fast["learning_rate"]) == (0.05, CURVE_FAST_RATE)
    assert record["learning_rate"] in (0.05, CURVE_FAST_RATE)
    kept = fast if record["learning_rate"] == CURVE_FAST_RATE else base
    # The rule, read back from the numbers it printed (rounded to 6 digits).
    se = record["standard_error"]
    within = all(fast[f"{k}_mae"] - base[f"{k}_mae"] <= se[k] for k in ("next", "rollout"))
    assert within == (kept is fast)
    assert meta["report"]["final_rounds"][CURVE] == kept["median_rounds"]
    assert _booster_rounds(out / "curve.ubj") == kept["median_rounds"]
    expected = CURVE_FAST_RATE if kept is fast else None
    assert meta["settings"]["xgboost"]["curve_learning_rate"] == expected
    # The held-out scores reported for curve-shift are those of the booster kept.
    rollout = meta["report"]["endpoint"]["rollout"][CURVE_SHIFT]["mae"]
    assert rollout == pytest.approx(kept["rollout_mae"], abs=2e-6)
    assert "curve booster: learning rate" in result.stderr
    shown = cli("show", out)
    assert shown.exit_code == 0, shown.output
    assert "curve booster" in shown.stdout and "standard error" in shown.stdout


def test_a_rate_at_or_above_the_fast_one_tries_nothing_else(cli, store, tmp_path):
    out = tmp_path / "m"
    result = cli("fit", store, "--out", out, *FIT, "--learning-rate", str(CURVE_FAST_RATE))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "model.json").read_text())
    assert "curve_learning_rate" not in meta["report"]
    assert meta["settings"]["xgboost"]["curve_learning_rate"] is None
    assert "curve booster:" not in result.stderr


def test_the_chosen_rate_is_byte_identical_with_jobs(cli, store, tmp_path):
    for name, jobs in (("a", "1"), ("b", "2")):
        result = cli("fit", store, "--out", tmp_path / name, *FIT, "--learning-rate", "0.05",
                     "--jobs", jobs)
        assert result.exit_code == 0, result.output
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_a_model_without_a_curve_booster_prints_no_rate(cli, store, tmp_path):
    out = tmp_path / "m"
    result = cli("fit", store, "--out", out, *FIT, "--learning-rate", "0.05", "--model",
                 "per-stage")
    assert result.exit_code == 0, result.output
    assert "curve_learning_rate" in json.loads((out / "model.json").read_text())["report"]
    assert "curve booster:" not in result.stderr
    assert "curve booster" not in cli("show", out).stdout


def test_show_skips_a_hand_edited_record(cli, store, tmp_path):
    out = tmp_path / "m"
    assert cli("fit", store, "--out", out, *FIT, "--learning-rate", "0.05").exit_code == 0
    meta = json.loads((out / "model.json").read_text())
    meta["report"]["curve_learning_rate"]["tried"] = "edited"
    meta[METADATA_HASH] = metadata_hash(meta)  # re-sealed, as a careful hand-edit would
    (out / "model.json").write_text(json.dumps(meta))
    shown = cli("show", out)
    assert shown.exit_code == 0, shown.output
    assert "curve booster" not in shown.stdout


def _choose(next_fast_shift: float, rollout_fast_shift: float, n: int = 200):
    rng = np.random.default_rng(0)
    losses = 3.0 + rng.uniform(0, 1, size=(n, 3))
    table = SimpleNamespace(losses=losses)
    base_next = losses[:, 1:] + rng.normal(0, 0.02, size=(n, 2))
    base_roll = losses[:, -1] + rng.normal(0, 0.04, size=n)
    # The faster booster errs as much, the other way (mirrored), plus a shift.
    preds = {
        ENDPOINT: losses[:, -1].copy(),
        f"{CURVE_SHIFT}/next": base_next,
        f"{CURVE_SHIFT}/rollout": base_roll,
        f"{FAST_CURVE}/next": 2 * losses[:, 1:] - base_next + next_fast_shift,
        f"{FAST_CURVE}/rollout": 2 * losses[:, -1] - base_roll + rollout_fast_shift,
    }
    rounds = {ENDPOINT: [100, 100], CURVE: [900, 1000], FAST_CURVE: [300, 350]}
    return choose_curve_rate(table, preds, rounds, XGBSettings()), base_next


def test_the_rule_keeps_the_faster_booster_only_when_it_costs_nothing():
    same, base_next = _choose(-1e-9, -1e-9)  # as good (mirrored errors), up to rounding
    assert same.curve_rate["learning_rate"] == CURVE_FAST_RATE
    assert same.xgb.curve_learning_rate == CURVE_FAST_RATE
    assert same.rounds[CURVE] == [300, 350] and FAST_CURVE not in same.rounds
    assert not np.array_equal(same.preds[f"{CURVE_SHIFT}/next"], base_next)
    assert not any(key.startswith(FAST_CURVE) for key in same.preds)

    worse, base_next = _choose(0.03, 0.0)  # biased next-interval predictions
    assert worse.curve_rate["learning_rate"] == XGBSettings().learning_rate
    assert worse.xgb.curve_learning_rate is None
    assert worse.rounds[CURVE] == [900, 1000]
    assert np.array_equal(worse.preds[f"{CURVE_SHIFT}/next"], base_next)

    # Better on one score does not buy a loss on the other.
    mixed, _ = _choose(-0.01, 0.05)
    assert mixed.curve_rate["learning_rate"] == XGBSettings().learning_rate


def test_the_curve_rate_reaches_only_the_curve_booster():
    settings = XGBSettings(curve_learning_rate=CURVE_FAST_RATE)
    table = SimpleNamespace(losses=np.full((4, 3), 3.0), mixtures=np.full((4, 2), 0.5),
                            in_force=None, history=None, grid=(1.0, 2.0, 3.0))
    runs = np.arange(4)
    assert booster_task(table, runs, CURVE, 0, settings, 0, 5).settings.learning_rate == 0.1
    endpoint = booster_task(table, runs, ENDPOINT, 0, settings, 0, 5).settings
    assert endpoint.learning_rate == XGBSettings().learning_rate


def test_each_target_of_an_objective_keeps_its_own_rate(cli, tmp_path):
    """Several --target: each target's CV chooses its own curve rate; model.json records it
    per target (not once for all), the loaded members carry it, fit and show name each."""
    from regmixd_cli.fit.files import load_model
    from tests.helpers.targets import write_logs

    write_logs(tmp_path / "logs.jsonl")
    assert cli("ingest", tmp_path / "logs.jsonl", "--out", tmp_path / "store").exit_code == 0
    out = tmp_path / "m"
    result = cli("fit", tmp_path / "store", "--out", out, *FIT, "--learning-rate", "0.05",
                 "--model", "curve-shift", "--target", "val/a", "--target", "val/b")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "model.json").read_text())
    assert "curve_learning_rate" not in meta["settings"]["xgboost"]
    loaded = load_model(out)
    for entry, member in zip(meta["targets"], loaded.members, strict=True):
        chosen = entry["report"]["curve_learning_rate"]["learning_rate"]
        assert entry["curve_learning_rate"] == (chosen if chosen == CURVE_FAST_RATE else None)
        assert member.settings["xgboost"]["curve_learning_rate"] == entry["curve_learning_rate"]
        assert f"curve booster ({entry['metric']}): learning rate {chosen:g}" in result.stderr
    shown = cli("show", out)
    assert shown.exit_code == 0, shown.output
    assert "curve booster (val/a)" in shown.stdout and "curve booster (val/b)" in shown.stdout


def test_show_skips_a_rate_neither_booster_was_fitted_with(cli, store, tmp_path):
    out = tmp_path / "m"
    assert cli("fit", store, "--out", out, *FIT, "--learning-rate", "0.05").exit_code == 0
    meta = json.loads((out / "model.json").read_text())
    meta["report"]["curve_learning_rate"]["learning_rate"] = 0.5
    meta[METADATA_HASH] = metadata_hash(meta)
    (out / "model.json").write_text(json.dumps(meta))
    shown = cli("show", out)
    assert shown.exit_code == 0, shown.output
    assert "curve booster" not in shown.stdout
