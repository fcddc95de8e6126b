"""`regmixd run`: ingest + fit + schedule (and the static RegMix baseline) in one go."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from regmixd_cli.cli._app import app, err, info, out, warn
from regmixd_cli.cli._options import SEED_MAX, ClusterAddress, Jobs, prior_input, use_jobs
from regmixd_cli.cli._output import is_schedule_file, progress_bar, write_stdout
from regmixd_cli.cli._render import (
    curve_rate_rows,
    render_schedule,
    report_fit,
    report_ingest,
    report_tables,
    report_verdict,
)
from regmixd_cli.errors import UsageError

STORE_DIR = "store"
MODEL_DIR = "model"
SCHEDULE_FILE = "schedule.json"
STATIC_FILE = "static.json"


@app.command()
def run(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Proxy-run logs (files or directories).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for all outputs.")],
    mixtures: Annotated[
        str | None, typer.Option("--mixtures", help="Mixtures file, if the logs lack them.")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(metavar="METRIC", help="Metric to model; default: the only val*/eval* "
                     "metric. One only: for several, use `regmixd fit --target` (see "
                     "docs/how-to/targets.md)."),
    ] = None,
    switch_points: Annotated[
        int | None,
        typer.Option("--switch-points", help="N switch points (default 5); 0 gives the static "
                     "RegMix mixture only."),
    ] = None,
    target_steps: Annotated[
        int | None,
        typer.Option("--target-steps", help="Steps of the target run (default: proxy length)."),
    ] = None,
    prior: Annotated[
        str | None, typer.Option(help="Prior mixture: JSON file, uniform, or proxy-mean.")
    ] = None,
    candidates: Annotated[
        int, typer.Option("--candidates", help="Candidate mixtures per search.")
    ] = 100_000,
    seed: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help="Seed for folds, boosters and the search.")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the schedule JSON on stdout instead of a table.")
    ] = False,
    jobs: Jobs = 0,
    cluster: ClusterAddress = None,
) -> None:
    """Ingest logs, fit the models, and write the RegMix-D schedule and the static RegMix
    mixture: DIR/store, DIR/model, DIR/schedule.json, DIR/static.json. Prints the schedule.

    As in `schedule`, the guard writes static RegMix to DIR/schedule.json when the model's
    held-out evidence does not back the dynamic schedule's predicted advantage.

    Example: regmixd run sample_logs/proxies --out runs/demo
    """
    from regmixd_cli.files import check_output_dir, check_output_file
    from regmixd_cli.weights import check_prior_spec

    # Cheap checks first: a bad argument must not cost an ingest and a fit.
    if target is not None and len(target) > 1:
        raise UsageError(f"--target given {len(target)} times: `run` fits one target; for "
                         "several, use `regmixd fit --target A --target B`")
    if switch_points is not None and switch_points < 0:
        raise UsageError(f"--switch-points {switch_points}: must be 0 or more")
    check_prior_spec(prior)
    check_output_dir(out_dir)
    for name in (STORE_DIR, MODEL_DIR):
        check_output_dir(out_dir / name)
    for name in (SCHEDULE_FILE, STATIC_FILE):
        check_output_file(out_dir / name)
    from regmixd_cli.files import check_not_input
    from regmixd_cli.fit.files import check_model_out

    check_model_out(out_dir / MODEL_DIR)
    prior_file = prior_input(prior)
    for name in (STORE_DIR, MODEL_DIR, SCHEDULE_FILE, STATIC_FILE):
        check_not_input(out_dir / name, [*paths, mixtures, *prior_file])
    for name in (SCHEDULE_FILE, STATIC_FILE):  # after the input checks: those are exit 2
        check_output_file(out_dir / name, "--out", is_schedule_file, "a schedule JSON")
    from regmixd_cli.fit.parallel import Executor, executor

    threads = use_jobs(jobs)
    pool: Executor = executor(threads, cluster)  # before any output: a bad --cluster fails first
    # A failure later removes what this invocation created; earlier outputs stay as they were
    # (each one is replaced atomically, so none is left half-written).
    top = out_dir  # the outermost directory this invocation would create
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    created = [top] if not out_dir.exists() else [
        out_dir / name for name in (STORE_DIR, MODEL_DIR, SCHEDULE_FILE, STATIC_FILE)
        if not (out_dir / name).exists()
    ]
    try:
        _run(paths, out_dir, mixtures, target[0] if target else None, switch_points,
             target_steps, prior, candidates, seed, as_json, pool, threads)
    except BaseException:
        for path in created:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        raise
    finally:
        pool.close()


def _run(
    paths: list[str], out_dir: Path, mixtures: str | None, target: str | None,
    switch_points: int | None, target_steps: int | None, prior: str | None, candidates: int,
    seed: int, as_json: bool, pool: Any, threads: int,
) -> None:
    """The steps of `run`, once its arguments are checked: the library's ingest, fit and
    search, with the same reports as `ingest`, `fit` and `schedule`."""
    from regmixd_cli.fit.files import load_model, model_hash, save_model
    from regmixd_cli.fit.model import FitConfig, FittedModel
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.plan.schedule import build_guarded, build_static, resolve_schedule_prior
    from regmixd_cli.plan.schedule_file import schedule_json, write_schedule
    from regmixd_cli.plan.search import SearchConfig
    from regmixd_cli.store.files import read_store
    from regmixd_cli.store.ingest import IngestRequest, ingest_logs
    store_dir, model_dir = out_dir / STORE_DIR, out_dir / MODEL_DIR
    with err.status("Reading logs...", spinner="dots"):
        result, store = ingest_logs(
            IngestRequest(paths=tuple(paths), out_dir=store_dir, mixtures=mixtures),
            on_message=info, on_warning=warn,
        )
    report_ingest(result, store, store_dir)
    config = FitConfig(target=target, n_switch_points=5 if switch_points is None else
                       switch_points, prior=prior, seed=seed)
    with progress_bar("fitting", config.folds + 1) as progress:
        fitted = fit_model(read_store(store_dir), config, progress, str(store_dir), pool)
    pool.close()  # the workers are done before anything else is written
    for message in fitted.report.get("warnings", []):
        warn(message)
    report_fit(fitted, switch_points == 0)
    save_model(model_dir, fitted)
    for table in report_tables(fitted.report):
        err.print(table)
    info(f"model: {fitted.report['choice']['reason']}")
    for label, line in curve_rate_rows(fitted.report):
        info(f"{label}: {line}")
    info(f"wrote {model_dir}")

    loaded = load_model(model_dir)
    assert isinstance(loaded, FittedModel)  # `run` fits one target
    fitted = loaded
    sha = model_hash(model_dir)
    search = SearchConfig(candidates=candidates, threads=threads)
    resolved = resolve_schedule_prior(None, fitted)
    with progress_bar("static RegMix", 1) as progress:
        static = build_static(fitted, search, resolved, target_steps, seed, progress,
                              model_sha256=sha)
    write_schedule(out_dir / STATIC_FILE, static)
    shown = static
    if fitted.has_transitions:
        with progress_bar("searching mixtures", fitted.n_switch_points) as progress:
            shown, verdict = build_guarded(fitted, search, resolved, target_steps, seed,
                                           progress, model_sha256=sha)
        report_verdict(verdict)
        write_schedule(out_dir / SCHEDULE_FILE, shown)
        info(f"wrote {out_dir / SCHEDULE_FILE} and {out_dir / STATIC_FILE} (static RegMix)")
    else:
        info(f"endpoint-only model: wrote the static RegMix mixture {out_dir / STATIC_FILE}")
    if as_json:
        write_stdout(schedule_json(shown))
    else:
        render_schedule(shown, out)
        if shown.method != static.method:
            line = ", ".join(f"{d} {w:.1%}" for d, w in
                             sorted(zip(static.domains, static.stages[0].weights, strict=True),
                                    key=lambda dw: -dw[1])[:4])
            loss = static.stages[0].predicted_loss
            out.print(f"static RegMix baseline: {line} (predicted final loss {loss:.4f})",
                      markup=False, highlight=False)
