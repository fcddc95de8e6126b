"""The command line as a whole: version, help, error mapping, start-up cost."""

from __future__ import annotations

import subprocess
import sys

from regmixd_cli import __version__
from regmixd_cli.cli import app


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
