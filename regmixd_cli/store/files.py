"""Read and write the trajectory store directory (docs/reference/file-formats.md).

`trajectories.parquet` is written by `TrajectoryWriter` from sorted chunks, so a store can be
written while its rows are still being produced (`open_store`), with bounded memory. Its bytes
depend only on the rows: row groups are cut by a rule on the runs' row counts (`RowGroups`)
whatever the chunking, the dictionaries of `run` and `metric` are rebuilt per row group in
order of first appearance (what Parquet's own dictionary encoder would produce from plain
strings), and row groups encoded in parallel are joined into the bytes one writer would give
(`parquet_join`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regmixd_cli._version import __version__
from regmixd_cli.cores import available_cores
from regmixd_cli.domain import (
    DIVERGED,
    METRIC,
    RUN,
    SOURCE,
    STEP,
    STEP_START,
    STORE_SCHEMA,
    TOKENS,
    TRAJECTORY_COLUMNS,
    VALUE,
    Store,
)
from regmixd_cli.errors import InputError
from regmixd_cli.files import (
    atomic_dir,
    check_output_dir,
    read_json,
    sha256_file,
    temp_stem,
    write_json,
)
from regmixd_cli.store.ahead import ahead
from regmixd_cli.store.columns import numeric, values_of
from regmixd_cli.store.parquet_join import JoinedParquet

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

RUNS_FILE = "runs.parquet"
TRAJECTORIES_FILE = "trajectories.parquet"
PHASES_FILE = "phases.parquet"  # phased stores only: run, start_step, one column per domain
MANIFEST_FILE = "manifest.json"
SPILL_DIR = ".spill"  # scratch space inside a store being written; removed before it is final
ROW_GROUP_ROWS = 1 << 18
_DICTIONARY_COLUMNS = (RUN, METRIC)


def build_manifest(
    domains: tuple[str, ...], runs: Any, trajectories: Any, inputs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest of a store; file hashes are added by `write_store`."""
    metrics = sorted(trajectories.get_column(METRIC).unique().to_list())
    return manifest_of(domains, runs, metrics, int(trajectories.height), inputs)


