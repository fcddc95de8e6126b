"""What every reader returns, and the small helpers the readers share.

A reader turns one file into a `Parsed` value: the mixtures it names (run -> {domain: weight},
each with the file:line it came from) and its observations as one long polars table with the
columns of `OBSERVATION_SCHEMA`. Readers check the syntax of their own format; whether runs,
mixtures and domains agree across files is `regmixd_cli.store.ingest`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.errors import InputError
from regmixd_cli.files import not_utf8_reason

if TYPE_CHECKING:
    import polars as pl

    from regmixd_cli.store.readers.wide import WideObservations

# Format names accepted by `--format` (plus "mixtures", which auto-detection may also find).
JSONL = "jsonl"
CSV = "csv"
REGMIX = "regmix"
HF = "hf"
WANDB = "wandb"
TENSORBOARD = "tensorboard"
MIXTURES = "mixtures"
FORMATS = (JSONL, CSV, REGMIX, HF, WANDB, TENSORBOARD)

# RegMix's naming: domains `train_the_pile_<d>`, metrics `metric/the_pile_<d>_val_loss`.
_REGMIX_DOMAIN = re.compile(r"^train_the_pile_(?P<d>.+)$")
_REGMIX_METRIC = re.compile(r"^metric/the_pile_(?P<d>.+)_val_(?P<kind>loss|ppl)$")
_METRIC_PREFIX = {"loss": "val", "ppl": "val_ppl"}


@dataclass(frozen=True, slots=True)
class MixtureRecord:
    """One run's mixture as read (weights not yet checked) and where it was read."""

    weights: Mapping[str, Any]
    where: str  # "file:line", for error messages
    start_step: int = 0  # the step this phase starts at (0: the run's first phase)


@dataclass(frozen=True, slots=True)
class Parsed:
    """One input file, normalised: its mixtures and its observations (long table)."""

    path: str  # as the user gave it (or joined under the directory they gave)
    format: str
    mixtures: Mapping[str, MixtureRecord] = field(default_factory=dict)
    observations: pl.DataFrame | None = None  # sorted by (run, metric, step); None: none
    sha256: str = ""
    # Diagnostics for tests and benchmarks: how the file was read ("polars" or "line-scan").
    engine: str = "polars"
    # The JSONL fast path keeps observations wide (and maybe on disk) instead; see readers.wide.
    wide: WideObservations | None = None
    # Phased runs: run -> {start_step: phase} for phases after the first (start_step > 0);
    # the first phase (start_step 0) is `mixtures[run]`.
    phases: Mapping[str, Mapping[int, MixtureRecord]] = field(default_factory=dict)

    def long_observations(self) -> pl.DataFrame | None:
        """The observations as one long table sorted by (run, metric, step); None: none."""
        return self.wide.to_long() if self.wide is not None else self.observations


def add_phase(
    into: dict[str, dict[int, MixtureRecord]], run: str, record: MixtureRecord
) -> None:
    """Record a later phase (start_step > 0); the same start step twice must agree."""
    phases = into.setdefault(run, {})
    previous = phases.get(record.start_step)
    if previous is not None and dict(previous.weights) != dict(record.weights):
        raise InputError(
            f"{record.where}: run {run!r} has another mixture for start_step "
            f"{record.start_step} at {previous.where}; a phase has one mixture: keep one"
        )
    phases.setdefault(record.start_step, record)


def normalise_domain(name: str) -> str:
    """`train_the_pile_pile_cc` -> `pile_cc`; any other name unchanged (stripped)."""
    name = name.strip()
    match = _REGMIX_DOMAIN.match(name)
    return match.group("d") if match else name


def normalise_metric(name: str) -> str:
    """`metric/the_pile_pile_cc_val_loss` -> `val/pile_cc` (`_val_ppl` -> `val_ppl/...`)."""
    name = name.strip()
    match = _REGMIX_METRIC.match(name)
    if match:
        return f"{_METRIC_PREFIX[match.group('kind')]}/{match.group('d')}"
    return name


def read_head(path: Path, n_bytes: int = 65536) -> bytes:
    """The first bytes of a file (for format detection), as an InputError if unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(n_bytes)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{path}: cannot read ({reason})") from None


_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class LfsPointerError(InputError):
    """A Git LFS pointer where a log was expected (never skipped as "not a log")."""


def check_not_lfs_pointer(path: Path | str, head: bytes) -> None:
    """A Git LFS pointer (the small text file git keeps instead of a large file) is refused
    with the command that fetches the real file."""
    if head.lstrip(b"\xef\xbb\xbf").startswith(_LFS_POINTER):
        raise LfsPointerError(f"{path}: a Git LFS pointer, not the file itself: run `git lfs pull` "
                         "in its repository (or `git lfs pull --include <path>`)")


def read_text(path: Path) -> str:
    """A whole text file (small formats only), as an InputError if unreadable."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{path}: cannot read ({reason})") from None
    check_not_lfs_pointer(path, data[:200])
    try:
        # Universal newlines, as Path.read_text gives them.
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {not_utf8_reason(data)}") from None


def parse_number(raw: Any) -> float | None:
    """A metric value as float: numbers, NaN/inf spelled as strings; None if not a number."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        try:
            return float(raw)
        except OverflowError:  # an integer beyond any float
            return None
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in ("nan", "+nan", "-nan"):
            return float("nan")
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return float("inf")
        if text in ("-inf", "-infinity"):
            return float("-inf")
    return None


# Largest step or token count: the store keeps them as 64-bit integers.
STEP_MAX = 2**63 - 1


def parse_step(raw: Any) -> int | None:
    """A step as int: integers or integral floats in [0, 2^63); None if not one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= STEP_MAX else None
    if isinstance(raw, float) and raw.is_integer() and 0 <= raw < STEP_MAX:
        return int(raw)
    return None
