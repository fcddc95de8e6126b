"""`regmixd fit` and `regmixd evaluate` through the command line: outputs, warnings, errors."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.store.files import store_hash
from tests.helpers.cli import SAMPLE_FIT, fails, make_dir
from tests.helpers.fit_stores import make_store, smooth_store, smooth_world

FAST = ("--max-rounds", "60", "--learning-rate", "0.15", "--switch-points", "2")


def _fit(cli, store, out, *extra):
    return cli("fit", store, "--out", out, *FAST, *extra)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    smooth_store(root / "train", n_runs=30)
    smooth_store(root / "test", n_runs=20, seed=1, prefix="t")
    return root


@pytest.fixture(scope="module")
def model_dir(stores):
    from typer.testing import CliRunner

    from regmixd_cli.cli import app

    out = stores / "model"
    result = CliRunner().invoke(app, ["fit", str(stores / "train"), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    return out


def test_fit_writes_model_and_reports_on_stderr(cli, stores, tmp_path):
    result = _fit(cli, stores / "train", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "Held-out" in result.stderr and "rollout" in result.stderr
    assert "prior: proxy-mean" in result.stderr
    assert "auto:" in result.stderr
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert "model.json" in files and "endpoint.ubj" in files


def test_show_model_lists_the_forms_in_fit_order(cli, fitted):
    """`show MODEL` reprints fit's tables from the saved report, whose keys are sorted: the
    rollout rows keep fit's form order (per-stage, pooled, curve-shift)."""
    _, model, _ = fitted
    result = cli("show", model)
    assert result.exit_code == 0, result.output
    rows = [line.split("(")[1].split(")")[0] for line in result.stdout.splitlines()
            if "rollout (" in line]
    assert rows == ["per-stage", "pooled", "curve-shift"]


def test_fit_json_prints_the_report(cli, stores, tmp_path):
    result = _fit(cli, stores / "train", tmp_path / "m", "--json", "--model", "pooled")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["choice"] == {
        "requested": "pooled",
        "form": "pooled",
        "reason": "forced by --model pooled",
    }
    assert len(report["transitions"]) == 2
    stored = json.loads((tmp_path / "m" / "model.json").read_text())
    assert stored["report"] == report
    assert stored["form"] == "pooled"
    assert stored["store_sha256"] == store_hash(stores / "train")
    assert stored["features"]["pooled"][0] == "t" and stored["features"]["pooled"][-1] == "loss"