def manifest_of(
    domains: tuple[str, ...], runs: Any, metrics: list[str], n_rows: int,
    inputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """The manifest from counts (for a store whose rows were streamed to disk)."""
    return {
        "schema_version": STORE_SCHEMA,
        "domains": list(domains),
        "metrics": sorted(metrics),
        "n_runs": int(runs.height),
        "n_rows": int(n_rows),
        "n_diverged": int(runs.get_column(DIVERGED).sum()),
        "inputs": sorted(inputs, key=lambda item: (item["path"], item["sha256"])),
        "regmixd_version": __version__,
    }


def trajectory_schema(tokens_required: bool = False) -> pa.Schema:
    """The Arrow schema of `trajectories.parquet` as written (run, metric dictionary-encoded).

    Only `tokens` may be null, and is required too when the caller knows every row has it;
    a required column spares the encoder its definition levels (~25% of its time on the long
    table; ~40% of the tokens column's).
    """
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    return pa.schema([pa.field(RUN, text, nullable=False), pa.field(STEP, pa.int64(), False),
                      pa.field(TOKENS, pa.int64(), nullable=not tokens_required),
                      pa.field(METRIC, text, nullable=False),
                      pa.field(VALUE, pa.float64(), nullable=False)])


class TrajectoryWriter:
    """Writes `trajectories.parquet` from chunks already in (run, metric, step) order.

    Each row group is encoded on its own (`encode`, into memory; thread-safe) and appended to
    the file in order (`append`), the footers joined by `parquet_join.JoinedParquet`. The
    bytes are those one `pq.ParquetWriter` would write; `write` and `close` do everything in
    the caller's thread, while `StoreDraft.write_trajectories` encodes on every core.
    """

    def __init__(self, path: Path, tokens_required: bool = False) -> None:
        self.schema = trajectory_schema(tokens_required)
        self._handle = open(path, "wb")  # noqa: SIM115 - closed by close() or discard()
        self._file = JoinedParquet(self._handle)
        self._groups = RowGroups(self.schema)

    def encode(self, group: pa.Table) -> memoryview:
        """One row group cut by `RowGroups` as a whole Parquet file in memory (a view of
        pyarrow's buffer: not copied)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        # Fixed options so the same rows give the same bytes; no Arrow schema is stored, so
        # readers see run and metric as plain strings. Values are byte-stream-split before
        # zstd (measured: smaller and faster than zstd alone on losses); steps and tokens are
        # delta-coded (each run's steps rise by a constant stride: -18% encoder time and
        # smaller than a dictionary of every step). No statistics for
        # run and metric: pyarrow computes them by a Unique + Take of the dictionary column,
        # a quarter of the encoder's time, and nothing reads them (a reader filtering by run
        # scans the run column's dictionary pages, a few KB per row group).
        with pq.ParquetWriter(
            sink, self.schema, compression="zstd", store_schema=False,
            use_dictionary=[RUN, METRIC],
            column_encoding={STEP: "DELTA_BINARY_PACKED", TOKENS: "DELTA_BINARY_PACKED",
                             VALUE: "BYTE_STREAM_SPLIT"},
            write_statistics=[STEP, TOKENS, VALUE],
        ) as writer:
            if group.num_rows:
                writer.write_table(group, row_group_size=group.num_rows)
        return memoryview(sink.getvalue())

    def append(self, encoded: bytes | memoryview) -> None:
        """Append a row group from `encode` (in the file's row order)."""
        self._file.add(encoded)

    def write(self, chunk: Any) -> None:
        """Add a chunk (a pyarrow Table or a polars DataFrame with the trajectory columns);
        on an error the file is closed, incomplete."""
        try:
            for group in self._groups.add(chunk):
                self.append(self.encode(group))
        except BaseException:
            self.discard()
            raise

    def close(self) -> None:
        """Write the last row groups and the footer; on an error the file is closed,
        incomplete."""
        try:
            for group in self._groups.finish():
                self.append(self.encode(group))
            if not self._file.started:  # no rows: a file with the schema and no row group
                self.append(self.encode(self.schema.empty_table()))
            self._file.close()
        finally:
            self._handle.close()

    def discard(self) -> None:
        """Stop after an error: close the (partial) file."""
        self._handle.close()


class RowGroups:
    """Cuts chunks into the file's row groups, in canonical form.

    A row group holds whole runs: consecutive runs while they fit in `ROW_GROUP_ROWS` rows; a
    run with more rows is cut into pieces of `ROW_GROUP_ROWS` (its last piece shorter) and
    shares no row group. The cuts depend on the rows alone, and when each chunk is a bucket
    of whole runs of about that size (as ingest builds them), every row group is one chunk or
    a slice of it: nothing is copied.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._buffer: list[pa.Table] = []
        # [run, rows, long] of the buffered rows, in order; the last run may go on. A long run
        # (more than ROW_GROUP_ROWS rows) stays long after its first pieces are cut.
        self._runs: list[list[Any]] = []

    def add(self, chunk: Any) -> list[pa.Table]:
        """Take a chunk; return the row groups it completes."""
        table = _as_arrow(chunk, self.schema)
        if table.num_rows == 0:
            return []
        for run, n_rows in _run_lengths(table.column(RUN)):
            if self._runs and self._runs[-1][0] == run:
                self._runs[-1][1] += n_rows
            else:
                self._runs.append([run, n_rows, False])
        self._buffer.append(table)
        return self._cut(final=False)

    def finish(self) -> list[pa.Table]:
        """The row groups of the rows left (the last run is complete now)."""
        return self._cut(final=True)

    def _cut(self, *, final: bool) -> list[pa.Table]:
        """Row groups whose runs are known to be complete (all of them when `final`); a long
        run's whole pieces go as soon as they are buffered."""
        sizes: list[int] = []
        start = 0  # first run of the open group
        total = 0  # rows of the open group
        for i, entry in enumerate(self._runs):
            _, n_rows, long = entry
            going_on = not final and i == len(self._runs) - 1
            if long or n_rows > ROW_GROUP_ROWS:
                if total:
                    sizes.append(total)
                    total = 0
                pieces, rest = divmod(n_rows, ROW_GROUP_ROWS)
                sizes.extend([ROW_GROUP_ROWS] * pieces)
                if going_on:
                    entry[1:] = [rest, True]
                    start = i
                    break
                if rest:
                    sizes.append(rest)
                start = i + 1
                continue
            if going_on:
                break
            if total and total + n_rows > ROW_GROUP_ROWS:
                sizes.append(total)
                start, total = i, 0
            total += n_rows
        else:
            if final:
                if total:
                    sizes.append(total)
                start = len(self._runs)
        self._runs = self._runs[start:]
        return [self._take(n_rows) for n_rows in sizes]

    def _take(self, n_rows: int) -> pa.Table:
        """The first `n_rows` buffered rows as one canonical row group."""
        import pyarrow as pa

        head = self._buffer[0]
        if head.num_rows >= n_rows:  # the usual case: a chunk or a slice of it, no copy
            group = head.slice(0, n_rows)
            rest = head.slice(n_rows)
            self._buffer[0:1] = [rest] if rest.num_rows else []
            return _canonical(group, self.schema)
        table = pa.concat_tables(self._buffer)
        group, rest = table.slice(0, n_rows), table.slice(n_rows)
        self._buffer = [rest] if rest.num_rows else []
        return _canonical(group, self.schema)


def _run_lengths(column: pa.ChunkedArray) -> list[tuple[str, int]]:
    """(run, rows) of each stretch of equal runs of a dictionary-encoded column, in order."""
    import numpy as np
    import pyarrow as pa

    stretches: list[tuple[str, int]] = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        codes = values_of(chunk.indices)
        starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        bounds = np.concatenate(([0], starts, [codes.size]))
        names = chunk.dictionary.take(numeric(codes[bounds[:-1]], pa.int64())).to_pylist()
        for name, n_rows in zip(names, np.diff(bounds).tolist(), strict=True):
            if stretches and stretches[-1][0] == name:
                stretches[-1] = (name, stretches[-1][1] + n_rows)
            else:
                stretches.append((name, n_rows))
    return stretches


def _as_arrow(chunk: Any, schema: pa.Schema) -> pa.Table:
    """A chunk as an Arrow table with exactly `schema` (strings dictionary-encoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = chunk if isinstance(chunk, pa.Table) else chunk.select(TRAJECTORY_COLUMNS).to_arrow()
    columns = []
    for field in schema:
        column = table.column(field.name)
        if pa.types.is_dictionary(field.type):
            if not pa.types.is_dictionary(column.type):
                column = pc.dictionary_encode(column.cast(pa.string()))
            column = column.cast(field.type)
        elif column.type != field.type:
            column = column.cast(field.type)
        if not field.nullable and column.null_count:
            raise ValueError(f"trajectory column {field.name!r} has nulls")  # a bug, not input
        columns.append(column)
    return pa.table(columns, schema=schema)


def _canonical(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """One row group with each dictionary rebuilt: used entries only, by first appearance."""
    import numpy as np
    import pyarrow as pa

    columns = []
    for field in schema:
        column = table.column(field.name)
        if field.name in _DICTIONARY_COLUMNS:
            if column.num_chunks == 1:  # a slice of one chunk: no copy
                dictionary, indices = column.chunk(0).dictionary, column.chunk(0).indices
            else:
                column = column.unify_dictionaries()
                dictionary = column.chunk(0).dictionary
                indices = pa.chunked_array([c.indices for c in column.chunks], pa.int32())
                indices = indices.combine_chunks()
            codes = values_of(indices)
            used = first_appearance(codes)
            # Indices are in range by construction: skip Arrow's bounds check (safe=False).
            if used.size and np.array_equal(used, np.arange(used[0], used[0] + used.size)):
                # Used entries in dictionary order (always so for runs): shift, no gather.
                shifted = numeric(codes - used[0] if used[0] else codes, pa.int32())
                column = pa.DictionaryArray.from_arrays(
                    shifted, dictionary.slice(int(used[0]), used.size), safe=False)
            else:
                remap = np.zeros(len(dictionary), dtype=np.int32)
                remap[used] = np.arange(used.size, dtype=np.int32)
                column = pa.DictionaryArray.from_arrays(
                    numeric(remap[codes], pa.int32()), dictionary.take(numeric(used, pa.int64())),
                    safe=False)
        else:
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        columns.append(column)
    return pa.table(columns, schema=schema)


def first_appearance(codes: Any) -> Any:
    """The distinct values of an int array in order of first appearance.

    Sorted store rows hold each run and metric in long stretches, so only the first value of
    each stretch is looked at; rows without such stretches are hashed instead.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if codes.size == 0:
        return codes
    starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    if starts.size > codes.size // 8:
        return values_of(pc.unique(numeric(codes, pa.int64())))
    heads = np.concatenate((codes[:1], codes[starts]))
    distinct, first = np.unique(heads, return_index=True)
    return distinct[np.argsort(first, kind="stable")]


def encoders() -> int:
    """Threads that encode row groups: every core but one, which builds the long rows and
    cuts the row groups (at least one). On 2 cores a second encoder measured no faster
    (0.750 vs 0.744 s for 100 MB) and cost more CPU and memory: see docs/DECISIONS.md."""
    return max(1, available_cores() - 1)


class StoreDraft:
    """A store being written inside a temporary directory (see `open_store`)."""

    def __init__(self, directory: Path, target: Path | None = None) -> None:
        self.directory = directory
        self.target = directory if target is None else target  # the store's path, for messages
        self.spill_dir = directory / SPILL_DIR
        self._trajectories = False

    def write_trajectories(self, chunks: Iterable[Any], tokens_required: bool = False) -> None:
        """Write `trajectories.parquet` from chunks in (run, metric, step) order
        (`tokens_required`: the caller knows no row lacks tokens).

        The chunks are built one ahead in a thread (`ahead`), cut into row groups here, and
        the row groups encoded by a pool of `encoders()` threads (numpy, polars and pyarrow
        release the GIL), then appended in order: the bytes are the same for any number of
        encoders. At most one row group per encoder waits.
        """
        from concurrent.futures import Future, ThreadPoolExecutor

        path = self.directory / TRAJECTORIES_FILE
        writer = TrajectoryWriter(path, tokens_required)
        groups = RowGroups(writer.schema)
        workers = encoders()
        pool = ThreadPoolExecutor(workers, thread_name_prefix="regmixd-parquet")
        pending: deque[Future[memoryview]] = deque()

        def flush(keep: int) -> None:
            while len(pending) > keep:
                encoded = pending.popleft().result()
                with _names(self.target / TRAJECTORIES_FILE):
                    writer.append(encoded)

        def encode(group: pa.Table) -> None:
            pending.append(pool.submit(writer.encode, group))
            flush(workers)

        try:
            for chunk in ahead(iter(chunks), "regmixd-build"):
                for group in groups.add(chunk):
                    encode(group)
            for group in groups.finish():
                encode(group)
            flush(0)
            with _names(self.target / TRAJECTORIES_FILE):
                writer.close()
        except BaseException:
            writer.discard()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._trajectories = True

    def finish(self, store: Store) -> Store:
        """Write runs, trajectories (unless streamed already) and the manifest with hashes."""
        shutil.rmtree(self.spill_dir, ignore_errors=True)
        trajectories = store.trajectories
        if not self._trajectories:
            trajectories = trajectories.select(TRAJECTORY_COLUMNS).sort(
                [RUN, METRIC, STEP], maintain_order=True)
            self.write_trajectories([trajectories],
                                    trajectories.get_column(TOKENS).null_count() == 0)
        runs = store.runs.sort(RUN)
        # Statistics and compression are fixed so the same input gives the same bytes.
        runs.write_parquet(self.directory / RUNS_FILE, compression="zstd", statistics=True)
        manifest = dict(store.manifest)
        manifest["files"] = {
            RUNS_FILE: sha256_file(self.directory / RUNS_FILE),
            TRAJECTORIES_FILE: sha256_file(self.directory / TRAJECTORIES_FILE),
        }
        phases = store.phases
        if phases is not None:
            phases = phases.sort([RUN, STEP_START])
            phases.write_parquet(self.directory / PHASES_FILE, compression="zstd",
                                 statistics=True)
            manifest["files"][PHASES_FILE] = sha256_file(self.directory / PHASES_FILE)
        write_json(self.directory / MANIFEST_FILE, manifest)
        return Store(store.domains, runs, trajectories, manifest, phases)


@contextlib.contextmanager
def _names(path: Path) -> Iterator[None]:
    """An OSError of a write that names no file (a write to an open handle) names `path`;
    errors of the chunks' source keep their own names."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


@contextlib.contextmanager
def open_store(path: Path) -> Iterator[StoreDraft]:
    """A store to fill; it replaces `path` only if the block succeeds and calls `finish`."""
    with atomic_dir(Path(path)) as tmp:
        draft = StoreDraft(tmp, Path(path))
        yield draft
        shutil.rmtree(draft.spill_dir, ignore_errors=True)


@contextlib.contextmanager
def lock_store(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the store's writer lock (`.NAME.lock` beside it) for a read-modify-write.

    The lock is a sibling, not a file inside the store, because a write replaces the store
    directory by rename. A second writer waits (after calling `on_wait` with a message) until
    the first is done; the kernel drops the lock of a killed process. The holder deletes the
    lock file before releasing it, so a waiter that then gets the lock of a deleted file sees
    that the path no longer names it and locks the path anew.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent writers are not supported
        yield
        return
    check_output_dir(path.parent)  # a file in the way; `path` itself is the caller's to check
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{temp_stem(path)}.lock"
    warned = False
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(f"{lock}: cannot create the store lock ({exc.strerror}); "
                             "check the directory's permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None and not warned:
                on_wait(f"{path}: another regmixd is writing this store; waiting for it "
                        f"(lock {lock})")
                warned = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us deleted that file: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)  # closing the descriptor releases the lock


def write_store(path: Path, store: Store) -> Store:
    """Write a store atomically (sorted, deterministic) and return it with its final manifest."""
    with open_store(Path(path)) as draft:
        return draft.finish(store)


def store_hash(path: Path) -> str:
    """A stable identity of a store: the sha256 of its manifest (which holds the file hashes)."""
    return sha256_file(Path(path) / MANIFEST_FILE)


def read_store(path: Path, *, verify: bool = True) -> Store:
    """Read a store directory, checking its schema version and (by default) its file hashes."""
    import polars as pl

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a trajectory store (no such directory); "
                         "run `regmixd ingest`")
    manifest = read_json(path / MANIFEST_FILE, "store manifest")
    if not isinstance(manifest, dict) or manifest.get("schema_version") != STORE_SCHEMA:
        found = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise InputError(
            f"{path / MANIFEST_FILE}: store schema {found!r} is not {STORE_SCHEMA!r}; "
            "re-ingest the logs with this version of regmixd"
        )
    _check_manifest(manifest, path / MANIFEST_FILE)
    files, domains = manifest["files"], manifest["domains"]
    phased = PHASES_FILE in files
    for name in (RUNS_FILE, TRAJECTORIES_FILE, *((PHASES_FILE,) if phased else ())):
        file = path / name
        if not file.is_file():
            raise InputError(f"{file}: missing from the store; re-ingest the logs")
        if verify and files.get(name) != sha256_file(file):
            raise InputError(
                f"{file}: does not match the store manifest (changed or corrupt); "
                "re-ingest the logs"
            )
    try:
        runs = pl.read_parquet(path / RUNS_FILE)
        trajectories = pl.read_parquet(path / TRAJECTORIES_FILE)
        phases = pl.read_parquet(path / PHASES_FILE) if phased else None
    except Exception as exc:  # polars raises several unrelated types for corrupt files
        raise InputError(
            f"{path}: unreadable Parquet in store ({exc.__class__.__name__})") from None
    domains = tuple(domains)
    expected = {RUN, SOURCE, DIVERGED, *domains}
    if (set(runs.columns) != expected or tuple(trajectories.columns) != TRAJECTORY_COLUMNS
            or runs.height != manifest["n_runs"] or trajectories.height != manifest["n_rows"]):
        raise InputError(f"{path}: store tables do not match the manifest; re-ingest the logs")
    if phases is not None and set(phases.columns) != {RUN, STEP_START, *domains}:
        raise InputError(f"{path}: {PHASES_FILE} does not match the manifest; re-ingest the logs")
    return Store(domains, runs, trajectories, manifest, phases)


def _check_manifest(manifest: dict[str, Any], file: Path) -> None:
    """The fields readers rely on have the right types (a hand-edited manifest may not)."""

    def names(value: Any, allow_empty: bool = False) -> bool:
        return (isinstance(value, list) and (allow_empty or bool(value))
                and all(isinstance(v, str) and v for v in value) and len(set(value)) == len(value))

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    inputs = manifest.get("inputs")
    ok = (
        isinstance(manifest.get("files"), dict)
        and names(manifest.get("domains"))
        and names(manifest.get("metrics"), allow_empty=True)
        and all(count(manifest.get(key)) for key in ("n_runs", "n_rows", "n_diverged"))
        and isinstance(inputs, list)
        and all(isinstance(i, dict) and isinstance(i.get("path"), str)
                and isinstance(i.get("sha256"), str) for i in inputs)
    )
    if not ok:
        raise InputError(f"{file}: store manifest is missing fields or has wrong types (edited "
                         "or corrupt); re-ingest the logs")


def metric_summary(store: Store) -> pl.DataFrame:
    """Per metric: runs, observations per run (min/max), step range and finite value range."""
    import polars as pl

    per_run = store.trajectories.group_by([METRIC, RUN]).agg(
        pl.len().alias("n"), pl.col(STEP).min().alias("first"), pl.col(STEP).max().alias("last"),
    )
    return per_run.group_by(METRIC).agg(
        pl.len().alias("runs"), pl.col("n").min().alias("n_min"), pl.col("n").max().alias("n_max"),
        pl.col("first").min(), pl.col("last").max(),
    ).join(
        store.trajectories.group_by(METRIC).agg(
            pl.col(VALUE).filter(pl.col(VALUE).is_finite()).min().alias("lo"),
            pl.col(VALUE).filter(pl.col(VALUE).is_finite()).max().alias("hi"),
        ),
        on=METRIC,
    ).sort(METRIC)
