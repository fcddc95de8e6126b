"""`regmixd schedule` and `regmixd export`, and the schedule renderer used by `show` and `run`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regmixd_cli.cli._app import app, err, info
from regmixd_cli.cli._options import (
    AvailableTokens,
    ConstraintsFile,
    Jobs,
    MaxChange,
    MaxEpochs,
    MaxWeights,
    MinWeights,
    TokensPerStep,
)
from regmixd_cli.cli._output import STDOUT, progress_bar, write_stdout
from regmixd_cli.cli._render import render_schedule
from regmixd_cli.errors import UsageError

if TYPE_CHECKING:

    pass


@app.command()
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
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also write the schedule JSON to stdout.")
    ] = False,
    constraints: ConstraintsFile = None,
    min_weight: MinWeights = None,
    max_weight: MaxWeights = None,
    available: AvailableTokens = None,
    max_epochs: MaxEpochs = None,
    tokens_per_step: TokensPerStep = None,
    max_change: MaxChange = None,
    risk: Annotated[
        float | None,
        typer.Option(
            "--risk",
            metavar="Q",
            help="Rank candidates by the Q-quantile of the model's bootstrap ensemble "
            "(0 < Q < 1; needs `fit --ensemble`).",
        ),
    ] = None,
    jobs: Jobs = 0,
) -> None:
    """Build an offline RegMix-D schedule (or, with --static, the RegMix mixture) from a model.

    Segment 0 uses the prior; each switch point then gets the mean of the --top-k best of
    --candidates Dirichlet mixtures, scored at the loss predicted so far (Algorithm 1). Proxy
    steps map linearly onto --target-steps. The stage table goes to stderr. With
    --constraints (or --min/--max/--available/--max-change) every stage, segment 0 included,
    satisfies them. A model fitted with --ensemble adds 10-50-90% loss intervals per stage.

    Example: regmixd schedule model/ --target-steps 25000 --out schedule.json
    """
    from regmixd_cli.files import check_output_file
    from regmixd_cli.fit.files import load_model, model_hash
    from regmixd_cli.plan.schedule import build_schedule, build_static, resolve_schedule_prior
    from regmixd_cli.plan.schedule_file import schedule_json, write_schedule
    from regmixd_cli.plan.search import SearchConfig

    if out_path is None and not as_json:
        raise UsageError("give --out FILE for the schedule (or --out - / --json for stdout)")
    if out_path is not None and str(out_path) != STDOUT:
        check_output_file(out_path)  # before the search: a bad --out must not cost it
    from regmixd_cli.cli._options import load_constraints, report_constraints, use_jobs
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
    limits = load_constraints(
        constraints,
        fitted.domains,
        min_weights=min_weight,
        max_weights=max_weight,
        available=available,
        max_epochs=max_epochs,
        tokens_per_step=tokens_per_step,
        max_change=max_change,
    )
    ensemble = load_ensemble(model, fitted)
    rank = None
    if risk is not None:
        rank = quantile_model(fitted, require_ensemble(ensemble, model, "--risk"), risk)
    resolved = resolve_schedule_prior(prior, fitted)
    if prior is None:
        info(f"prior: the model's ({resolved.source})")
    build = build_static if static else build_schedule
    total = 1 if static else fitted.n_switch_points
    with progress_bar("searching mixtures", total) as progress:
        result = build(
            fitted,
            config,
            resolved,
            target_steps,
            seed,
            progress,
            model_sha256=model_hash(model),
            constraints=limits,
            rank=rank,
        )
    if ensemble is not None:
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


@app.command()
def export(
    schedule_file: Annotated[
        Path,
        typer.Argument(metavar="SCHEDULE", help="Schedule JSON written by `regmixd schedule` or "
                       "`regmixd online --out-schedule`."),
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="FORMAT",
            help="megatron, nanotron, olmo-core (one launch per stage: --out DIR); levanter, "
            "llm-foundry, olmo-core-curriculum, hf (switch inside one run); csv.",
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="File to write, - for stdout (the default); a directory "
                     "for megatron, nanotron and olmo-core."),
    ] = None,
    prefix: Annotated[
        list[str] | None,
        typer.Option(
            "--prefix",
            metavar="DOMAIN=PATH",
            help="DOMAIN=PATH: the trainer's name or path for a domain "
            "(repeatable; default: the domain name).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Sequences per optimizer step of the target run."),
    ] = None,
    sequence_length: Annotated[
        int | None,
        typer.Option("--sequence-length", help="Tokens per sequence of the target run."),
    ] = None,
    mixture_block_size: Annotated[
        int | None,
        typer.Option("--mixture-block-size", help="Levanter's data.mixture_block_size, in "
                     "sequences (default 2048)."),
    ] = None,
) -> None:
    """Write a schedule in a trainer's own format, with its launch and resume recipe.

    megatron, nanotron, olmo-core: a directory with one file per launch (stage) and a launch
    script; levanter, llm-foundry, olmo-core-curriculum, hf: one file that switches mixtures
    inside one run; csv: one row per stage. Stage boundaries rounded to what a trainer accepts
    are reported on stderr.

    Example: regmixd export schedule.json --to megatron --batch-size 512 --out megatron/
    """
    from regmixd_cli.plan.export import DIR_FORMATS, ExportOptions, build_export, parse_prefixes
    from regmixd_cli.plan.schedule_file import read_schedule

    out = None if out_path is None or str(out_path) == STDOUT else out_path
    _check_export_out(out, schedule_file, to in DIR_FORMATS)
    loaded = read_schedule(schedule_file)
    options = ExportOptions(batch_size, sequence_length, mixture_block_size)
    result = build_export(loaded, to, parse_prefixes(prefix, loaded.domains), options)
    if result.directory and out is None:
        raise UsageError(f"--to {to} writes one file per launch; give --out DIR")
    for note in result.notes:
        info(note)
    if out is None:
        write_stdout(result.text)
    else:
        _write_export(out, result.files, result.directory)
        info(f"wrote {out} ({to})")


def _check_export_out(out: Path | None, schedule_file: Path, directory: bool) -> None:
    """Refuse, before any work, an --out that is the input or a path regmixd did not write."""
    from regmixd_cli.errors import InputError
    from regmixd_cli.files import check_output_dir, check_output_file
    from regmixd_cli.plan.export import MANIFEST, is_export_file, is_export_manifest

    if out is None:
        return
    source = schedule_file.resolve()
    if out.resolve() == source or (directory and out.resolve() in source.parents):
        raise UsageError(f"--out {out} would overwrite the schedule {schedule_file}; "
                         "choose another path")
    if directory:
        check_output_dir(out)
        if out.is_dir() and any(out.iterdir()):
            marker = out / MANIFEST
            if not (marker.is_file() and is_export_manifest(_read_text(marker))):
                raise InputError(f"{out}: a directory that `regmixd export` did not write; "
                                 "choose another --out (or an empty directory)")
        return
    check_output_file(out)
    if out.exists() and not is_export_file(_read_text(out)):
        raise InputError(f"{out}: exists and is not a regmixd export; choose another --out")


def _read_text(path: Path) -> str:
    """A file's first 64 KiB as text ('' when unreadable: then it is not ours)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _write_export(out: Path, files: dict[str, str], directory: bool) -> None:
    """Write one file, or a directory of files, atomically."""
    from regmixd_cli.files import atomic_dir, atomic_write_text

    if not directory:
        atomic_write_text(out, next(iter(files.values())))
        return
    with atomic_dir(out) as tmp:
        for name, text in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if name.endswith(".sh"):
                path.chmod(path.stat().st_mode | 0o111)


