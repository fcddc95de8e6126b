"""The `regmixd` command line: the Typer app with one module per command group.

Importing a command module registers its commands on `app`; keep the list sorted.
"""

from regmixd_cli.cli import (  # noqa: F401
    _signals,  # noqa: F401  (first: online --follow's early handlers)
    compare,
    design,
    evaluate,
    export,
    fit,
    ingest,
    online,
    run,
    schedule,
    show,
    simulate,
)
from regmixd_cli.cli._app import app

__all__ = ["app"]
