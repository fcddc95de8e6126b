"""Hugging Face `trainer_state.json`: the loss entries of its `log_history`.

Kept: `loss` -> `train/loss`, `eval_loss` -> `eval/loss`, `eval_<name>_loss` -> `eval/<name>`
(the per-domain losses of a dict of eval datasets), at the entry's `step`; tokens from
`num_input_tokens_seen` when logged. Other keys (learning rate, runtimes, ...) are not losses and
are dropped. The file says nothing about the mixture: it comes from `--mixtures`.

Run id: the path of the directory holding the run, relative to the directory given to ingest
(the input root), so `exp_a/results` and `exp_b/results` stay two runs; a file named on the
command line, or one directly in the root, takes its directory's name.
`out/run_a/trainer_state.json` and `out/run_a/checkpoint-500/trainer_state.json` both belong
to run `run_a` (a `checkpoint-<N>` directory is skipped over); several checkpoints of one run
repeat the same entries, which collapse as identical duplicates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import read_json, sha256_file
from regmixd_cli.store.observations import empty_observations, observation_schema
from regmixd_cli.store.readers.base import (
    HF,
    Parsed,
    check_not_lfs_pointer,
    parse_number,
    parse_step,
    read_head,
)

_CHECKPOINT = re.compile(r"^checkpoint-\d+$")
_EVAL_LOSS = re.compile(r"^eval_(?P<name>.+)_loss$")
TOKENS_KEY = "num_input_tokens_seen"


def run_folder(path: Path) -> Path:
    """The directory of the run a trainer_state.json belongs to (checkpoints skipped over)."""
    folder = Path(path).resolve().parent
    if _CHECKPOINT.match(folder.name):
        folder = folder.parent
    return folder


def run_id(path: Path, root: Path | None = None) -> str:
    """The run a trainer_state.json belongs to (see the module docstring)."""
    return relative_run_name(run_folder(path), root)


def relative_run_name(folder: Path, root: Path | None) -> str:
    """A run directory's name relative to the input root (its own name without a root)."""
    if root is not None:
        top = Path(root).resolve()
        try:
            rel = folder.relative_to(top)
        except ValueError:
            rel = None
        if rel is not None:
            return rel.as_posix() if rel.parts else top.name
    return folder.name


def metric_name(key: str) -> str | None:
    """The store's name for a log_history key, or None for keys that are not losses."""
    if key == "loss":
        return "train/loss"
    if key == "eval_loss":
        return "eval/loss"
    match = _EVAL_LOSS.match(key)
    return f"eval/{match.group('name')}" if match else None


def read_hf(path: str | Path, root: Path | None = None) -> Parsed:
    """Read one trainer_state.json into observations of its run (named relative to `root`,
    the directory the user gave, when it came from a directory walk)."""
    import polars as pl

    shown = str(path)
    check_not_lfs_pointer(shown, read_head(Path(path), 200))
    state = read_json(Path(path), "trainer_state.json")
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise InputError(f"{shown}: no 'log_history' list; is this a Hugging Face "
                         "trainer_state.json?")
    run = run_id(Path(path), root)
    rows: dict[str, list[Any]] = {RUN: [], STEP: [], TOKENS: [], METRIC: [], VALUE: []}
    for i, entry in enumerate(history):
        where = f"{shown}: log_history[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
        named = [(metric_name(k), v) for k, v in entry.items()]
        named = [(m, v) for m, v in named if m is not None]
        if not named:
            continue
        step = entry.get("step")
        if not isinstance(step, int) or parse_step(step) is None:
            raise InputError(f"{where}: 'step' is missing or not an integer in [0, 2^63)")
        tokens = entry.get(TOKENS_KEY)
        if tokens is not None and (not isinstance(tokens, int) or parse_step(tokens) is None):
            raise InputError(f"{where}: {TOKENS_KEY!r} is not an integer in [0, 2^63): "
                             f"{tokens!r:.40}")
        for metric, raw in named:
            value = parse_number(raw)
            if value is None:
                raise InputError(f"{where}: value of {metric!r} is not a number: {raw!r}")
            for column, item in zip(rows, (run, step, tokens, metric, value), strict=True):
                rows[column].append(item)
    long = pl.DataFrame(rows, schema=observation_schema()) if rows[RUN] else empty_observations()
    sha = sha256_file(Path(path))
    return Parsed(shown, HF, {}, long.sort([RUN, METRIC, STEP], maintain_order=True), sha)
