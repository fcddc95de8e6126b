"""Values shared by every stage of the pipeline: logs -> store -> model -> schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

STORE_SCHEMA = "regmixd.store/v1"
MODEL_SCHEMA = "regmixd.model/v1"
SCHEDULE_SCHEMA = "regmixd.schedule/v1"

# Column names of the trajectory store (docs/reference/file-formats.md).
RUN = "run"
STEP = "step"
TOKENS = "tokens"
METRIC = "metric"
VALUE = "value"
SOURCE = "source"
DIVERGED = "diverged"
TRAJECTORY_COLUMNS = (RUN, STEP, TOKENS, METRIC, VALUE)


@dataclass(frozen=True, slots=True)
class Store:
    """A trajectory store: one mixture per run and the long table of logged metrics.

    `runs` has columns run, one Float64 per domain (in `domains` order), source, diverged;
    `trajectories` has run (Utf8), step (Int64), tokens (Int64, nullable), metric (Utf8),
    value (Float64), sorted by (run, metric, step).
    """

    domains: tuple[str, ...]
    runs: pl.DataFrame
    trajectories: pl.DataFrame
    manifest: dict[str, Any]

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric names present in the store, sorted."""
        return tuple(self.manifest["metrics"])

    @property
    def n_runs(self) -> int:
        """Number of runs."""
        return int(self.runs.height)
