"""`regmixd export`: a schedule in a trainer's own format (docs/how-to/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regmixd_cli.cli._app import app, in_flags, info
from regmixd_cli.cli._output import STDOUT, write_stdout
from regmixd_cli.errors import UsageError


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
    from regmixd_cli.plan.export.files import check_export_out, write_export
    from regmixd_cli.plan.schedule_file import read_schedule

    out = None if out_path is None or str(out_path) == STDOUT else out_path
    check_export_out(out, schedule_file, to in DIR_FORMATS)
    loaded = read_schedule(schedule_file)
    options = ExportOptions(batch_size, sequence_length, mixture_block_size)
    result = build_export(loaded, to, parse_prefixes(prefix, loaded.domains), options)
    if result.directory and out is None:
        raise UsageError(f"--to {to} writes one file per launch; give --out DIR")
    for note in result.notes:
        info(in_flags(note))
    if out is None:
        write_stdout(result.text)
    else:
        write_export(out, result.files, result.directory)
        info(f"wrote {out} ({to})")
