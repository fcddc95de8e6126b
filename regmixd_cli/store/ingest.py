"""Parsed logs -> trajectory store: join mixtures and observations, validate.

Pure: takes `Parsed` values (and the store being appended to), returns a `Store` and warnings.
Checks, each an InputError naming the file: every run has exactly one mixture (given twice, it
must agree) and at least one observation; all runs name the same domains (a missing domain is
weight 0 only with `fill_missing_domains`); weights are checked and renormalised by
`prior.check_mixture`; a (run, step, metric) logged twice must carry the same value (identical
repeats collapse). Non-finite losses are kept and flag their run as diverged (a warning).

See docs/reference/file-formats.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli.domain import (
    DIVERGED,
    METRIC,
    RUN,
    SOURCE,
    STEP,
    TOKENS,
    TRAJECTORY_COLUMNS,
    VALUE,
    Store,
)
from regmixd_cli.errors import InputError
from regmixd_cli.files import check_not_input
from regmixd_cli.store.columns import numeric, values_of
from regmixd_cli.store.files import (
    MANIFEST_FILE,
    first_appearance,
    lock_store,
    manifest_of,
    open_store,
    read_store,
)
from regmixd_cli.store.observations import empty_observations
from regmixd_cli.store.phases import check_phase_reach, collect_phases, phase_frame
from regmixd_cli.store.readers import read_inputs
from regmixd_cli.store.readers.base import Parsed
from regmixd_cli.store.readers.wide import WideObservations, wide_to_long, wide_to_long_frame
from regmixd_cli.store.spill import Spill
from regmixd_cli.weights import check_mixture

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

SOURCE_SEPARATOR = ";"
AGREE_TOLERANCE = 1e-9
EXISTING = "the existing store"
# Largest loss taken as a number; beyond it (or NaN/inf) the run is flagged diverged.
HUGE_LOSS = 1e30

# Long rows built and checked at a time: bounds ingest's memory whatever the input size.
BUCKET_ROWS = 1 << 18


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
    sink: Callable[[Iterator[pa.Table], bool], None] | None = None,
    bucket_rows: int = BUCKET_ROWS,
    ignore_extra_mixtures: bool = False,
) -> IngestResult:
    """Combine parsed files (and an existing store, for `--append`) into one checked store.

    `label` names the inputs as a whole in messages that concern no single file. The long
    table is built one run range (about `bucket_rows` rows) at a time; with a `sink`, the
    chunks go there in (run, metric, step) order (e.g. `StoreDraft.write_trajectories`) and
    the returned store's `trajectories` is empty, so memory stays bounded.
    """
    import polars as pl


    domains = _domains(parsed, existing, fill_missing_domains)
    mixtures = _mixtures(parsed, existing, domains, fill_missing_domains)
    sources = _sources(parsed, existing)
    weights: dict[str, int] = {}
    for source in sources:
        for run, n in source.run_rows.items():
            weights[run] = weights.get(run, 0) + n
    if not mixtures and not weights:
        raise InputError(f"{label}: no runs found (no mixtures, no observations); "
                         "nothing to ingest")
    extra = sorted(set(mixtures) - set(weights)) if ignore_extra_mixtures else []
    for run in extra:
        del mixtures[run]
    firsts = {run: (m.weights, m.where) for run, m in mixtures.items()}
    phases = collect_phases(parsed, existing, domains, fill_missing_domains, firsts)
    _check_runs_match(sources, mixtures, set(weights))

    stats = _Stats(track_steps=bool(phases))
    chunks = (stats.add(chunk) for chunk in _chunks(sources, weights, bucket_rows))
    if sink is not None:
        sink(chunks, all(source.tokens_complete() for source in sources))
        trajectories = empty_observations()
    else:
        tables = list(chunks)
        trajectories = (_to_polars(_concat_tables(tables)) if tables else empty_observations())

    nonfinite = (
        pl.concat(stats.nonfinite).group_by(RUN)
        .agg(pl.col(METRIC).first(), pl.col(STEP).first(), pl.len())
        .sort(RUN)
        if stats.nonfinite else pl.DataFrame(schema={RUN: pl.String, METRIC: pl.String,
                                                     STEP: pl.Int64, "len": pl.UInt32})
    )
    diverged = tuple(nonfinite.get_column(RUN).to_list())
    warnings = tuple(
        f"run {run!r}: non-finite loss (or beyond 1e30: {n} value(s), first {metric!r} at "
        f"step {step}); "
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
    manifest = manifest_of(domains, runs, sorted(stats.metrics), stats.n_rows,
                           list(inputs.values()))
    if extra:
        warnings += (f"{len(extra)} run(s) with a mixture but no observations left out "
                     f"(``ignore_extra_mixtures``): {', '.join(extra[:5])}"
                     f"{', ...' if len(extra) > 5 else ''}",)
    phase_table = None
    if phases:
        check_phase_reach(phases, stats.last_step)
        phase_table = phase_frame(domains, firsts, phases)
        manifest["n_phased_runs"] = len(phases)
    store = Store(domains, runs, trajectories, manifest, phase_table)
    return IngestResult(store, warnings, diverged)


def _concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Chunks as one Arrow table (their dictionaries unified)."""
    import pyarrow as pa

    return pa.concat_tables(tables).unify_dictionaries()


