"""Values shared by every stage of the pipeline: logs -> store -> model -> schedule."""

from __future__ import annotations

from collections.abc import Callable
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
STEP_START = "start_step"  # phases.parquet: the step a run's phase starts at
TRAJECTORY_COLUMNS = (RUN, STEP, TOKENS, METRIC, VALUE)

# progress(done, total): how long work reports how far it is (the CLI draws a bar).
ProgressFn = Callable[[int, int], None]


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
    # Phased stores: every run's phases (run, start_step, one Float64 per domain), sorted by
    # (run, start_step); None for a store of static runs (whose `runs` says it all).
    phases: pl.DataFrame | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric names present in the store, sorted."""
        return tuple(self.manifest["metrics"])

    @property
    def n_runs(self) -> int:
        """Number of runs."""
        return int(self.runs.height)


METHOD_OFFLINE = "regmix-d-offline"


METHOD_STATIC = "regmix-static"


METHOD_ONLINE = "regmix-d-online"


METHODS = (METHOD_OFFLINE, METHOD_STATIC, METHOD_ONLINE)


FRACTION_DECIMALS = 4


LOSS_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class Stage:
    """One half-open segment [start_step, end_step) of the target run and its mixture."""

    start_step: int
    end_step: int
    start_fraction: float
    end_fraction: float
    weights: tuple[float, ...]  # in the schedule's domain order
    predicted_loss: float | None
    # (p10, p50, p90) of the model's bootstrap replicas, when the model has an ensemble.
    predicted_loss_interval: tuple[float, float, float] | None = None
    # A model of several targets: each target's predicted loss at the stage's end, in the
    # model's target order (predicted_loss is then the objective over them).
    predicted_losses: tuple[tuple[str, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A mixture schedule: stages over [0, target_steps), and where it came from."""

    method: str
    domains: tuple[str, ...]
    target_steps: int
    stages: tuple[Stage, ...]
    provenance: dict[str, Any]

    def weights_of(self, stage: Stage) -> dict[str, float]:
        """A stage's weights as {domain: weight}."""
        return dict(zip(self.domains, stage.weights, strict=True))
