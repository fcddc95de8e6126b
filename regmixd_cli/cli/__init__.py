"""The `regmixd` command line: the Typer app with one module per command group.

Importing a command module registers its commands on `app`; keep the list sorted.
"""

import gc
import os

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

__all__ = ["app", "main"]


def main() -> None:
    """The `regmixd` console script: one BLAS thread, `app`, then an exit that skips the
    garbage collector.

    numpy's OpenBLAS starts a thread per core when numpy is imported, and each spins for a
    while waiting for work that never comes: regmixd's numpy work is elementwise or small
    matrix-vector products, and its parallelism is its own (fit's processes, polars' and
    XGBoost's threads). One thread saves 0.05-0.2 CPU-s per command on 2 cores (`import
    numpy` 0.23 -> 0.16 s; a 100 MB ingest 2.00 -> 1.82 CPU-s), more on more cores, and keeps
    BLAS results independent of the core count. A value the user set is kept.

    With polars and pyarrow loaded, the interpreter's cyclic garbage collection at exit
    takes 0.15 s per command (measured: exit 185 ms -> 31 ms) and frees nothing the
    operating system does not; `gc.freeze` leaves every live object out of it. The rest of the
    shutdown (atexit handlers, files closed as their last reference goes) runs as usual.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is first imported
    try:
        app(prog_name="regmixd")
    finally:
        gc.freeze()
