"""Fitting, cross-validation, prediction and the model directory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from regmixd_cli.domain import MODEL_SCHEMA
from regmixd_cli.errors import ModelError, UsageError
from regmixd_cli.fit import boosters as boosters_module
from regmixd_cli.fit import crossval, training
from regmixd_cli.fit.files import load_model, model_hash, save_model
from regmixd_cli.fit.metrics import pearson, r2, rank_average, spearman, top_k_overlap
from regmixd_cli.fit.model import FitConfig, XGBSettings, curve_shift
from regmixd_cli.fit.training import fit_model
from tests.helpers.fit_stores import make_store, smooth_store, smooth_world

FAST = XGBSettings(max_rounds=150, learning_rate=0.1, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def smooth():
    return smooth_store(n_runs=40)


@pytest.fixture(scope="module")
def fitted(smooth):
    return fit_model(smooth, FitConfig(n_switch_points=2, xgb=FAST))


def test_rank_average_and_spearman_with_ties():
    assert rank_average(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # Hand-computed: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> r = 4.5 / sqrt(4.5 * 5).
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(
        4.5 / math.sqrt(4.5 * 5)
    )
    assert math.isnan(spearman(np.array([1.0, 1.0]), np.array([1.0, 2.0])))


def test_pearson_r2_topk():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert r2(a, a) == pytest.approx(1.0)
    assert r2(a, np.full(4, a.mean())) == pytest.approx(0.0)
    assert top_k_overlap(a, np.array([1.0, 3.0, 2.0, 4.0]), 2) == 0.5
    assert top_k_overlap(a, a, 10) == 1.0


def test_held_out_accuracy_on_a_known_smooth_rule(fitted):
    report = fitted.report
    for row in report["transitions"]:
        for form in ("per-stage", "pooled"):
            assert row[form]["spearman"] > 0.95, (row["stage"], form, row[form])
    for form in ("per-stage", "pooled"):
        assert report["endpoint"]["rollout"][form]["spearman"] > 0.95
    # Curve-shift predicts from mixture -> curve regressors (as hard to learn as the endpoint
    # from 40 runs), but the observed l_j still places the run on its curve.
    for row in report["transitions"]:
        assert row["curve-shift"]["spearman"] > 0.9, row
    curve = report["endpoint"]["rollout"]["curve-shift"]["spearman"]
    assert curve > report["endpoint"]["endpoint"]["spearman"]
    # From l_1 onwards the trajectory carries information the mixture alone does not.
    rollout = report["endpoint"]["rollout"][fitted.form]["spearman"]
    assert rollout > report["endpoint"]["endpoint"]["spearman"] > 0.5


def test_model_fields(fitted, smooth):
    assert fitted.domains == smooth.domains
    assert fitted.target == "val/loss"
    assert fitted.grid == (500 / 3, 1000 / 3, 500.0)
    assert fitted.proxy_steps == 500.0
    assert fitted.n_switch_points == 2 and fitted.has_transitions
    assert len(fitted.loss_ranges) == 3
    assert all(lo < hi for lo, hi in fitted.loss_ranges)
    assert fitted.loss_ranges[0][0] <= fitted.initial_loss <= fitted.loss_ranges[0][1]
    assert fitted.prior_source == "proxy-mean"
    assert sum(fitted.prior.values()) == pytest.approx(1.0)
    choice = fitted.report["choice"]
    assert choice["form"] == fitted.form and "MAE" in choice["reason"]


def test_auto_keeps_curve_shift_unless_its_held_out_ranking_fails(fitted):
    truth_rows = fitted.report["transitions"]
    rho = np.mean([r["curve-shift"]["spearman"] for r in truth_rows])
    if rho >= crossval.CURVE_SHIFT_MIN_SPEARMAN:
        assert fitted.form == "curve-shift"
        return
    mean_mae = {f: np.mean([r[f]["mae"] for r in truth_rows]) for f in ("per-stage", "pooled")}
    # Equal numbers of rows per stage: the mean of stage MAEs is the overall MAE.
    assert fitted.form == min(mean_mae, key=lambda f: (mean_mae[f], f != "pooled"))


def test_auto_falls_back_to_a_tree_form_when_curve_shift_ranks_badly(fitted, smooth):
    from regmixd_cli.fit.transitions import build_loss_table

    table = build_loss_table(smooth, "val/loss", n_switch_points=2)
    truth = table.losses[:, 1:]
    rng = np.random.default_rng(0)
    preds = {
        "per-stage/next": truth + 0.02,
        "pooled/next": truth + 0.01,
        "curve-shift/next": truth + rng.normal(0.0, 10.0, truth.shape),  # noise: rho ~ 0
    }
    form, reason = crossval.choose_form(
        "auto", ("per-stage", "pooled", "curve-shift"), table, preds
    )
    assert form == "pooled" and "curve-shift" in reason
    preds["curve-shift/next"] = truth + 0.05  # worse MAE, perfect ranking: kept
    form, _ = crossval.choose_form("auto", ("per-stage", "pooled", "curve-shift"), table, preds)
    assert form == "curve-shift"


def test_curve_shift_moves_along_the_mixtures_own_curve():
    grid = (100.0, 200.0, 300.0)
    # Loss linear in log t is interpolated exactly: g(t) = 6 - 0.5 log t.
    curves = np.array([[6.0 - 0.5 * math.log(t) for t in grid]])
    g = lambda t: 6.0 - 0.5 * math.log(t)  # noqa: E731
    # On the curve: from g(t_1) the next loss is g(t_2).
    assert curve_shift(curves, grid, 1, g(100.0)) == pytest.approx([g(200.0)])
    # Off the curve (ahead of it: the run reached g(150) by t_1): g(150 + 100).
    assert curve_shift(curves, grid, 1, g(150.0)) == pytest.approx([g(250.0)])
    # Past the curve's end: extended with the last segment's slope in log t.
    assert curve_shift(curves, grid, 2, g(300.0)) == pytest.approx([g(400.0)])
    # Higher current loss -> higher next loss, and never above the current loss.
    levels = np.linspace(7.0, 2.0, 11)
    nxt = curve_shift(np.repeat(curves, 11, axis=0), grid, 1, levels)
    assert np.all(np.diff(nxt) <= 0) and np.all(nxt <= levels)
    # A curve that rises (regressor noise) is made non-increasing first.
    bumpy = np.array([[4.0, 4.2, 3.5]])
    assert curve_shift(bumpy, grid, 1, 4.0)[0] <= 4.0


def test_cross_validation_is_grouped_and_early_stopping_never_sees_held_out_runs(
    smooth, monkeypatch
):
    calls = []
    real = boosters_module.booster_task

    def spy(table, runs, kind, stage, settings, seed, rounds, early_runs=None):
        calls.append((set(runs.tolist()), None if early_runs is None else set(early_runs.tolist())))
        return real(table, runs, kind, stage, settings, seed, rounds, early_runs)

    monkeypatch.setattr(boosters_module, "booster_task", spy)
    monkeypatch.setattr(crossval, "booster_task", spy)
    monkeypatch.setattr(training, "booster_task", spy)
    fit_model(smooth, FitConfig(n_switch_points=1, folds=4, xgb=FAST))
    cv_calls = [c for c in calls if c[1] is not None]
    assert len(cv_calls) == 4 * 4  # endpoint, one stage, pooled, the curve booster per fold
    held_out_sets = []
    for fit_runs, early_runs in cv_calls:
        assert not fit_runs & early_runs
        held_out_sets.append(frozenset(set(range(40)) - fit_runs - early_runs))
    folds = set(held_out_sets)
    assert len(folds) == 4
    assert sorted(i for fold in folds for i in fold) == list(range(40))  # a partition
    refits = [c for c in calls if c[1] is None]
    assert all(c[0] == set(range(40)) for c in refits)


def test_forced_form(smooth):
    model = fit_model(smooth, FitConfig(n_switch_points=1, form="per-stage", xgb=FAST))
    assert model.form == "per-stage"
    assert set(model.boosters) == {"endpoint", "stage_1"}
    assert model.report["choice"]["reason"] == "forced by --model per-stage"
    with pytest.raises(UsageError):
        fit_model(smooth, FitConfig(form="linear", xgb=FAST))


def test_too_few_runs_for_the_folds():
    store = smooth_store(n_runs=7)
    with pytest.raises(UsageError, match="only 7 usable run"):
        fit_model(store, FitConfig(folds=5, xgb=FAST))
    with pytest.raises(UsageError, match="at least 2 folds"):
        fit_model(store, FitConfig(folds=1, xgb=FAST))


def test_predict_transition_builds_the_recorded_feature_order(fitted, smooth):
    mixtures = smooth.runs.select(list(smooth.domains)).to_numpy().astype(np.float32)
    loss = np.linspace(4.0, 6.0, len(mixtures)).astype(np.float32)
    got = fitted.predict_transition(2, mixtures, loss)
    assert got.shape == (len(mixtures),)
    if fitted.form == "curve-shift":
        # One multi-output booster: offsets of l_1, l_2 from the loss at T_p, then that loss.
        assert set(fitted.boosters) == {"endpoint", "curve"}
        raw = fitted.boosters["curve"].inplace_predict(mixtures).astype(np.float64)
        assert raw.shape == (len(mixtures), 3)
        curves = np.column_stack([raw[:, :2] + raw[:, 2:], raw[:, 2]])
        assert got == pytest.approx(curve_shift(curves, fitted.grid, 2, loss))
        assert fitted.features(fitted.form) == [f"m:{d}" for d in smooth.domains]
        assert fitted.predict_transition(1, mixtures[:3], 5.0).shape == (3,)
        return
    assert got.dtype == np.float32
    if fitted.form == "pooled":
        features = np.column_stack([np.full(len(loss), fitted.grid[1]), mixtures, loss])
        booster = fitted.boosters["pooled"]
    else:
        features = np.column_stack([mixtures, loss])
        booster = fitted.boosters["stage_2"]
    bare = booster.inplace_predict(features.astype(np.float32)) + loss
    assert got == pytest.approx(bare)
    assert fitted.features(fitted.form)[-1] == "loss"
    scalar = fitted.predict_transition(1, mixtures[:3], 5.0)
    assert scalar.shape == (3,)


def test_save_load_round_trip(fitted, smooth, tmp_path):
    save_model(tmp_path / "m", fitted)
    loaded = load_model(tmp_path / "m")
    mixtures = smooth.runs.select(list(smooth.domains)).to_numpy().astype(np.float32)
    assert loaded.predict_endpoint(mixtures) == pytest.approx(fitted.predict_endpoint(mixtures))
    assert loaded.predict_transition(1, mixtures, 5.0) == pytest.approx(
        fitted.predict_transition(1, mixtures, 5.0)
    )
    for name in ("domains", "target", "grid", "proxy_steps", "prior", "form", "loss_ranges"):
        assert getattr(loaded, name) == getattr(fitted, name), name
    assert loaded.report == fitted.report
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["schema_version"] == MODEL_SCHEMA
    assert meta["features"]["endpoint"] == [f"m:{d}" for d in smooth.domains]
    assert set(meta["files"]) == {f"{name}.ubj" for name in fitted.boosters}
    assert len(model_hash(tmp_path / "m")) == 64


def test_curve_shift_models_with_one_booster_per_point_still_load_and_predict(smooth, tmp_path):
    """Curve-shift models fitted before the multi-output `curve` booster (and on phased stores)
    hold point_1..point_N + endpoint; they load and predict from those."""
    import dataclasses

    from regmixd_cli.fit.boosters import fit_booster
    from regmixd_cli.fit.model import POINT
    from regmixd_cli.fit.transitions import build_loss_table

    model = fit_model(smooth, FitConfig(n_switch_points=2, form="curve-shift", xgb=FAST))
    table = build_loss_table(smooth, "val/loss", n_switch_points=2)
    everyone = np.arange(table.n_runs)
    points = {
        f"point_{j}": fit_booster(table, everyone, POINT, j, FAST, 0, 40)[0] for j in (1, 2)
    }
    old = dataclasses.replace(model, boosters={"endpoint": model.boosters["endpoint"], **points})
    save_model(tmp_path / "old", old)
    loaded = load_model(tmp_path / "old")
    assert set(loaded.boosters) == {"endpoint", "point_1", "point_2"}
    mixtures = table.mixtures.astype(np.float32)
    curves = np.column_stack(
        [old.boosters[n].inplace_predict(mixtures) for n in ("point_1", "point_2", "endpoint")]
    )
    assert loaded.predict_curves(mixtures) == pytest.approx(curves)
    assert loaded.predict_transition(2, mixtures, 4.5) == pytest.approx(
        curve_shift(curves, model.grid, 2, 4.5)
    )


def test_same_seed_same_bytes(smooth, tmp_path):
    for name in ("a", "b"):
        save_model(tmp_path / name, fit_model(smooth, FitConfig(n_switch_points=1, xgb=FAST)))
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_endpoint_only_model(tmp_path):
    steps = (1000,)
    domains, weights, curves = smooth_world(n_runs=30, steps=steps)
    model = fit_model(make_store(domains, weights, curves, steps), FitConfig(xgb=FAST))
    assert not model.has_transitions and model.form is None
    assert model.grid == (1000.0,) and model.n_switch_points == 0
    assert math.isnan(model.initial_loss)
    assert set(model.boosters) == {"endpoint"}
    assert model.report["endpoint_only"] and model.report["transitions"] == []
    with pytest.raises(ModelError, match="--static"):
        model.predict_transition(1, weights.astype(np.float32), 5.0)
    save_model(tmp_path / "m", model)
    loaded = load_model(tmp_path / "m")
    assert math.isnan(loaded.initial_loss) and not loaded.has_transitions


def _saved(fitted, tmp_path):
    path = tmp_path / "m"
    save_model(path, fitted)
    return path


def test_load_refuses_missing_and_foreign_models(fitted, tmp_path):
    with pytest.raises(ModelError, match="no such model directory"):
        load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model.json: missing"):
        load_model(tmp_path / "empty")
    path = _saved(fitted, tmp_path)
    meta = json.loads((path / "model.json").read_text())
    meta["schema_version"] = "other.tool/v9"
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="schema 'other.tool/v9'"):
        load_model(path)


def test_load_refuses_corrupt_json_and_edited_boosters(fitted, tmp_path):
    path = _saved(fitted, tmp_path)
    text = (path / "model.json").read_text()
    (path / "model.json").write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match="corrupt model file"):
        load_model(path)
    path = _saved(fitted, tmp_path)
    booster = path / "endpoint.ubj"
    booster.write_bytes(booster.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelError, match="endpoint.ubj: does not match the hash"):
        load_model(path)
    path = _saved(fitted, tmp_path)
    (path / "endpoint.ubj").unlink()
    with pytest.raises(ModelError, match="endpoint.ubj: missing booster"):
        load_model(path)


def test_load_refuses_incomplete_metadata(fitted, tmp_path):
    path = _saved(fitted, tmp_path)
    meta = json.loads((path / "model.json").read_text())
    del meta["grid"]
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="incomplete or unreadable model"):
        load_model(path)
