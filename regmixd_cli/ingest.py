"""Parsed logs -> trajectory store (SPEC section 3.2): join mixtures and observations, validate.

Pure: takes `Parsed` values (and the store being appended to), returns a `Store` and warnings.
Checks, each an InputError naming the file: every run has exactly one mixture (given twice, it
must agree) and at least one observation; all runs name the same domains (a missing domain is
weight 0 only with `fill_missing_domains`); weights are checked and renormalised by
`prior.check_mixture`; a (run, step, metric) logged twice must carry the same value (identical
repeats collapse). Non-finite losses are kept and flag their run as diverged (a warning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import DIVERGED, METRIC, RUN, SOURCE, STEP, TOKENS, VALUE, Store
from regmixd_cli.errors import InputError
from regmixd_cli.prior import check_mixture
from regmixd_cli.readers.base import Parsed, empty_observations

if TYPE_CHECKING:
    import polars as pl

SOURCE_SEPARATOR = ";"
AGREE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class IngestResult:
    """A store ready to write, and what the user should be told about it."""

    store: Store
    warnings: tuple[str, ...]
    diverged: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Mixture:
    weights: tuple[float, ...]
    where: str
    sources: tuple[str, ...]


def build_store(
    parsed: Sequence[Parsed],
    *,
    existing: Store | None = None,
    fill_missing_domains: bool = False,
    label: str = "input",
) -> IngestResult:
    """Combine parsed files (and an existing store, for `--append`) into one checked store.

    `label` names the inputs as a whole in messages that concern no single file.
    """
    import polars as pl

    from regmixd_cli.io.store import build_manifest

    domains = _domains(parsed, existing, fill_missing_domains)
    mixtures = _mixtures(parsed, existing, domains, fill_missing_domains)
    trajectories = _observations(parsed, existing)
    if not mixtures and trajectories.height == 0:
        raise InputError(f"{label}: no runs found (no mixtures, no observations); "
                         "nothing to ingest")
    _check_runs_match(parsed, mixtures, trajectories, existing)
    trajectories = _collapse_duplicates(trajectories, parsed)

    nonfinite = (
        trajectories.filter(~pl.col(VALUE).is_finite())
        .group_by(RUN).agg(pl.col(METRIC).first(), pl.col(STEP).first(), pl.len())
        .sort(RUN)
    )
    diverged = tuple(nonfinite.get_column(RUN).to_list())
    warnings = tuple(
        f"run {run!r}: non-finite loss ({n} value(s), first {metric!r} at step {step}); "
        "kept, and the run is flagged diverged"
        for run, metric, step, n in nonfinite.iter_rows()
    )
    names = sorted(mixtures)
    columns: dict[str, Any] = {RUN: pl.Series(RUN, names, dtype=pl.String)}
    for i, domain in enumerate(domains):
        columns[domain] = pl.Series(domain, [mixtures[r].weights[i] for r in names], pl.Float64)
    columns[SOURCE] = pl.Series(
        SOURCE, [SOURCE_SEPARATOR.join(mixtures[r].sources) for r in names], pl.String
    )
    flagged = set(diverged)
    columns[DIVERGED] = pl.Series(DIVERGED, [r in flagged for r in names], pl.Boolean)
    runs = pl.DataFrame(columns)

    previous = existing.manifest["inputs"] if existing else []
    inputs = {(i["path"], i["sha256"]): i for i in previous}
    for p in parsed:
        inputs[(p.path, p.sha256)] = {"path": p.path, "sha256": p.sha256, "format": p.format}
    manifest = build_manifest(domains, runs, trajectories, list(inputs.values()))
    return IngestResult(Store(domains, runs, trajectories, manifest), warnings, diverged)


def _domains(
    parsed: Sequence[Parsed], existing: Store | None, fill_missing: bool
) -> tuple[str, ...]:
    """The sorted union of domains; without `fill_missing`, every run must name all of them."""
    seen: dict[str, str] = {}  # domain -> where first seen
    records: list[tuple[str, str, set[str]]] = []  # (where, run, domains)
    if existing is not None:
        for domain in existing.domains:
            seen.setdefault(domain, "the existing store")
        records.extend(("the existing store", r, set(existing.domains))
                       for r in existing.runs.get_column(RUN).to_list())
    for p in parsed:
        for run, record in p.mixtures.items():
            for domain in record.weights:
                seen.setdefault(domain, record.where)
            records.append((record.where, run, set(record.weights)))
    domains = tuple(sorted(seen))
    if not fill_missing:
        for where, run, named in records:
            missing = [d for d in domains if d not in named]
            if missing:
                raise InputError(
                    f"{where}: run {run!r} has no weight for domain(s) {', '.join(missing[:5])} "
                    f"(named at {seen[missing[0]]}); give them, or pass --fill-missing-domains "
                    "to treat a missing domain as weight 0"
                )
    return domains


def _mixtures(
    parsed: Sequence[Parsed], existing: Store | None, domains: tuple[str, ...], fill_missing: bool
) -> dict[str, _Mixture]:
    """run -> checked, renormalised mixture in `domains` order; repeats must agree."""
    found: dict[str, _Mixture] = {}
    if existing is not None:
        for row in existing.runs.iter_rows(named=True):
            weights = tuple(float(row.get(d) or 0.0) for d in domains)
            sources = tuple(s for s in str(row[SOURCE]).split(SOURCE_SEPARATOR) if s)
            found[row[RUN]] = _Mixture(weights, "the existing store", sources)
    for p in parsed:
        for run, record in p.mixtures.items():
            weights = check_mixture(record.weights, domains, record.where,
                                    fill_missing=fill_missing)
            previous = found.get(run)
            if previous is None:
                found[run] = _Mixture(weights, record.where, (p.path,))
                continue
            if any(abs(a - b) > AGREE_TOLERANCE
                   for a, b in zip(weights, previous.weights, strict=True)):
                raise InputError(
                    f"{record.where}: run {run!r} has a different mixture in {previous.where}; "
                    "a run has one mixture: keep one"
                )
            sources = tuple(sorted({*previous.sources, p.path}))
            found[run] = _Mixture(previous.weights, previous.where, sources)
    return found


def _observations(parsed: Sequence[Parsed], existing: Store | None) -> pl.DataFrame:
    """All observations in one table, sorted by (run, metric, step)."""
    import polars as pl

    frames = [p.observations for p in parsed if p.observations is not None
              and p.observations.height]
    if existing is not None and existing.trajectories.height:
        frames.insert(0, existing.trajectories)
    if not frames:
        return empty_observations()
    if len(frames) == 1:
        return frames[0]  # every reader returns its table sorted already
    return pl.concat(frames, how="vertical").sort([RUN, METRIC, STEP], maintain_order=True)


def _check_runs_match(
    parsed: Sequence[Parsed],
    mixtures: dict[str, _Mixture],
    trajectories: pl.DataFrame,
    existing: Store | None,
) -> None:
    """Every run with observations has a mixture, and every mixture has observations."""
    observed = set(trajectories.get_column(RUN).unique().to_list())
    orphans = sorted(observed - set(mixtures))
    if orphans:
        run = orphans[0]
        where = next((p.path for p in parsed if p.observations is not None
                      and run in set(p.observations.get_column(RUN).unique().to_list())),
                     "the existing store")
        raise InputError(
            f"{where}: run {run!r} has observations but no mixture ({len(orphans)} such run(s)); "
            "add a mixture line for it, or pass --mixtures FILE"
        )
    unobserved = sorted(set(mixtures) - observed)
    if unobserved:
        run = unobserved[0]
        raise InputError(
            f"{mixtures[run].where}: run {run!r} has a mixture but no observations "
            f"({len(unobserved)} such run(s)); add its logs, or remove the mixture"
        )


def _collapse_duplicates(trajectories: pl.DataFrame, parsed: Sequence[Parsed]) -> pl.DataFrame:
    """Drop identical repeats of a (run, step, metric); raise if two values differ."""
    import polars as pl

    key = [RUN, METRIC, STEP]
    repeat = pl.all_horizontal(pl.col(c) == pl.col(c).shift() for c in key).fill_null(False)
    is_repeat = trajectories.select(repeat.alias("r")).get_column("r")
    if not is_repeat.any():
        return trajectories
    groups = trajectories.filter(is_repeat | is_repeat.shift(-1, fill_value=False))
    conflicts = (
        groups.group_by(key, maintain_order=True)
        .agg(pl.col(VALUE).unique(maintain_order=True), pl.col(TOKENS).n_unique().alias("nt"))
        .filter((pl.col(VALUE).list.len() > 1) | (pl.col("nt") > 1))
    )
    if conflicts.height:
        run, metric, step, values, _ = conflicts.row(0)
        files = [p.path for p in parsed if p.observations is not None
                 and p.observations.filter((pl.col(RUN) == run) & (pl.col(METRIC) == metric)
                                           & (pl.col(STEP) == step)).height]
        where = ", ".join(files) if files else "the existing store"
        shown = " and ".join(_fmt(v) for v in values[:2]) if len(values) > 1 else "different tokens"
        raise InputError(
            f"{where}: run {run!r} logs {metric!r} at step {step} twice with different values "
            f"({shown}); remove one ({conflicts.height} such conflict(s))"
        )
    return trajectories.filter(~is_repeat)


def _fmt(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)
