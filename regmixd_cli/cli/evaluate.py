"""`regmixd evaluate`: score a fitted model on another store's runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regmixd_cli.cli._app import app, err
from regmixd_cli.cli._output import print_json
from regmixd_cli.cli._render import evaluate_tables, warn_excluded
from regmixd_cli.errors import UsageError


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model directory (from `regmixd fit`).")],
    store: Annotated[
        Path, typer.Argument(help="Store of runs to score the model on (e.g. held-out proxies).")
    ],
    top_k: Annotated[int, typer.Option("--top-k", help="k of the top-k overlap.")] = 10,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the scores as JSON on stdout.")
    ] = False,
) -> None:
    """Score a fitted model on another store's runs: Spearman rho, Pearson r, MAE, top-k overlap.

    Example: regmixd evaluate model test.store --json
    """
    from regmixd_cli.fit.evaluate import evaluate_model
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.store.files import read_store

    if top_k < 1:
        raise UsageError(f"--top-k {top_k}: must be at least 1")
    fitted = load_model(model)
    report = evaluate_model(fitted, read_store(store), top_k=top_k, where=str(store))
    warn_excluded(report["excluded"], fitted.proxy_steps)
    if json_output:
        print_json(report)
    else:
        for table in evaluate_tables(report):
            err.print(table)
