"""The `regmixd` command line: the Typer app with one module per command group."""

from regmixd_cli.cli._app import app

# Each module below registers its commands on `app` when imported; keep the list sorted.

__all__ = ["app"]
