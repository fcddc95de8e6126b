"""`regmixd fit` and `regmixd evaluate`, and the model report as tables (`show_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from regmixd_cli.cli._app import app, err, info, out, warn
from regmixd_cli.errors import UsageError


def _fmt(value: Any, digits: int = 4) -> str:
    """A score for a table cell ("-" when absent)."""
    return "-" if value is None else f"{value:.{digits}f}"


def report_tables(report: dict[str, Any]) -> list[Table]:
    """The fit report as rich tables: transitions, endpoint, and the form chosen."""
    tables = []
    forms = [
        f
        for f in ("per-stage", "pooled", "curve-shift")
        if report["transitions"] and f in report["transitions"][0]
    ]
    if report["transitions"]:
        table = Table(
            title=f"Held-out next-interval loss, {report['target']} "
            f"({report['folds']}-fold CV by run)"
        )
        table.add_column("stage")
        table.add_column("steps")
        for form in forms:
            for name in ("rho", "MAE", "R²"):
                table.add_column(f"{form} {name}", justify="right")
        for row in report["transitions"]:
            cells = [str(row["stage"]), f"{row['t_from']:g} -> {row['t_to']:g}"]
            for form in forms:
                cells += [
                    _fmt(row[form]["spearman"]),
                    _fmt(row[form]["mae"]),
                    _fmt(row[form]["r2"]),
                ]
            table.add_row(*cells)
        tables.append(table)
    table = Table(
        title=f"Held-out loss at T_p = {report['proxy_steps']:g} ({report['n_runs']} runs)"
    )
    table.add_column("predictor")
    table.add_column("rho", justify="right")
    table.add_column("MAE", justify="right")
    table.add_column("R²", justify="right")
    rows = [("endpoint model (RegMix)", report["endpoint"]["endpoint"])]
    rows += [(f"rollout ({f})", s) for f, s in report["endpoint"].get("rollout", {}).items()]
    for name, scores in rows:
        table.add_row(name, _fmt(scores["spearman"]), _fmt(scores["mae"]), _fmt(scores["r2"]))
    tables.append(table)
    return tables


def _warn_excluded(excluded: dict[str, list[str]], proxy_steps: float) -> None:
    from regmixd_cli.fit.transitions import name_some

    if excluded["diverged"]:
        names = excluded["diverged"]
        warn(f"left out {len(names)} diverged run(s): {name_some(names)}")
    if excluded["short"]:
        names = excluded["short"]
        warn(
            f"left out {len(names)} run(s) whose target metric does not cover the grid "
            f"(up to step {proxy_steps:g}): {name_some(names)}"
        )


@app.command()
def fit(
    store: Annotated[
        Path, typer.Argument(help="Trajectory store directory (from `regmixd ingest`).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    target: Annotated[
        str | None,
        typer.Option(help="Metric to model; default: the store's only val*/eval* metric."),
    ] = None,
    switch_points: Annotated[
        int | None,
        typer.Option("--switch-points", help="N, switch points (grid of N+1 intervals); 0 fits "
                     "the endpoint model alone (RegMix, no transitions)."),
    ] = None,
    intervals: Annotated[
        str | None,
        typer.Option(help="Interval ends t1,..,tN+1 in proxy steps (instead of an even grid)."),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="auto | per-stage | pooled | curve-shift.")
    ] = "auto",
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by run).")] = 5,
    prior: Annotated[
        str | None, typer.Option(help="Prior mixture: JSON file, uniform, or proxy-mean (default).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for folds and boosters.")] = 0,
    max_rounds: Annotated[
        int | None,
        typer.Option("--max-rounds", help="Most boosting rounds per regressor (default 2000)."),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate", help="XGBoost learning rate (default: measured, see docs)."
        ),
    ] = None,
    ensemble: Annotated[
        int,
        typer.Option(
            "--ensemble",
            metavar="B",
            help="Also train B bootstrap replicas over runs (loss intervals, schedule --risk).",
        ),
    ] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE", help="Also draw held-out vs predicted loss per "
                     "stage from the cross-validation: FILE.png or FILE.svg."),
    ] = None,
) -> None:
    """Fit the transition regressors and the RegMix endpoint model, with a cross-validation report.

    Example: regmixd fit store --out model --target val/pile_cc
    """
    import dataclasses

    from regmixd_cli.cli.compare import check_plot
    from regmixd_cli.files import check_output_dir, check_output_file, dumps_json
    from regmixd_cli.fit.files import save_model
    from regmixd_cli.fit.model import FitConfig, XGBSettings
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.fit.transitions import parse_intervals
    from regmixd_cli.store.files import read_store

    plot_format = check_plot(plot)  # before the fit: a bad --plot must not cost a whole fit
    check_output_dir(out)
    if plot is not None:
        check_output_file(plot, "--plot")
    if ensemble < 0 or ensemble == 1:
        raise UsageError(f"--ensemble {ensemble}: give 0 (none) or at least 2 replicas")
    grid = parse_intervals(intervals) if intervals is not None else None
    if grid is not None and switch_points is not None and switch_points != len(grid) - 1:
        raise UsageError(
            f"--switch-points {switch_points} and --intervals ({len(grid)} ends, so "
            f"{len(grid) - 1} switch points) disagree; give one of them"
        )
    settings = XGBSettings()
    if max_rounds is not None:
        settings = dataclasses.replace(settings, max_rounds=max_rounds)
    if learning_rate is not None:
        settings = dataclasses.replace(settings, learning_rate=learning_rate)
    if settings.max_rounds < 1 or not 0 < settings.learning_rate <= 1:
        raise UsageError("--max-rounds must be >= 1 and --learning-rate in (0, 1]")
    config = FitConfig(
        target=target,
        n_switch_points=5 if switch_points is None else switch_points,
        intervals=grid,
        form=model,
        folds=folds,
        prior=prior,
        seed=seed,
        xgb=settings,
    )
    loaded = read_store(store)
    with Progress(
        TextColumn("fitting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # a log file gets no bar remnants
    ) as bar:
        task = bar.add_task("fit", total=folds + 1)
        fitted = fit_model(
            loaded, config, lambda done, total: bar.update(task, completed=done), str(store)
        )
    report = fitted.report
    _warn_excluded(report["excluded"], fitted.proxy_steps)
    if report["endpoint_only"] and (switch_points == 0 or (grid is not None and len(grid) == 1)):
        info("one grid point (--switch-points 0): fitted the endpoint model alone (RegMix); "
             "schedules from this model need --static")
    elif report["endpoint_only"]:
        warn(
            "the store has one observation per run (endpoint losses only): fitted the endpoint "
            "model alone (RegMix); schedules from this model need --static"
        )
    if fitted.prior_source == "proxy-mean":
        info("prior: proxy-mean (the mean mixture of the usable runs); change it with --prior")
    if ensemble:
        from regmixd_cli.cli.schedule import progress_bar
        from regmixd_cli.fit.ensemble import ENSEMBLE_KEY, ensemble_blobs, fit_ensemble

        with progress_bar(f"fitting {ensemble} bootstrap replicas", ensemble) as tick:
            replicas = fit_ensemble(loaded, fitted, ensemble, tick, str(store))
        extra = {ENSEMBLE_KEY: replicas.metadata}
        save_model(out, fitted, extra, ensemble_blobs(replicas))
    else:
        save_model(out, fitted)
    if plot is not None and plot_format is not None:
        from regmixd_cli.cli.compare import plot_cv

        plot_cv(fitted, plot, plot_format)
    if json_output:
        typer.echo(dumps_json(report), nl=False)
    else:
        for table in report_tables(report):
            err.print(table)
        info(f"model: {report['choice']['reason']}")
    info(f"wrote {out}")


def evaluate_tables(report: dict[str, Any]) -> Table:
    """The evaluate report as one table."""
    table = Table(
        title=f"{report['target']} on {report['n_runs']} runs "
        f"(top-k overlap with k = {report['top_k']})"
    )
    for name in ("predictor", "rho", "Pearson r", "MAE", "top-k overlap"):
        table.add_column(name, justify="left" if name == "predictor" else "right")
    rows = [("endpoint model (RegMix)", report["endpoint"])]
    if "rollout" in report:
        rows.append(("rollout (transition model)", report["rollout"]))
    for name, s in rows:
        table.add_row(
            name,
            _fmt(s["spearman"]),
            _fmt(s["pearson"]),
            _fmt(s["mae"]),
            _fmt(s["top_k_overlap"], 2),
        )
    return table


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
    from regmixd_cli.files import dumps_json
    from regmixd_cli.fit.evaluate import evaluate_model
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.store.files import read_store

    if top_k < 1:
        raise UsageError(f"--top-k {top_k}: must be at least 1")
    fitted = load_model(model)
    report = evaluate_model(fitted, read_store(store), top_k=top_k, where=str(store))
    _warn_excluded(report["excluded"], fitted.proxy_steps)
    if json_output:
        typer.echo(dumps_json(report), nl=False)
    else:
        err.print(evaluate_tables(report))


def show_model(path: Path) -> None:
    """Print a model's summary and cross-validation report as tables on stdout."""
    from regmixd_cli.fit.files import load_model, read_model_dir

    load_model(Path(path))  # a summary of a model that cannot be used would mislead
    meta, _ = read_model_dir(Path(path))
    report = meta["report"]
    summary = Table(title=f"Model {path}", show_header=False)
    summary.add_column("field")
    summary.add_column("value")
    summary.add_row("target", meta["target"])
    summary.add_row("domains", f"{len(meta['domains'])}: {', '.join(meta['domains'])}")
    summary.add_row("grid (proxy steps)", ", ".join(f"{t:g}" for t in meta["grid"]))
    summary.add_row("form", meta["form"] or "endpoint only (RegMix)")
    summary.add_row("choice", report["choice"]["reason"])
    summary.add_row(
        "runs", f"{report['n_runs']} used, {sum(map(len, report['excluded'].values()))} left out"
    )
    summary.add_row("prior", meta["prior_source"])
    out.print(summary)
    for table in report_tables(report):
        out.print(table)
