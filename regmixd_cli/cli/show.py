"""`regmixd show`: a human summary of a store, a model or a schedule, chosen by content."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regmixd_cli.cli._app import app
from regmixd_cli.cli._output import is_plot_file
from regmixd_cli.errors import InputError, UsageError


@app.command()
def show(
    path: Annotated[
        Path,
        typer.Argument(metavar="STORE|MODEL|SCHEDULE", help="A store or model directory, or a "
                       "schedule JSON file."),
    ],
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE", help="Schedules: also draw the weights over "
                     "training steps as stacked areas, FILE.png or FILE.svg."),
    ] = None,
) -> None:
    """Summarise a trajectory store, a fitted model (with its cross-validation report), or a
    schedule (a table of stages and a stacked bar per stage).

    Example: regmixd show runs/demo/schedule.json
    """
    from regmixd_cli.cli._render import show_model, show_schedule, show_store
    from regmixd_cli.fit.files import MODEL_FILE
    from regmixd_cli.store.files import MANIFEST_FILE

    if plot is not None and path.is_dir():
        raise UsageError(
            f"--plot draws schedules, and {path} is not a schedule file; for a model's "
            "cross-validation figure use `regmixd fit STORE --out MODEL --plot FILE`"
        )
    if path.is_dir():
        if (path / MANIFEST_FILE).is_file():
            show_store(path)
        elif (path / MODEL_FILE).is_file():
            show_model(path)
        else:
            raise InputError(
                f"{path}: neither a trajectory store ({MANIFEST_FILE}) nor a model ({MODEL_FILE})"
            )
    elif path.is_file():
        if plot is not None:
            from regmixd_cli.files import check_not_input, check_output_file

            # first: a bad --plot fails before anything is printed
            check_not_input(plot, [path], "--plot")
            check_output_file(plot, "--plot", is_plot_file, "a PNG or SVG figure")
            from regmixd_cli.cli._plots import plot_schedule

            plot_schedule(path, plot)
        show_schedule(path)
    else:
        raise InputError(f"{path}: no such file or directory")
