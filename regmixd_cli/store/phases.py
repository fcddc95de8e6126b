"""Phased runs while a store is built: collect, check and tabulate every run's phases.

A phased run trains on phase p's mixture from its start_step until the next phase starts; its
first phase (step 0) is the run's mixture in `runs.parquet`, and every phase of every run goes
to `phases.parquet` (docs/reference/input-formats.md). Static stores have no phases table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import RUN, STEP_START, Store
from regmixd_cli.errors import InputError
from regmixd_cli.store.readers.base import Parsed
from regmixd_cli.weights import check_mixture

if TYPE_CHECKING:
    import polars as pl

AGREE_TOLERANCE = 1e-9
EXISTING = "the existing store"


def _run_at(where: str, run: str) -> str:
    """`FILE: run 'r0'`, without naming the run twice when `where` already names it."""
    named = f"run {run!r}"
    return where if where.endswith(named) else f"{where}: {named}"


@dataclass(frozen=True, slots=True)
class Phase:
    start_step: int
    weights: tuple[float, ...]
    where: str


def collect_phases(
    parsed: Sequence[Parsed],
    existing: Store | None,
    domains: tuple[str, ...],
    fill_missing: bool,
    firsts: Mapping[str, tuple[tuple[float, ...], str]],
) -> dict[str, list[Phase]]:
    """Phased runs -> their phases in start_step order (the first, at 0, from `mixtures`).

    Static runs are left out. A phase given twice must agree; a later phase of a run with no
    first phase (no mixture at step 0) is an InputError.
    """
    later: dict[str, dict[int, Phase]] = {}
    if existing is not None and existing.phases is not None:
        for row in existing.phases.filter(existing.phases.get_column(STEP_START) > 0).iter_rows(
            named=True
        ):
            weights = tuple(float(row.get(d) or 0.0) for d in domains)
            later.setdefault(row[RUN], {})[row[STEP_START]] = Phase(
                row[STEP_START], weights, EXISTING)
    for p in parsed:
        for run, records in p.phases.items():
            for start, record in records.items():
                weights = check_mixture(record.weights, domains, record.where,
                                        fill_missing=fill_missing)
                previous = later.setdefault(run, {}).get(start)
                if previous is not None and any(
                    abs(a - b) > AGREE_TOLERANCE
                    for a, b in zip(weights, previous.weights, strict=True)
                ):
                    raise InputError(
                        f"{_run_at(record.where, run)} has a different mixture for start_step "
                        f"{start} in {previous.where}; a phase has one mixture: keep one"
                    )
                later[run].setdefault(start, Phase(start, weights, record.where))
    result: dict[str, list[Phase]] = {}
    for run in sorted(later):
        phases = [later[run][s] for s in sorted(later[run])]
        if run not in firsts:
            raise InputError(
                f"{_run_at(phases[0].where, run)}: its first phase starts at step "
                f"{phases[0].start_step}, not 0; give its mixture from step 0 (a mixture line "
                "without start_step)"
            )
        weights, where = firsts[run]
        result[run] = [Phase(0, weights, where), *phases]
    return result


def check_phase_reach(phases: dict[str, list[Phase]], last_step: dict[str, int]) -> None:
    """A phase must start before its run's last logged step."""
    for run, items in phases.items():
        last = last_step.get(run)
        for phase in items[1:]:
            if last is not None and phase.start_step >= last:
                raise InputError(
                    f"{_run_at(phase.where, run)}: start_step {phase.start_step} is at or past "
                    f"the run's last logged step ({last}); remove the phase or give its logs"
                )


def phase_frame(
    domains: tuple[str, ...],
    firsts: Mapping[str, tuple[tuple[float, ...], str]],
    phases: dict[str, list[Phase]],
) -> pl.DataFrame:
    """phases.parquet's table: every run's phases (a static run: one at 0), sorted."""
    import polars as pl

    rows: list[tuple[str, int, tuple[float, ...]]] = []
    for run in sorted(firsts):
        items = phases.get(run) or [Phase(0, firsts[run][0], "")]
        rows.extend((run, ph.start_step, ph.weights) for ph in items)
    columns: dict[str, Any] = {
        RUN: pl.Series(RUN, [r[0] for r in rows], pl.String),
        STEP_START: pl.Series(STEP_START, [r[1] for r in rows], pl.Int64),
    }
    for i, domain in enumerate(domains):
        columns[domain] = pl.Series(domain, [r[2][i] for r in rows], pl.Float64)
    return pl.DataFrame(columns)