def _to_polars(table: pa.Table) -> pl.DataFrame:
    import polars as pl

    frame: Any = pl.from_arrow(table)
    result: pl.DataFrame = frame.with_columns(pl.col(RUN, METRIC).cast(pl.String)).select(
        TRAJECTORY_COLUMNS
    )
    return result


@dataclass(frozen=True, slots=True)
class _Source:
    """One input's observations: a long table sorted by (run, metric, step), or wide parts."""

    path: str
    run_rows: dict[str, int]  # run -> (estimated) long rows
    long: pl.DataFrame | None = None
    wide: WideObservations | None = None

    def tokens_complete(self) -> bool:
        """Whether every row has tokens (the store then writes the column as required)."""
        if self.long is not None:
            return self.long.get_column(TOKENS).null_count() == 0
        return self.wide is not None and all(p.tokens_complete for p in self.wide.parts)


def _sources(parsed: Sequence[Parsed], existing: Store | None) -> list[_Source]:
    """Every input that has observations (the existing store first)."""
    frames: list[tuple[str, pl.DataFrame]] = []
    if existing is not None and existing.trajectories.height:
        frames.append((EXISTING, existing.trajectories))
    sources: list[_Source] = []
    for p in parsed:
        if p.wide is not None:
            counts = p.wide.run_rows()
            sources.append(_Source(p.path, {r: n * p.wide.n_metrics for r, n in counts.items()},
                                   wide=p.wide))
        elif p.observations is not None and p.observations.height:
            frames.append((p.path, p.observations))
    for path, frame in frames:
        run_counts = frame.group_by(RUN).len()
        sources.append(_Source(path, dict(run_counts.iter_rows()), long=frame))
    # Long sources before wide ones keep an existing store's rows first among repeats.
    return sorted(sources, key=lambda s: s.long is None)


def _buckets(weights: dict[str, int], bucket_rows: int) -> Iterator[tuple[str, str]]:
    """Consecutive ranges (first, last) of the sorted runs, about `bucket_rows` rows each."""
    order = sorted(weights)
    first, total = 0, 0
    for i, run in enumerate(order):
        if total and total + weights[run] > bucket_rows:
            yield order[first], order[i - 1]
            first, total = i, 0
        total += weights[run]
    if order:
        yield order[first], order[-1]


def _chunks(sources: list[_Source], weights: dict[str, int], bucket_rows: int
            ) -> Iterator[pa.Table]:
    """The whole long table, one run range at a time, sorted and free of repeats."""
    import polars as pl

    for first, last in _buckets(weights, bucket_rows):
        longs: list[pl.DataFrame] = []
        wides: list[pl.DataFrame] = []
        for source in sources:
            if source.long is not None:
                col = source.long.get_column(RUN)
                lo = col.search_sorted(first, "left")
                hi = col.search_sorted(last, "right")
                if lo < hi:
                    longs.append(source.long.slice(lo, hi - lo))
            elif source.wide is not None:
                wides.extend(source.wide.take(first, last))
        wide = None
        if wides:
            wide = _concat_sorted(wides)
            if not longs:
                table = wide_to_long(wide)
                if table is not None:
                    yield table
                    continue
        frames = longs + ([wide_to_long_frame(wide)] if wide is not None else [])
        if len(frames) == 1:
            long = frames[0]
        else:
            long = pl.concat([f.select(TRAJECTORY_COLUMNS) for f in frames], how="vertical")
            long = long.sort([RUN, METRIC, STEP], maintain_order=True)
        yield _collapse_duplicates(long, sources).to_arrow()


