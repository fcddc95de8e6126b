"""`regmixd schedule`: an offline RegMix-D schedule, or the static RegMix mixture, from a model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from regmixd_cli.cli._app import app, err, info, warn
from regmixd_cli.cli._options import (
    NO_CONSTRAINTS,
    SEED_MAX,
    ClusterAddress,
    ConstraintFlags,
    Jobs,
    prior_input,
    with_constraint_options,
)
from regmixd_cli.cli._output import STDOUT, is_schedule_file, progress_bar, write_stdout
from regmixd_cli.cli._render import render_schedule, report_verdict
from regmixd_cli.errors import UsageError


@app.command()
@with_constraint_options
def schedule(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="Model directory written by `regmixd fit`.")
    ],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Schedule JSON to write; - for stdout. Required unless --json."),
    ] = None,
    target_steps: Annotated[
        int | None,
        typer.Option("--target-steps", help="Steps of the target run (default: the proxy length)."),
    ] = None,
    candidates: Annotated[
        int, typer.Option("--candidates", help="Candidate mixtures per search.")
    ] = 100_000,
    top_k: Annotated[int, typer.Option("--top-k", help="Best candidates averaged.")] = 128,
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration.")] = 1.0,
    prior: Annotated[
        str | None,
        typer.Option(
            "--prior", help="Prior m0: JSON file, uniform, or proxy-mean (default: the model's)."
        ),
    ] = None,
    static: Annotated[
        bool, typer.Option("--static", help="One RegMix mixture for the whole run instead.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also write the schedule JSON to stdout.")
    ] = False,
    constraint_flags: ConstraintFlags = NO_CONSTRAINTS,
    risk: Annotated[
        float | None,
        typer.Option(
            "--risk",
            metavar="Q",
            help="Rank candidates by the Q-quantile of the model's bootstrap ensemble "
            "(0 < Q < 1; needs `fit --ensemble`).",
        ),
    ] = None,
    force_dynamic: Annotated[
        bool,
        typer.Option(
            "--force-dynamic",
            help="Hand out the dynamic schedule even when the guard finds static RegMix "
            "better supported by the evidence (the verdict is still recorded).",
        ),
    ] = False,
    jobs: Jobs = 0,
    cluster: ClusterAddress = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an --out file that is not a schedule JSON.")
    ] = False,
) -> None:
    """Build an offline RegMix-D schedule (or, with --static, the RegMix mixture) from a model.

    Segment 0 uses the prior; each switch point then gets the mean of the --top-k best of
    --candidates Dirichlet mixtures, scored at the loss predicted so far (Algorithm 1). Proxy
    steps map linearly onto --target-steps. The stage table goes to stderr. With
    --constraints (or --min/--max/--available/--max-change) every stage, segment 0 included,
    satisfies them. A model fitted with --ensemble adds 10-50-90% loss intervals per stage.
    The guard compares the schedule with static RegMix under the same model: unless its
    predicted advantage exceeds the model's held-out error, the static RegMix mixture is
    written instead (method regmix-static; the verdict is in provenance.guard and on stderr).
    A model fitted with --verify-prefix also weighs the plan against the run of its store
    (proxy or verification run) that ended lowest: unless the model predicts the plan lower
    by that same margin, the run's measured plan is written instead
    (provenance.verified_run); not with --constraints, --risk or --force-dynamic.

    Example: regmixd schedule model/ --target-steps 25000 --out schedule.json
    """
    from regmixd_cli.files import check_output_file
    from regmixd_cli.fit.files import load_model, model_hash
    from regmixd_cli.fit.model import FittedModel
    from regmixd_cli.plan.schedule import build_guarded, build_static, resolve_schedule_prior
    from regmixd_cli.plan.schedule_file import schedule_json, write_schedule
    from regmixd_cli.plan.search import SearchConfig

    if out_path is None and not as_json:
        raise UsageError("give --out FILE for the schedule (or --out - / --json for stdout)")
    if out_path is not None and str(out_path) != STDOUT:
        from regmixd_cli.files import check_not_input, input_paths

        # before the search: a bad --out must not cost it
        prior_file = prior_input(prior)
        check_not_input(out_path, [*input_paths(model), *prior_file, constraint_flags.path])
        check_output_file(out_path, "--out", is_schedule_file, "a schedule JSON", force)
    from regmixd_cli.cli._options import (
        load_constraints,
        report_constraints,
        search_cluster,
        use_jobs,
    )
    from regmixd_cli.fit.ensemble import (
        load_ensemble,
        quantile_model,
        require_ensemble,
        schedule_intervals,
        settings_record,
        with_intervals,
    )

    threads = use_jobs(jobs)  # before load_model: its boosters predict on this many threads
    config = SearchConfig(candidates=candidates, top_k=top_k, alpha=alpha, threads=threads)
    if risk is not None and not 0.0 < risk < 1.0:
        raise UsageError(f"--risk {risk}: give a quantile strictly between 0 and 1")
    fitted = load_model(model)
    from regmixd_cli.cli._render import weak_fit_warning

    weak = weak_fit_warning(fitted.report)
    if weak is not None:
        warn(weak)
    limits = load_constraints(constraint_flags, fitted.domains)
    ensemble = load_ensemble(model, fitted) if isinstance(fitted, FittedModel) else None
    rank = None
    if risk is not None:
        if not isinstance(fitted, FittedModel):
            raise UsageError(f"--risk: {model} is a model of several targets, which has no "
                             "bootstrap replicas (--ensemble fits one target's); drop --risk")
        members = require_ensemble(ensemble, model, "--risk")
        assert isinstance(fitted, FittedModel)  # only a model of one target has an ensemble
        rank = quantile_model(fitted, members, risk)
    resolved = resolve_schedule_prior(prior, fitted)
    if prior is None:
        info(f"prior: the model's ({resolved.source})")
    if static and force_dynamic:
        raise UsageError("--static and --force-dynamic contradict each other; pick one")
    total = 1 if static else fitted.n_switch_points
    verdict = None
    with search_cluster(cluster) as remote:
        config = dataclasses.replace(config, executor=remote)
        with progress_bar("searching mixtures", total) as progress:
            if static:
                result = build_static(
                    fitted, config, resolved, target_steps, seed, progress,
                    model_sha256=model_hash(model), constraints=limits, rank=rank,
                )  # fmt: skip
            else:
                result, verdict = build_guarded(
                    fitted, config, resolved, target_steps, seed, progress,
                    model_sha256=model_hash(model), constraints=limits, rank=rank,
                    force_dynamic=force_dynamic,
                )  # fmt: skip
    if verdict is not None:
        report_verdict(verdict)
    if ensemble is not None and isinstance(fitted, FittedModel):
        result = with_intervals(result, schedule_intervals(result, fitted, ensemble))
        result.provenance["ensemble"] = settings_record(ensemble, True, risk)
    report_constraints(result.provenance)
    text = schedule_json(result)
    to_stdout = as_json or (out_path is not None and str(out_path) == STDOUT)
    if out_path is not None and str(out_path) != STDOUT:
        write_schedule(out_path, result)
    render_schedule(result, err)
    if out_path is not None and str(out_path) != STDOUT:
        info(f"wrote {out_path}")
    if to_stdout:
        write_stdout(text)


