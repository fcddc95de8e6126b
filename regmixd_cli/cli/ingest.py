"""`regmixd ingest`: proxy-run logs -> a trajectory store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regmixd_cli.cli._app import app, err, info, warn
from regmixd_cli.cli._output import print_json
from regmixd_cli.cli._render import report_ingest

if TYPE_CHECKING:
    from regmixd_cli.domain import Store


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="Log files or directories (walked recursively, sorted, hidden "
                            "files skipped).", metavar="PATH", show_default=False),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Store directory to write.", show_default=False)
    ],
    mixtures: Annotated[
        str | None,
        typer.Option("--mixtures", help="Mixtures file: CSV run,<domain>... or JSON "
                                        "{run: {domain: weight}}."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format",
                     help="auto (by content), jsonl, csv, regmix, hf, wandb or tensorboard."),
    ] = "auto",
    final_step: Annotated[
        int, typer.Option("--final-step", help="Step of RegMix's endpoint losses.")
    ] = 1000,
    append: Annotated[
        bool, typer.Option("--append", help="Add the files to the store at --out.")
    ] = False,
    fill_missing_domains: Annotated[
        bool,
        typer.Option("--fill-missing-domains",
                     help="Treat a domain a run does not name as weight 0."),
    ] = False,
    ignore_extra_mixtures: Annotated[
        bool,
        typer.Option("--ignore-extra-mixtures",
                     help="Leave out runs of --mixtures that have no logs (a warning names them)."),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the store summary as JSON on stdout.")
    ] = False,
) -> None:
    """Read proxy-run logs (native JSONL, CSV, RegMix CSVs, HF trainer_state.json, W&B CSV
    exports) into a trajectory store: runs.parquet, trajectories.parquet, manifest.json.

    Example: regmixd ingest sample_logs/proxies --out store
    """
    from regmixd_cli.store.ingest import IngestRequest, ingest_logs

    request = IngestRequest(paths=tuple(paths), out_dir=out_dir, mixtures=mixtures, fmt=fmt,
                            final_step=final_step, append=append,
                            fill_missing_domains=fill_missing_domains,
                            ignore_extra_mixtures=ignore_extra_mixtures)
    with err.status("Reading logs...", spinner="dots"):
        result, store = ingest_logs(request, on_message=info, on_warning=warn)
    _finish_ingest(result, store, out_dir, json_out)


def _finish_ingest(result: Any, store: Store, out_dir: Path, json_out: bool) -> None:
    report_ingest(result, store, out_dir)
    if json_out:
        summary: dict[str, Any] = {**store.manifest, "store": str(out_dir),
                                   "diverged": list(result.diverged),
                                   "warnings": list(result.warnings)}
        print_json(summary)
