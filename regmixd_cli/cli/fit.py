"""`regmixd fit`: the transition and endpoint regressors, with a cross-validation report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regmixd_cli.cli._app import app, err, info, warn
from regmixd_cli.cli._options import SEED_MAX, ClusterAddress, Jobs, prior_input, use_jobs
from regmixd_cli.cli._output import is_plot_file, print_json, progress_bar
from regmixd_cli.cli._render import curve_rate_rows, report_fit, report_tables
from regmixd_cli.errors import ModelError, UsageError

if TYPE_CHECKING:
    from regmixd_cli.domain import Store
    from regmixd_cli.fit.objective import Objective


@app.command()
def fit(
    store: Annotated[
        Path, typer.Argument(help="Trajectory store directory (from `regmixd ingest`).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    target: Annotated[
        list[str] | None,
        typer.Option(metavar="METRIC[=W]", help="Metric to model; default: the store's only "
                     "val*/eval* metric. Repeat it (a weight after '=', a glob like 'val/*') to "
                     "fit one model per metric and optimise --objective over them."),
    ] = None,
    objective: Annotated[
        str, typer.Option(help="How several targets fold into one loss: mean (weighted) or "
                          "worst (the largest, after --reference).")
    ] = "mean",
    reference: Annotated[
        Path | None,
        typer.Option(metavar="MODEL|FILE", help="--objective worst: measure each target "
                     "against a reference loss (DoReMi's excess loss): a model directory (its "
                     "prediction for its prior mixture) or a JSON file {metric: loss}."),
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
        str, typer.Option("--model", help="auto | per-stage | pooled | curve-shift | "
                          "per-stage-history. auto: by held-out evidence on phased runs.")
    ] = "auto",
    verify_prefix: Annotated[
        list[str] | None,
        typer.Option("--verify-prefix", metavar="X", help="Runs whose name starts with X are "
                     "verification runs (design --refine): reported apart, and auto's first "
                     "evidence. Repeatable."),
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by run).")] = 5,
    prior: Annotated[
        str | None, typer.Option(help="Prior mixture: JSON file, uniform, or proxy-mean (default).")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help="Seed for folds and boosters.")
    ] = 0,
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
    force: Annotated[
        bool, typer.Option("--force", help="Replace an --out directory that is not a model.")
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
    from regmixd_cli.files import check_not_input, check_output_dir, check_output_file, input_paths
    from regmixd_cli.fit.files import check_model_out, save_model
    from regmixd_cli.fit.model import FitConfig, FittedModel, XGBSettings
    from regmixd_cli.fit.objective import ObjectiveModel, fit_objective
    from regmixd_cli.fit.parallel import executor
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.fit.transitions import parse_intervals
    from regmixd_cli.store.files import read_store

    plot_format = check_plot(plot)  # before the fit: a bad --plot must not cost a whole fit
    check_output_dir(out)
    inputs = [*input_paths(store), *prior_input(prior),
              *([] if reference is None else input_paths(reference))]
    check_not_input(out, inputs)
    check_model_out(out, force)
    if plot is not None:
        check_not_input(plot, inputs, "--plot")
        check_output_file(plot, "--plot", is_plot_file, "a PNG or SVG figure")
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
    loaded = read_store(store)
    single, objective_spec = targets_objective(loaded, target or [], objective, reference,
                                               str(store))
    if objective_spec is not None and ensemble:
        raise UsageError("--ensemble fits bootstrap replicas of one target's model; give one "
                         "--target, or drop --ensemble")
    config = FitConfig(
        target=single,
        n_switch_points=5 if switch_points is None else switch_points,
        intervals=grid,
        form=model,
        folds=folds,
        prior=prior,
        seed=seed,
        xgb=settings,
        verify_prefixes=tuple(verify_prefix or ()),
    )
    pool = executor(use_jobs(jobs), cluster)
    replicas = None
    try:
        n_targets = 1 if objective_spec is None else len(objective_spec.metrics)
        with progress_bar("fitting", n_targets * (folds + 1)) as progress:
            if objective_spec is None:
                fitted: FittedModel | ObjectiveModel = fit_model(
                    loaded, config, progress, str(store), pool)
            else:
                fitted = fit_objective(loaded, config, objective_spec, progress, str(store),
                                       pool)
        report = fitted.report
        for message in report.get("warnings", []):
            warn(message)
        report_fit(fitted, switch_points == 0 or (grid is not None and len(grid) == 1))
        if ensemble:
            from regmixd_cli.fit.ensemble import fit_ensemble

            assert isinstance(fitted, FittedModel)
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
        members = fitted.members if isinstance(fitted, ObjectiveModel) else ()
        for label, line in curve_rate_rows(report, [(m.target, m.report) for m in members]):
            info(f"{label}: {line}")
    if replicas is not None:
        meta = replicas.metadata
        info(f"ensemble: {meta['size']} bootstrap replicas over the proxy runs (seed "
             f"{meta['seed']}), widened by their out-of-bag residuals: schedules gain "
             "predicted_loss_interval, and --risk can rank by a quantile")
    info(f"wrote {out}")



def targets_objective(
    store: Store, specs: list[str], kind: str, reference: Path | None, where: str
) -> tuple[str | None, Objective | None]:
    """(one metric, None) where one metric is modelled as ever (no --target: the store's
    validation metric; one --target naming one metric: its weight changes nothing), else
    (None, the objective of the several `--target`s)."""
    from regmixd_cli.fit.objective import MEAN, OBJECTIVES, make_objective, parse_targets

    if kind not in OBJECTIVES:
        raise UsageError(f"--objective {kind!r}: choose mean or worst")
    if not specs:
        if reference is not None:
            raise UsageError("--reference needs the --target metrics it refers to")
        if kind != MEAN:
            raise UsageError(f"--objective {kind} folds several targets into one; name them "
                             "with --target (repeated, or a pattern like 'val/*')")
        return None, None
    targets = parse_targets(specs, store.metrics, where)
    if len(targets) == 1:
        if reference is not None:
            raise UsageError("--reference applies to several targets (--objective worst); "
                             "with one --target it changes nothing: drop it")
        return targets[0][0], None
    losses = None if reference is None else read_reference(reference)
    return None, make_objective(targets, kind, losses,
                                None if reference is None else str(reference))


def read_reference(path: Path) -> dict[str, float]:
    """`--reference MODEL|FILE`: each target's reference loss."""
    from regmixd_cli.files import read_json
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.fit.objective import check_reference_file, reference_losses

    if path.is_dir():
        try:
            return reference_losses(load_model(path))
        except ModelError as exc:
            raise ModelError(f"--reference {path}: not a usable model ({exc})") from None
    if not path.exists():
        raise UsageError(f"--reference {path}: no such model directory or file")
    return check_reference_file(read_json(path, "--reference"), str(path))
