"""The `regmixd` command line: the Typer app with one module per command group."""

from regmixd_cli.cli._app import app

# Each module below registers its commands on `app` when imported; keep the list sorted.
from regmixd_cli.cli import design as _design  # noqa: E402,F401
from regmixd_cli.cli import fit as _fit  # noqa: E402,F401
from regmixd_cli.cli import ingest as _ingest  # noqa: E402,F401
from regmixd_cli.cli import simulate as _simulate  # noqa: E402,F401

__all__ = ["app"]