def test_fit_is_byte_identical_for_the_same_seed(cli, stores, tmp_path):
    for name in ("a", "b"):
        assert _fit(cli, stores / "train", tmp_path / name, "--seed", "3").exit_code == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_fit_warns_about_excluded_runs(cli, tmp_path):
    store = tmp_path / "store"
    smooth_store(store, n_runs=16, diverged=(3,), last_step={5: 300, 7: 450})
    result = _fit(cli, store, tmp_path / "m", "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    assert "left out 1 diverged run(s): r003" in result.stderr
    assert "left out 2 run(s)" in result.stderr and "r005, r007" in result.stderr
    assert json.loads(result.stdout)["n_runs"] == 13


def test_fit_names_the_first_few_of_many_excluded_runs(cli, tmp_path):
    store = tmp_path / "store"
    smooth_store(store, n_runs=24, last_step=dict.fromkeys(range(8), 400))
    result = _fit(cli, store, tmp_path / "m", "--folds", "2")
    assert result.exit_code == 0, result.output
    assert "r000, r001, r002, r003, r004 and 3 more" in result.stderr


def test_ambiguous_target_is_a_usage_error(cli, tmp_path):
    store = tmp_path / "store"
    smooth_store(store, metrics=("val/a", "val/b", "train/loss"))
    result = _fit(cli, store, tmp_path / "m")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:")
    assert str(store) in result.stderr and "val/a, val/b" in result.stderr
    assert not (tmp_path / "m").exists()
    assert _fit(cli, store, tmp_path / "m", "--target", "val/b").exit_code == 0


def test_unknown_target(cli, stores, tmp_path):
    result = _fit(cli, stores / "train", tmp_path / "m", "--target", "val/nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and "val/nope" in result.stderr


def test_too_few_runs_for_the_folds(cli, tmp_path):
    store = tmp_path / "store"
    smooth_store(store, n_runs=9)
    result = _fit(cli, store, tmp_path / "m")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and str(store) in result.stderr
    assert "only 9 usable run(s)" in result.stderr and "--folds" in result.stderr
    assert not (tmp_path / "m").exists()


def test_intervals_beyond_the_runs_leave_none_usable(cli, stores, tmp_path):
    result = cli("fit", stores / "train", "--out", tmp_path / "m", "--intervals", "100,900")
    assert result.exit_code == 2
    assert "the grid ends at step 900 but the longest run logs val/loss to step 500" in (
        result.stderr
    )
    assert "left out" not in result.stdout


def test_conflicting_grid_options(cli, stores, tmp_path):
    result = cli(
        "fit",
        stores / "train",
        "--out",
        tmp_path / "m",
        "--switch-points",
        "3",
        "--intervals",
        "100,500",
    )
    assert result.exit_code == 2 and result.stderr.startswith("Error:")
    result = cli("fit", stores / "train", "--out", tmp_path / "m", "--intervals", "300,100")
    assert result.exit_code == 2 and "strictly increasing" in result.stderr


def test_custom_intervals(cli, stores, tmp_path):
    result = cli(
        "fit",
        stores / "train",
        "--out",
        tmp_path / "m",
        "--intervals",
        "100,250,500",
        "--max-rounds",
        "30",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grid"] == [100.0, 250.0, 500.0]


def test_missing_store_is_input_error(cli, tmp_path):
    result = _fit(cli, tmp_path / "nope", tmp_path / "m")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error:") and "nope" in result.stderr


def test_endpoint_only_store_fits_regmix_alone(cli, tmp_path):
    steps = (1000,)
    domains, weights, curves = smooth_world(n_runs=20, steps=steps)
    store = tmp_path / "store"
    from regmixd_cli.store.files import write_store

    write_store(store, make_store(domains, weights, curves, steps))
    result = _fit(cli, store, tmp_path / "m", "--json")
    assert result.exit_code == 0, result.output
    assert "endpoint losses only" in result.stderr and "--static" in result.stderr
    report = json.loads(result.stdout)
    assert report["endpoint_only"] and report["choice"]["form"] is None
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["endpoint.ubj", "model.json"]


def test_evaluate_on_held_out_runs(cli, stores, model_dir):
    result = cli("evaluate", model_dir, stores / "test", "--json", "--top-k", "5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_runs"] == 20 and report["top_k"] == 5
    for name in ("endpoint", "rollout"):
        assert set(report[name]) == {"spearman", "pearson", "mae", "top_k_overlap"}
    assert report["rollout"]["spearman"] > 0.9
    assert len(report["transitions"]) == 2
    table = cli("evaluate", model_dir, stores / "test")
    assert table.exit_code == 0 and table.stdout == "" and "Pearson" in table.stderr


def test_evaluate_refuses_other_domains(cli, stores, model_dir, tmp_path):
    other = tmp_path / "other"
    smooth_store(other, n_runs=12, n_domains=3)
    result = cli("evaluate", model_dir, other)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error:") and str(other) in result.stderr
    assert "domains do not match" in result.stderr


def test_evaluate_refuses_a_store_without_the_target(cli, model_dir, tmp_path):
    other = tmp_path / "other"
    smooth_store(other, n_runs=12, metrics=("val/other",))
    result = cli("evaluate", model_dir, other)
    assert result.exit_code == 4 and "val/loss" in result.stderr


def test_evaluate_on_shorter_runs_names_the_models_grid(cli, model_dir, tmp_path):
    """The grid is the model's (evaluate has no --intervals): the error says so."""
    short = tmp_path / "short"
    smooth_store(short, n_runs=12, steps=tuple(range(50, 301, 50)))
    result = cli("evaluate", model_dir, short)
    fails(result, 2, short, "model's grid")
    assert "--intervals" not in result.stderr and "--switch-points" not in result.stderr


def _copy_model(model_dir, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_evaluate_refuses_a_corrupt_model_json(cli, stores, model_dir, tmp_path):
    copy = _copy_model(model_dir, tmp_path)
    (copy / "model.json").write_text('{"schema_version": "regmixd.model/v1", "files": ')
    result = cli("evaluate", copy, stores / "test")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error:") and "model.json" in result.stderr


def test_evaluate_refuses_an_edited_booster(cli, stores, model_dir, tmp_path):
    copy = _copy_model(model_dir, tmp_path)
    booster = copy / "endpoint.ubj"
    data = bytearray(booster.read_bytes())
    data[len(data) // 2] ^= 0xFF
    booster.write_bytes(bytes(data))
    result = cli("evaluate", copy, stores / "test")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error:") and "endpoint.ubj" in result.stderr


def test_evaluate_refuses_a_foreign_directory(cli, stores, tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "model.json").write_text('{"format": "lightgbm"}')
    result = cli("evaluate", tmp_path / "foreign", stores / "test")
    assert result.exit_code == 4 and "schema" in result.stderr


def test_show_model_prints_tables(model_dir, capsys):
    from regmixd_cli.cli._render import show_model

    show_model(model_dir)
    text = capsys.readouterr().out
    assert "val/loss" in text and "Held-out" in text and "rollout" in text


def test_fit_checks_plot_and_out_before_fitting(cli, fitted, tmp_path):
    store = fitted[0]
    plot = make_dir(tmp_path / "d.png")
    model = tmp_path / "m6"
    fails(cli("fit", store, "--out", model, "--plot", plot, *SAMPLE_FIT), 3, plot)
    assert not model.exists()


def test_zero_switch_points_fit_the_endpoint_model_alone(cli, fitted, tmp_path):
    store = fitted[0]
    model = tmp_path / "m0"
    result = cli("fit", store, "--out", model, "--switch-points", "0", *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "model.json").read_text())
    assert meta["form"] is None and len(meta["grid"]) == 1
    assert "--switch-points 0" in result.stderr
    result = cli("schedule", model, "--static", "--out", tmp_path / "s.json",
                 "--candidates", "500")
    assert result.exit_code == 0, result.output
    assert "0 fits" in " ".join(cli("fit", "--help").stdout.split())


def test_grid_beyond_the_runs_says_so(cli, fitted, tmp_path):
    store = fitted[0]
    result = cli("fit", store, "--out", tmp_path / "m", "--intervals", "100,500,2000", *SAMPLE_FIT)
    fails(result, 2, "ends at step 2000", "to step 1000", "--intervals")
    result = cli("fit", store, "--out", tmp_path / "m", "--switch-points", "1000", *SAMPLE_FIT)
    fails(result, 2, "starts at step", "--switch-points")
