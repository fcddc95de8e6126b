"""`regmixd fit` and `regmixd evaluate`, and the model report as tables (`show_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regmixd_cli.cli._app import app, err, info
from regmixd_cli.cli._options import ClusterAddress, Jobs, use_jobs
from regmixd_cli.cli._output import print_json, progress_bar
from regmixd_cli.cli._render import evaluate_tables, report_fit, report_tables, warn_excluded
from regmixd_cli.errors import UsageError


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
    jobs: Jobs = 0,
    cluster: ClusterAddress = None,
) -> None:
    """Fit the transition regressors and the RegMix endpoint model, with a cross-validation report.

    Example: regmixd fit store --out model --target val/pile_cc
    """
    import dataclasses

    from regmixd_cli.cli._plots import check_plot
    from regmixd_cli.files import check_output_dir, check_output_file
    from regmixd_cli.fit.files import save_model
    from regmixd_cli.fit.model import FitConfig, XGBSettings
    from regmixd_cli.fit.parallel import executor
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
    pool = executor(use_jobs(jobs), cluster)
    replicas = None
    try:
        with progress_bar("fitting", folds + 1) as progress:
            fitted = fit_model(loaded, config, progress, str(store), pool)
        report = fitted.report
        report_fit(fitted, switch_points == 0 or (grid is not None and len(grid) == 1))
        if ensemble:
            from regmixd_cli.fit.ensemble import fit_ensemble

            with progress_bar(f"fitting {ensemble} bootstrap replicas", ensemble) as tick:
                replicas = fit_ensemble(loaded, fitted, ensemble, tick, str(store), pool)
    finally:
        pool.close()  # the workers are done before anything is written
    if replicas is not None:
        from regmixd_cli.fit.ensemble import ENSEMBLE_KEY, ensemble_blobs

        save_model(out, fitted, {ENSEMBLE_KEY: replicas.metadata}, ensemble_blobs(replicas))
    else:
        save_model(out, fitted)
    if plot is not None and plot_format is not None:
        from regmixd_cli.cli._plots import plot_cv

        plot_cv(fitted, plot, plot_format)
    if json_output:
        print_json(report)
    else:
        for table in report_tables(report):
            err.print(table)
        info(f"model: {report['choice']['reason']}")
    info(f"wrote {out}")


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
        err.print(evaluate_tables(report))


