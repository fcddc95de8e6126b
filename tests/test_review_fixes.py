"""Fixes from the new-user review: output paths, partial outputs, clear one-line errors."""

from __future__ import annotations

import json

import pytest

from regmixd_cli.errors import InputError
from regmixd_cli.files import atomic_write_bytes
from tests.helpers.paths import SAMPLE_LOGS

PROXIES = SAMPLE_LOGS / "proxies"
LOGS = PROXIES / "logs"
PRIOR = PROXIES / "prior.json"
WORLD = PROXIES / "world.json"
FAST = ("--max-rounds", "20", "--folds", "3")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A store of the sample logs, a small 2-switch-point model and a schedule from it."""
    from tests.helpers.cli import Invoker

    cli = Invoker()
    root = tmp_path_factory.mktemp("review")
    store, model, schedule = root / "store", root / "model", root / "schedule.json"
    result = cli("ingest", LOGS, "--out", store)
    assert result.exit_code == 0, result.output
    result = cli("fit", store, "--out", model, "--switch-points", "2", *FAST)
    assert result.exit_code == 0, result.output
    result = cli("schedule", model, "--out", schedule, "--candidates", "500")
    assert result.exit_code == 0, result.output
    return store, model, schedule


def _fails(result, code: int, *names: object) -> None:
    assert result.exit_code == code, result.output
    # One `Error:` line, the last (`run` reports its finished steps first).
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    for name in names:
        assert str(name) in errors[0], result.stderr


# 1. Output paths that are directories


def test_atomic_write_to_a_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")


def test_output_files_that_are_directories_fail_first(cli, fitted, tmp_path):
    store, model, schedule = fitted
    taken = tmp_path / "taken.json"
    taken.mkdir()
    _fails(cli("schedule", model, "--out", store), 3, store, "--out")
    _fails(cli("export", schedule, "--to", "csv", "--out", taken), 3, taken)
    _fails(cli("show", schedule, "--plot", _dir(tmp_path / "d.png")), 3, "d.png", "--plot")
    _fails(cli("design", "--prior", PRIOR, "--runs", "4", "--out", taken), 3, taken)
    _fails(cli("simulate", "oracle", WORLD, "--out", taken), 3, taken)
    # A file in the way of the output's directory is refused the same way.
    blocker = tmp_path / "plain.txt"
    blocker.write_text("keep")
    _fails(cli("schedule", model, "--out", blocker / "s.json"), 3, blocker)


def _dir(path):
    path.mkdir()
    return path


def test_fit_checks_plot_and_out_before_fitting(cli, fitted, tmp_path):
    store = fitted[0]
    plot = _dir(tmp_path / "d.png")
    model = tmp_path / "m6"
    _fails(cli("fit", store, "--out", model, "--plot", plot, *FAST), 3, plot)
    assert not model.exists()


# 2. Output directories that are files


def test_directory_outputs_that_are_files_fail_before_work(cli, fitted, tmp_path):
    store = fitted[0]
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    for args in (("run", LOGS, "--out", existing), ("ingest", LOGS, "--out", existing),
                 ("fit", store, "--out", existing, *FAST)):
        _fails(cli(*args), 3, existing)
    assert existing.read_text() == "keep me"


# 3. --switch-points 0


def test_zero_switch_points_fit_the_endpoint_model_alone(cli, fitted, tmp_path):
    store = fitted[0]
    model = tmp_path / "m0"
    result = cli("fit", store, "--out", model, "--switch-points", "0", *FAST)
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "model.json").read_text())
    assert meta["form"] is None and len(meta["grid"]) == 1
    assert "--switch-points 0" in result.stderr
    result = cli("schedule", model, "--static", "--out", tmp_path / "s.json",
                 "--candidates", "500")
    assert result.exit_code == 0, result.output
    assert "0 fits" in " ".join(cli("fit", "--help").stdout.split())


# 4. run leaves nothing behind


def test_run_with_a_missing_prior_fails_before_ingesting(cli, tmp_path):
    out = tmp_path / "runs" / "r2"
    _fails(cli("run", LOGS, "--out", out, "--prior", tmp_path / "nope.json"), 2, "nope.json")
    assert not (tmp_path / "runs").exists()


def test_run_failing_late_removes_only_what_it_created(cli, tmp_path):
    out = tmp_path / "runs" / "r2"
    _fails(cli("run", LOGS, "--out", out, "--target", "val/nope"), 2, "val/nope")
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    _fails(cli("run", LOGS, "--out", kept, "--target", "val/nope"), 2, "val/nope")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


# 5. A grid beyond the runs


def test_grid_beyond_the_runs_says_so(cli, fitted, tmp_path):
    store = fitted[0]
    result = cli("fit", store, "--out", tmp_path / "m", "--intervals", "100,500,2000", *FAST)
    _fails(result, 2, "ends at step 2000", "to step 1000", "--intervals")
    result = cli("fit", store, "--out", tmp_path / "m", "--switch-points", "1000", *FAST)
    _fails(result, 2, "starts at step", "--switch-points")


# 6. Not a schedule JSON


def test_show_and_export_name_a_file_that_is_not_a_schedule(cli):
    for args in (("show", PRIOR), ("export", PRIOR, "--to", "csv")):
        _fails(cli(*args), 3, PRIOR, "not a schedule JSON", "regmixd schedule")


# 7. simulate score and missing domains


def test_simulate_score_rejects_missing_domains_unless_allowed(cli, tmp_path):
    partial = tmp_path / "pc.json"
    partial.write_text(json.dumps({"pile_cc": 1}))
    _fails(cli("simulate", "score", WORLD, partial), 3, partial, "github")
    result = cli("simulate", "score", WORLD, partial, "--allow-missing-domains", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_stages"] == 1


# 8. design --prior uniform


def test_design_explains_it_needs_a_prior_file(cli, tmp_path):
    _fails(cli("design", "--prior", "uniform", "--runs", "4", "--out", tmp_path / "m.json"),
           2, "--prior uniform", "prior FILE")


# 9. Constraint and ingest messages


def test_available_flag_without_tokens_per_step_is_a_usage_error(cli, fitted, tmp_path):
    model = fitted[1]
    result = cli("schedule", model, "--out", tmp_path / "s.json", "--available", "github=1e9")
    _fails(result, 2, "--tokens-per-step")


def test_design_constraints_name_the_prior(cli, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[domains.nope]\nmax = 0.5\n")
    result = cli("design", "--prior", PRIOR, "--runs", "3", "--out", "-", "--constraints", toml)
    _fails(result, 3, toml, "the prior has")
    assert "the model" not in result.stderr


def test_ingest_names_a_mixture_without_logs_once(cli, tmp_path):
    mixtures = tmp_path / "mix.json"
    mixtures.write_text(json.dumps({"r0": {"a": 0.5, "b": 0.5}}))
    result = cli("ingest", mixtures, "--out", tmp_path / "s")
    _fails(result, 3, mixtures)
    assert result.stderr.count("run 'r0'") == 1, result.stderr
