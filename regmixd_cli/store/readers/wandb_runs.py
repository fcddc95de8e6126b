"""Weights & Biases runs-table exports (the Runs page's "Export as CSV"): one row per run.

The table starts with `Name` and mixes run metadata (State, Notes, User, Tags, Created,
Runtime, Sweep), config values and summary metrics. It holds each metric's last value only, so
it is read as endpoint data: one observation per run and loss column, at the run's `_step`
(else `Step`, `step`, `global_step`, `train/global_step`; else `--final-step`).

Kept as metrics: numeric columns whose name says loss (`loss`, `ppl`, `perplexity` anywhere in
it, any case), so config numbers (learning rate, batch size) and metadata are never taken for
losses. Mixture weights may come from config columns `mixture.<domain>` or `mixture/<domain>`
(as `wandb.config.update({"mixture": {...}})` exports them), else from `--mixtures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.observations import empty_observations, observation_schema
from regmixd_cli.store.readers.base import (
    WANDB,
    MixtureRecord,
    Parsed,
    normalise_domain,
    normalise_metric,
    parse_number,
    parse_step,
)
from regmixd_cli.store.readers.table import read_table

NAME_COLUMN = "Name"
STEP_COLUMNS = ("_step", "Step", "step", "global_step", "train/global_step")
MIXTURE_PREFIXES = ("mixture.", "mixture/")
LOSS_WORDS = ("loss", "ppl", "perplexity")


def is_loss_column(name: str) -> bool:
    """Whether a runs-table column is a loss summary (see the module docstring)."""
    lowered = name.lower()
    return any(word in lowered for word in LOSS_WORDS) and not lowered.startswith(
        MIXTURE_PREFIXES)


def _number(cell: str) -> float | None:
    """A table cell as a float (W&B writes plain decimal text, or NaN/Infinity)."""
    try:
        return float(cell)
    except ValueError:
        return parse_number(cell)


def _step(cell: str) -> int | None:
    """A step cell as an int in [0, 2^63), exactly (not through a float)."""
    try:
        return parse_step(int(cell))
    except ValueError:
        return parse_step(_number(cell))


def read_wandb_runs(path: str | Path, final_step: int = 1000) -> Parsed:
    """Read a W&B runs table into endpoint observations (and mixtures from its config)."""
    import polars as pl

    shown = str(path)
    table = read_table(Path(path), shown)
    if table.columns[0] != NAME_COLUMN:
        raise InputError(f"{shown}:1: a W&B runs table starts with a 'Name' column")
    step_column = next((c for c in STEP_COLUMNS if c in table.columns), None)
    metrics = [c for c in table.columns[1:] if is_loss_column(c) and c != step_column]
    mixture_columns = [c for c in table.columns if c.startswith(MIXTURE_PREFIXES)]
    if not metrics:
        raise InputError(
            f"{shown}:1: a W&B runs table (Name, ...) without a loss column (a name with "
            f"'loss', 'ppl' or 'perplexity'); columns are {', '.join(table.columns[:12])}"
        )
    rows: dict[str, list[Any]] = {RUN: [], STEP: [], TOKENS: [], METRIC: [], VALUE: []}
    mixtures: dict[str, MixtureRecord] = {}
    seen: dict[str, int] = {}
    for i, record in enumerate(table.iter_rows(named=True)):
        where = f"{shown}:{i + 2}"
        run = (record[NAME_COLUMN] or "").strip()
        if not run:
            raise InputError(f"{where}: empty 'Name'; every run needs one")
        if run in seen:
            raise InputError(f"{where}: run {run!r} is also on line {seen[run]}; W&B names "
                             "are not unique: rename one run (or export run ids)")
        seen[run] = i + 2
        step = final_step
        if step_column is not None and (record[step_column] or "").strip():
            parsed = _step(record[step_column].strip())
            if parsed is None:
                raise InputError(f"{where}: {step_column!r} is not a step: "
                                 f"{record[step_column]!r:.40}")
            step = parsed
        for column in metrics:
            cell = (record[column] or "").strip()
            if not cell:
                continue
            value = _number(cell)
            if value is None:
                raise InputError(f"{where}: value of {column!r} is not a number: {cell!r:.40}")
            for key, item in zip(rows, (run, step, None, normalise_metric(column), value),
                                 strict=True):
                rows[key].append(item)
        weights = {}
        for column in mixture_columns:
            cell = (record[column] or "").strip()
            if cell:
                weight = _number(cell)
                if weight is None:
                    raise InputError(f"{where}: weight {column!r} is not a number: {cell!r:.40}")
                weights[normalise_domain(column[len(MIXTURE_PREFIXES[0]):])] = weight
        if weights:
            mixtures[run] = MixtureRecord(weights, where)
    long = pl.DataFrame(rows, schema=observation_schema()) if rows[RUN] else empty_observations()
    sha = sha256_file(Path(path))
    return Parsed(shown, WANDB, mixtures, long.sort([RUN, METRIC, STEP], maintain_order=True),
                  sha)
