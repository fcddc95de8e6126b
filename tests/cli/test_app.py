"""The command line as a whole: version, help, error mapping, start-up cost."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from regmixd_cli import __version__
from regmixd_cli.cli import app, main
from tests.helpers.cli import SAMPLE_FIT, fails, make_dir
from tests.helpers.paths import PROXY_LOGS, PROXY_PRIOR, PROXY_WORLD


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"regmixd {__version__}\n"


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_every_command_has_help_with_example(cli):
    import typer.main

    group = typer.main.get_command(app)
    for name in group.list_commands(None):  # type: ignore[arg-type]
        result = cli(name, "--help")
        assert result.exit_code == 0, (name, result.output)
        assert "Example" in result.stdout, f"`regmixd {name} --help` has no Example line"


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from regmixd_cli.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('polars', 'xgboost', 'numpy', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(heavy), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.strip() == ""


def test_console_script_exits_with_objects_frozen():
    """`regmixd` (the console script `main`) runs the app, then freezes every live object so
    the interpreter's exit skips the garbage collector's pass over polars/pyarrow (~0.15 s)."""
    argv = sys.argv
    sys.argv = ["regmixd", "--version"]
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code in (0, None)
        assert gc.get_freeze_count() > 0
    finally:
        sys.argv = argv
        gc.unfreeze()


def test_console_script_runs_numpy_with_one_blas_thread():
    """`regmixd` sets OPENBLAS_NUM_THREADS=1 before numpy loads (its BLAS threads only spin),
    unless the user set it."""
    probe = ("import os, sys; sys.argv = ['regmixd', '--version']; "
             "from regmixd_cli.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split()[-1] == "1"
    done = subprocess.run([sys.executable, "-c", probe], env={**env, "OPENBLAS_NUM_THREADS": "4"},
                          capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == "4"


def _with_stderr_closed(*args: object, cwd: object = None) -> int:
    """Run `python -m regmixd_cli ARGS` with stderr a pipe nobody reads; its exit code."""
    import os

    read, write = os.pipe()
    os.close(read)  # every write to stderr now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "regmixd_cli", *map(str, args)],
                              stdout=subprocess.DEVNULL, stderr=write, cwd=cwd, timeout=300)
    finally:
        os.close(write)
    return proc.returncode


def test_a_closed_stderr_does_not_stop_a_command(tmp_path):
    """`regmixd fit ... 2>&1 | head` closes stderr early: what a person would have read is
    lost, the command's product is not (fit and export report on stderr before writing)."""
    assert _with_stderr_closed("ingest", PROXY_LOGS, "--out", tmp_path / "store") == 0
    assert _with_stderr_closed("fit", tmp_path / "store", "--out", tmp_path / "model",
                               *SAMPLE_FIT) == 0
    assert (tmp_path / "model" / "model.json").is_file()
    assert _with_stderr_closed("schedule", tmp_path / "model", "--target-steps", "2048",
                               "--force-dynamic", "--out", tmp_path / "s.json") == 0
    assert _with_stderr_closed("export", tmp_path / "s.json", "--to", "levanter",
                               "--batch-size", "512", "--out", tmp_path / "lev.yaml") == 0
    levanter = (tmp_path / "lev.yaml").read_text()
    assert "  train_weights:\n" in levanter and levanter.endswith("}]\n")
    # The exit code still says how a command ended.
    assert _with_stderr_closed("ingest", tmp_path / "missing", "--out", tmp_path / "x") == 3
    assert not (tmp_path / "x").exists()


def test_unknown_command_is_usage_error(cli):
    result = cli("no-such-command")
    assert result.exit_code == 2


def test_usage_errors_are_one_error_line_with_exit_2(cli):
    result = cli("ingest", "logs", "--formt", "jsonl")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: No such option: --formt (Possible options: --format, --out) "
        "(see `regmixd ingest --help`)"
    ]
    assert result.stdout == ""
    missing = cli("fit")
    assert missing.exit_code == 2
    assert missing.stderr.startswith("Error: Missing argument")
    assert len(missing.stderr.splitlines()) == 1


def test_output_files_that_are_directories_fail_first(cli, fitted, tmp_path):
    store, model, schedule = fitted
    taken = tmp_path / "taken.json"
    taken.mkdir()
    fails(cli("schedule", model, "--out", store), 3, store, "--out")
    fails(cli("export", schedule, "--to", "csv", "--out", taken), 3, taken)
    fails(cli("show", schedule, "--plot", make_dir(tmp_path / "d.png")), 3, "d.png", "--plot")
    fails(cli("design", "--static", "--prior", PROXY_PRIOR, "--runs", "4", "--out", taken),
          3, taken)
    fails(cli("simulate", "oracle", PROXY_WORLD, "--out", taken), 3, taken)
    # A file in the way of the output's directory is refused the same way.
    blocker = tmp_path / "plain.txt"
    blocker.write_text("keep")
    fails(cli("schedule", model, "--out", blocker / "s.json"), 3, blocker)


def test_directory_outputs_that_are_files_fail_before_work(cli, fitted, tmp_path):
    store = fitted[0]
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    for args in (("run", PROXY_LOGS, "--out", existing), ("ingest", PROXY_LOGS, "--out", existing),
                 ("fit", store, "--out", existing, *SAMPLE_FIT)):
        fails(cli(*args), 3, existing)
    assert existing.read_text() == "keep me"


def test_library_messages_name_parameters_and_the_cli_names_flags(cli, tmp_path):
    """The controller says `step`; `regmixd online` says --step for the same problem."""
    import pytest

    from regmixd_cli.cli._app import in_flags
    from regmixd_cli.errors import UsageError
    from regmixd_cli.online.controller import target_switch_steps

    with pytest.raises(UsageError, match="^``target_steps`` must be a positive integer"):
        target_switch_steps((100.0, 200.0, 300.0), 2, 0)
    assert in_flags("``target_steps`` must be positive") == "--target-steps must be positive"
    assert in_flags("`domains` is a field of a file") == "`domains` is a field of a file"
