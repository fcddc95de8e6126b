"""`regmixd ingest`: proxy-run logs -> trajectory store; and `show_store` for `regmixd show`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from regmixd_cli.cli._app import app, err, info, out, warn

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
        str, typer.Option("--format", help="auto (by content), jsonl, csv, regmix, hf or wandb.")
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
                            fill_missing_domains=fill_missing_domains)
    with err.status("Reading logs...", spinner="dots"):
        result, store = ingest_logs(request, on_message=info, on_warning=warn)
    _finish_ingest(result, store, out_dir, json_out)


def _finish_ingest(result: Any, store: Store, out_dir: Path, json_out: bool) -> None:
    from regmixd_cli.files import dumps_json

    for message in result.warnings:
        warn(message)
    manifest = store.manifest
    info(
        f"Ingested {manifest['n_runs']} runs x {len(store.domains)} domains, "
        f"{len(manifest['metrics'])} metrics, {manifest['n_rows']} rows -> {out_dir}"
        + (f" ({len(result.diverged)} diverged: {', '.join(result.diverged[:5])}"
           f"{', ...' if len(result.diverged) > 5 else ''})" if result.diverged else "")
    )
    if json_out:
        summary: dict[str, Any] = {**manifest, "store": str(out_dir),
                                   "diverged": list(result.diverged),
                                   "warnings": list(result.warnings)}
        out.print(dumps_json(summary), end="", markup=False, highlight=False)


def show_store(path: Path) -> None:
    """Print a human summary of a trajectory store to stdout (runs, domains, metrics, steps)."""
    import polars as pl
    from rich.table import Table

    from regmixd_cli.domain import DIVERGED, METRIC, RUN
    from regmixd_cli.store.files import metric_summary, read_store

    store: Store = read_store(Path(path))
    manifest = store.manifest
    overview = Table(title=f"Trajectory store {path}", show_header=False)
    overview.add_column("", style="bold")
    overview.add_column("")
    overview.add_row("schema", str(manifest["schema_version"]))
    overview.add_row("runs", str(store.n_runs))
    overview.add_row("domains", str(len(store.domains)))
    overview.add_row("metrics", str(len(store.metrics)))
    overview.add_row("rows", str(manifest["n_rows"]))
    overview.add_row("diverged runs", str(manifest["n_diverged"]))
    overview.add_row("inputs", "\n".join(i["path"] for i in manifest["inputs"][:10])
                     + ("\n..." if len(manifest["inputs"]) > 10 else ""))
    out.print(overview)

    domains = Table(title="Mixture weights across runs")
    for name in ("domain", "mean", "min", "max", "runs > 0"):
        domains.add_column(name, justify="left" if name == "domain" else "right")
    for domain in store.domains:
        col = store.runs.get_column(domain)
        mean, low, high = (cast(float, v) for v in (col.mean(), col.min(), col.max()))
        domains.add_row(domain, f"{mean:.4f}", f"{low:.4f}", f"{high:.4f}",
                        str(int((col > 0).sum())))
    out.print(domains)

    stats = metric_summary(store)
    metrics = Table(title="Metrics")
    for name in ("metric", "runs", "steps per run", "step range", "value range"):
        metrics.add_column(name, justify="left" if name == "metric" else "right")
    for row in stats.iter_rows(named=True):
        steps = (str(row["n_min"]) if row["n_min"] == row["n_max"]
                 else f"{row['n_min']}-{row['n_max']}")
        lo, hi = row["lo"], row["hi"]
        values = "-" if lo is None else f"{lo:.4g}-{hi:.4g}"
        metrics.add_row(row[METRIC], str(row["runs"]), steps,
                        f"{row['first']}-{row['last']}", values)
    out.print(metrics)

    diverged = store.runs.filter(pl.col(DIVERGED)).get_column(RUN).to_list()
    if diverged:
        out.print(f"Diverged runs ({len(diverged)}): {', '.join(diverged[:20])}"
                  + (", ..." if len(diverged) > 20 else ""), markup=False, highlight=False)
