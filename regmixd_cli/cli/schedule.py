"""`regmixd schedule` and `regmixd export`, and the schedule renderer used by `show` and `run`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regmixd_cli.cli._app import app, err, info, out
from regmixd_cli.cli._constraints import (
    AvailableTokens,
    ConstraintsFile,
    MaxChange,
    MaxEpochs,
    MaxWeights,
    MinWeights,
    TokensPerStep,
)
from regmixd_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from regmixd_cli.schedule import ProgressFn, Schedule

STDOUT = "-"
BAR_WIDTH = 60
# Distinct colours for the stacked bars; past this many domains they repeat (glyphs differ).
PALETTE = (
    "blue", "orange3", "green3", "red3", "medium_purple", "tan", "hot_pink", "grey62",
    "gold3", "dark_cyan", "light_sky_blue1", "light_salmon1", "pale_green1", "indian_red1",
    "plum2", "wheat1", "bright_white", "yellow", "cyan", "magenta",
)  # fmt: skip
# Without colour (NO_COLOR, or output not a terminal) each domain gets its own letter instead.
GLYPHS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


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
) -> None:
    """Build an offline RegMix-D schedule (or, with --static, the RegMix mixture) from a model.

    Segment 0 uses the prior; each switch point then gets the mean of the --top-k best of
    --candidates Dirichlet mixtures, scored at the loss predicted so far (Algorithm 1). Proxy
    steps map linearly onto --target-steps. The stage table goes to stderr. With
    --constraints (or --min/--max/--available/--max-change) every stage, segment 0 included,
    satisfies them. A model fitted with --ensemble adds 10-50-90% loss intervals per stage.

    Example: regmixd schedule model/ --target-steps 25000 --out schedule.json
    """
    from regmixd_cli.io import check_output_file
    from regmixd_cli.io.schedule import schedule_json, write_schedule
    from regmixd_cli.model import load_model, model_hash
    from regmixd_cli.schedule import (
        build_schedule,
        build_static,
        resolve_schedule_prior,
    )
    from regmixd_cli.search import SearchConfig

    if out_path is None and not as_json:
        raise UsageError("give --out FILE for the schedule (or --out - / --json for stdout)")
    if out_path is not None and str(out_path) != STDOUT:
        check_output_file(out_path)  # before the search: a bad --out must not cost it
    from regmixd_cli.cli._constraints import load_constraints, report_constraints
    from regmixd_cli.ensemble import (
        load_ensemble,
        quantile_model,
        require_ensemble,
        schedule_intervals,
        settings_record,
        with_intervals,
    )

    config = SearchConfig(candidates=candidates, top_k=top_k, alpha=alpha)
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
        sys.stdout.write(text)


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
    from regmixd_cli.export import DIR_FORMATS, ExportOptions, build_export, parse_prefixes
    from regmixd_cli.io.schedule import read_schedule

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
        sys.stdout.write(result.text)
    else:
        _write_export(out, result.files, result.directory)
        info(f"wrote {out} ({to})")


def _check_export_out(out: Path | None, schedule_file: Path, directory: bool) -> None:
    """Refuse, before any work, an --out that is the input or a path regmixd did not write."""
    from regmixd_cli.errors import InputError
    from regmixd_cli.export import MANIFEST, is_export_file, is_export_manifest
    from regmixd_cli.io import check_output_dir, check_output_file

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
    from regmixd_cli.io import atomic_dir, atomic_write_text

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


def show_schedule(path: Path) -> None:
    """`regmixd show SCHEDULE`: the stage table and a stacked bar per stage, on stdout."""
    from regmixd_cli.io.schedule import read_schedule

    render_schedule(read_schedule(path), out)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[ProgressFn]:
    """A transient rich progress bar on stderr; yields the `progress(done, total)` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not err.is_terminal:  # a log file gets no bar (rich would leave a blank line in it)

        def ignore(done: int, total: int) -> None:
            return None

        yield ignore
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def render_schedule(schedule: Schedule, console: Console) -> None:
    """Print a schedule: a header line, a table of stages, a stacked bar per stage, a legend."""
    from rich.table import Table
    from rich.text import Text

    provenance = schedule.provenance
    n_stages = len(schedule.stages)
    header = f"{schedule.method}: {n_stages} stage(s) over {schedule.target_steps} steps"
    if provenance.get("target"):
        header += f", target {provenance['target']}"
    if provenance.get("model"):
        header += f", model {str(provenance['model'])[:12]}"
    console.print(header, markup=False, highlight=False)

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("stage", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("fraction", justify="right", no_wrap=True)
    table.add_column("pred.\nloss", justify="right", no_wrap=True)
    table.add_column("top weights", min_width=12)
    for i, stage in enumerate(schedule.stages):
        top = sorted(zip(schedule.domains, stage.weights, strict=True), key=lambda dw: -dw[1])
        loss = "" if stage.predicted_loss is None else f"{stage.predicted_loss:.4f}"
        table.add_row(
            str(i),
            f"{stage.start_step}-{stage.end_step}",
            f"{stage.start_fraction:.3f}-{stage.end_fraction:.3f}",
            loss,
            Text(", ".join(f"{d} {w:.1%}" for d, w in top[:3] if w > 0)),
        )
    console.print(table)

    # Stacked bars below the table, so they keep their full width on narrow terminals.
    colour = console.color_system is not None
    styles = [PALETTE[i % len(PALETTE)] for i in range(len(schedule.domains))]
    glyphs = ["█" if colour else GLYPHS[i % len(GLYPHS)] for i in range(len(schedule.domains))]
    width = max(10, min(BAR_WIDTH, console.width - len(str(n_stages)) - 2))
    label = len(str(n_stages - 1))
    for i, stage in enumerate(schedule.stages):
        bar = Text(f"{i:>{label}} ")
        for j, cells in enumerate(_bar_widths(stage.weights, width)):
            if cells:
                bar.append(glyphs[j] * cells, style=styles[j] if colour else None)
        console.print(bar)
    legend = Text("legend: ")
    for j, domain in enumerate(schedule.domains):
        legend.append(glyphs[j], style=styles[j] if colour else None)
        legend.append(f" {domain}  ")
    console.print(legend)


def _bar_widths(weights: tuple[float, ...], width: int) -> list[int]:
    """Characters per domain, summing to `width` (largest remainders get the spare ones)."""
    raw = [w * width for w in weights]
    widths = [int(r) for r in raw]
    spare = width - sum(widths)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - widths[i]), i))
    for i in order[:spare]:
        widths[i] += 1
    return widths