def _concat_sorted(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Wide frames, each sorted by (run, step), as one sorted frame.

    Frames whose runs do not overlap (a run's rows all in one part, the usual case) are only
    put in order; otherwise the stable sort keeps repeats in part order.
    """
    import polars as pl

    if len(frames) == 1:
        return frames[0]
    spans = sorted((f.get_column(RUN)[0], f.get_column(RUN)[-1], i)
                   for i, f in enumerate(frames) if f.height)
    if all(prev[1] < nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False)):
        return pl.concat([frames[i] for _, _, i in spans], how="diagonal")
    return pl.concat(frames, how="diagonal").sort([RUN, STEP], maintain_order=True)


class _Stats:
    """What the manifest and the warnings need from the chunks, gathered as they pass."""

    def __init__(self, track_steps: bool = False) -> None:
        self.n_rows = 0
        self.metrics: set[str] = set()
        self.nonfinite: list[pl.DataFrame] = []
        self.track_steps = track_steps
        self.last_step: dict[str, int] = {}  # run -> last logged step (phased stores only)

    def add(self, table: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.n_rows += table.num_rows
        if self.track_steps:
            import polars as pl

            last = _to_polars(table).group_by(RUN).agg(pl.col(STEP).max())
            for run, step in last.iter_rows():
                self.last_step[run] = max(step, self.last_step.get(run, step))
        metric = table.column(METRIC)
        if pa.types.is_dictionary(metric.type):
            for chunk in metric.chunks:
                used = first_appearance(values_of(chunk.indices))
                self.metrics.update(chunk.dictionary.take(numeric(used, pa.int64())).to_pylist())
        else:
            self.metrics.update(pc.unique(metric).to_pylist())
        values = table.column(VALUE)
        # A loss beyond HUGE_LOSS is a diverged run too (and would overflow the regressors'
        # 32-bit floats in fit). Two reductions rule it out for most chunks (NaN fails both).
        if all(_within(chunk, HUGE_LOSS) for chunk in values.chunks):
            return table
        bad = pc.or_(pc.invert(pc.is_finite(values)), pc.greater(pc.abs(values), HUGE_LOSS))
        if pc.any(bad).as_py():
            self.nonfinite.append(_to_polars(table.filter(bad)))
        return table


def _within(chunk: pa.Array, bound: float) -> bool:
    """Whether every value of a float chunk is finite and within ±`bound` (no nulls)."""
    if chunk.null_count or len(chunk) == 0:
        return len(chunk) == 0
    values = values_of(chunk)
    return bool(values.min() >= -bound and values.max() <= bound)


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
        later = [(run, r) for run, rs in p.phases.items() for r in rs.values()]
        for run, record in [*p.mixtures.items(), *later]:
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
                    f"(named at {seen[missing[0]]}); give them, or pass ``fill_missing_domains`` "
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
                    f"{_run_at(record.where, run)} has a different mixture in {previous.where}; "
                    "a run has one mixture: keep one"
                )
            sources = tuple(sorted({*previous.sources, p.path}))
            found[run] = _Mixture(previous.weights, previous.where, sources)
    return found


def _run_at(where: str, run: str) -> str:
    """`FILE: run 'r0'`, without naming the run twice when `where` already names it."""
    named = f"run {run!r}"
    return where if where.endswith(named) else f"{where}: {named}"


def _check_runs_match(
    sources: list[_Source], mixtures: dict[str, _Mixture], observed: set[str]
) -> None:
    """Every run with observations has a mixture, and every mixture has observations."""
    orphans = sorted(observed - set(mixtures))
    if orphans:
        run = orphans[0]
        where = next(s.path for s in sources if run in s.run_rows)
        raise InputError(
            f"{where}: run {run!r} has observations but no mixture ({len(orphans)} such run(s)); "
            "add a mixture line for it, or pass ``mixtures`` FILE"
        )
    unobserved = sorted(set(mixtures) - observed)
    if unobserved:
        run = unobserved[0]
        raise InputError(
            f"{_run_at(mixtures[run].where, run)} has a mixture but no observations "
            f"({len(unobserved)} such run(s)); add its logs, remove the mixture, or pass "
            "``ignore_extra_mixtures`` to leave such runs out"
        )


def _collapse_duplicates(trajectories: pl.DataFrame, sources: list[_Source]) -> pl.DataFrame:
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
        files = [s.path for s in sources if _logs(s, run, metric, step)]
        where = ", ".join(files)
        shown = " and ".join(_fmt(v) for v in values[:2]) if len(values) > 1 else "different tokens"
        raise InputError(
            f"{where}: run {run!r} logs {metric!r} at step {step} twice with different values "
            f"({shown}); remove one ({conflicts.height} such conflict(s))"
        )
    return trajectories.filter(~is_repeat)


def _logs(source: _Source, run: str, metric: str, step: int) -> bool:
    """Whether a source has a value for (run, metric, step)."""
    import polars as pl

    if source.long is not None:
        rows = source.long
    elif source.wide is not None and metric in _metric_columns_of(source.wide, run):
        rows = pl.concat([w.select(RUN, STEP, pl.col(metric).alias(VALUE))
                          for w in source.wide.take(run, run) if metric in w.columns])
        rows = rows.drop_nulls(VALUE).with_columns(pl.lit(metric).alias(METRIC))
    else:
        return False
    return bool(rows.filter((pl.col(RUN) == run) & (pl.col(METRIC) == metric)
                            & (pl.col(STEP) == step)).height)


def _metric_columns_of(wide: WideObservations, run: str) -> set[str]:
    """Metric columns of the parts that hold `run`."""
    return {c for w in wide.take(run, run) for c in w.columns}


def _fmt(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """What `regmixd ingest` was asked to do."""

    paths: tuple[str, ...]
    out_dir: Path
    mixtures: str | None = None
    fmt: str = "auto"
    final_step: int = 1000
    append: bool = False
    fill_missing_domains: bool = False
    ignore_extra_mixtures: bool = False


def ingest_logs(
    request: IngestRequest,
    on_message: Callable[[str], None] = lambda _m: None,
    on_warning: Callable[[str], None] = lambda _m: None,
) -> tuple[IngestResult, Store]:
    """Read the logs (and the store, with `append`) and write the new store atomically.

    One writer at a time: the store is locked, since `append` reads it and writes it back.
    Big logs are read in parts spilled inside the draft store, and the long table is written
    as it is built, so memory stays bounded; the draft replaces `out_dir` only on success.
    """
    out_dir = request.out_dir
    check_not_input(out_dir, [*request.paths, request.mixtures])
    with lock_store(out_dir, on_wait=on_message):
        existing = None
        if out_dir.exists():
            if not (out_dir / MANIFEST_FILE).is_file() and not _is_empty_dir(out_dir):
                raise InputError(f"{out_dir}: exists and is not a regmixd store; choose another "
                                 "``out`` or remove it")
            if request.append and (out_dir / MANIFEST_FILE).is_file():
                existing = read_store(out_dir)
        elif request.append:
            on_message(f"{out_dir}: no store yet; ``append`` starts a new one")
        with open_store(out_dir) as draft:
            inputs = read_inputs(list(request.paths), request.fmt, request.mixtures,
                                 request.final_step, spill=Spill(draft.spill_dir))
            for skipped in inputs.skipped:
                on_warning(f"{skipped}: JSON but not a log, trainer_state.json or mixtures "
                           "file; skipped")
            result = build_store(inputs.parsed, existing=existing,
                                 fill_missing_domains=request.fill_missing_domains,
                                 ignore_extra_mixtures=request.ignore_extra_mixtures,
                                 label=", ".join(request.paths), sink=draft.write_trajectories)
            store = draft.finish(result.store)
    return result, store


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())
