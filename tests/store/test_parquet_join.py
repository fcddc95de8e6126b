"""Row groups encoded one by one (in parallel) and joined are the bytes one writer gives."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regmixd_cli.store import files as store_io
from regmixd_cli.store import parquet_join as pj


def long_rows(n_runs: int = 9, steps: int = 40, seed: int = 0) -> pl.DataFrame:
    """Trajectory rows in (run, metric, step) order; some tokens missing, a run without `c`."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_runs):
        for metric in ("a", "b", "c") if r != 4 else ("a", "b"):
            for s in range(steps):
                rows.append((f"run{r:02d}", 10 * s, None if s % 7 == 3 else 1000 * s, metric,
                             float(rng.normal())))
    return pl.DataFrame(rows, schema=["run", "step", "tokens", "metric", "value"], orient="row")


def one_writer(groups: list[pa.Table], schema: pa.Schema) -> bytes:
    """The file pyarrow writes for `groups` through a single ParquetWriter (the old way)."""
    sink = io.BytesIO()
    with pq.ParquetWriter(
        sink, schema, compression="zstd", store_schema=False, use_dictionary=["run", "metric"],
        column_encoding={"step": "DELTA_BINARY_PACKED", "tokens": "DELTA_BINARY_PACKED",
                         "value": "BYTE_STREAM_SPLIT"},
        write_statistics=["step", "tokens", "value"],
    ) as single:
        for group in groups:
            single.write_table(group, row_group_size=group.num_rows)
    return sink.getvalue()


def test_footer_decodes_and_encodes_back_to_the_same_bytes(tmp_path):
    path = tmp_path / "t.parquet"
    long_rows().write_parquet(path, row_group_size=100, statistics=True)
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    assert pj.encode_footer(pj.decode_footer(data)) == data[-8 - length:]


def test_joined_row_groups_are_the_bytes_of_one_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(store_io, "ROW_GROUP_ROWS", 200)
    frame = long_rows()
    writer = store_io.TrajectoryWriter(tmp_path / "joined.parquet")
    writer.write(frame)
    writer.close()
    groups = store_io.RowGroups(writer.schema)
    cut = groups.add(frame) + groups.finish()
    assert len(cut) > 3
    joined = (tmp_path / "joined.parquet").read_bytes()
    assert joined == one_writer(cut, writer.schema)
    assert pl.read_parquet(tmp_path / "joined.parquet").equals(frame)
    meta = pq.ParquetFile(tmp_path / "joined.parquet").metadata
    assert meta.num_rows == frame.height
    assert sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == frame.height


def test_an_empty_table_is_a_file_with_the_schema_and_no_row_group(tmp_path):
    writer = store_io.TrajectoryWriter(tmp_path / "empty.parquet")
    writer.close()
    data = (tmp_path / "empty.parquet").read_bytes()
    assert data == one_writer([], writer.schema)
    assert pq.ParquetFile(tmp_path / "empty.parquet").metadata.num_row_groups == 0


@pytest.mark.parametrize("cores", [1, 2, 5])
def test_store_bytes_do_not_depend_on_the_number_of_encoders(tmp_path, monkeypatch, cores):
    monkeypatch.setattr(store_io, "ROW_GROUP_ROWS", 150)
    monkeypatch.setattr(store_io, "available_cores", lambda: cores)
    frame = long_rows(n_runs=20)
    chunks = [frame[i:i + 333] for i in range(0, frame.height, 333)]
    written = {}
    for name, encoders in (("serial", None), ("pool", cores)):
        directory = tmp_path / name
        directory.mkdir()
        draft = store_io.StoreDraft(directory)
        if encoders is None:
            writer = store_io.TrajectoryWriter(directory / store_io.TRAJECTORIES_FILE)
            for chunk in chunks:
                writer.write(chunk)
            writer.close()
        else:
            draft.write_trajectories(iter(chunks))
        written[name] = (directory / store_io.TRAJECTORIES_FILE).read_bytes()
    assert written["serial"] == written["pool"]
    assert store_io.encoders() == max(1, cores - 1)


def test_compact_codec_round_trips_long_ids_long_lists_negatives_and_bools():
    meta = [
        pj.Field(1, 5, -7),  # i32, negative (zigzag)
        pj.Field(3, 6, -(2**62)),  # i64
        pj.Field(4, 9, pj.List(12, [[pj.Field(1, 8, b"x" * 3)] for _ in range(20)])),  # 20 items
        pj.Field(30, 1, True),  # id jump > 15: long form; bool held in the type code
        pj.Field(31, 2, False),
        pj.Field(32, 9, pj.List(5, [1, -2, 3])),
        pj.Field(33, 7, b"\x00" * 8),  # double, raw
    ]
    data = b"PAR1" + pj.encode_footer(meta)
    assert pj.decode_footer(data) == meta


@pytest.mark.parametrize("data", [b"", b"PAR1", b"nope" * 5, b"PAR1" + b"\xff\x00\x00\x00PAR1"])
def test_a_damaged_file_is_a_value_error(data):
    with pytest.raises(ValueError):
        pj.decode_footer(data)


def test_joining_nothing_is_an_error():
    with pytest.raises(ValueError, match="no row groups"):
        pj.JoinedParquet(io.BytesIO()).close()


def fake_file(body: bytes, rows: int) -> bytes:
    """A one-row-group 'Parquet file': magic, body, a footer whose offsets point into it."""
    column_meta = [pj.Field(9, 6, 4), pj.Field(11, 6, 6), pj.Field(12, 12, [pj.Field(1, 8, b"")])]
    chunk = [pj.Field(2, 6, 4), pj.Field(3, 12, column_meta), pj.Field(4, 6, 0)]
    group = [pj.Field(1, 9, pj.List(12, [chunk])), pj.Field(3, 6, rows), pj.Field(5, 6, 4),
             pj.Field(7, 4, 0)]
    meta = [pj.Field(1, 5, 2), pj.Field(3, 6, rows), pj.Field(4, 9, pj.List(12, [group])),
            pj.Field(6, 8, b"test")]
    return b"PAR1" + body + pj.encode_footer(meta)


def test_join_moves_offsets_numbers_row_groups_and_sums_rows():
    out = io.BytesIO()
    joined = pj.JoinedParquet(out)
    for body, rows in ((b"A" * 10, 3), (b"B" * 7, 5), (b"C" * 2, 1)):
        joined.add(fake_file(body, rows))
    joined.close()
    data = out.getvalue()
    meta = pj.decode_footer(data)
    assert data.startswith(b"PAR1" + b"A" * 10 + b"B" * 7 + b"CC")
    fields = {f.fid: f.value for f in meta}
    assert fields[3] == 9 and fields[6] == b"test"
    starts = []
    for i, group in enumerate(fields[4].items):
        g = {f.fid: f.value for f in group}
        assert g[7] == i  # ordinal
        chunk = {f.fid: f.value for f in g[1].items[0]}
        column = {f.fid: f.value for f in chunk[3]}
        assert g[5] == chunk[2] == column[9] and column[11] == column[9] + 2
        assert chunk[4] == 0  # absent (zero) offsets stay zero
        starts.append(g[5])
    assert starts == [4, 14, 21]
    assert [data[s:s + 1] for s in starts] == [b"A", b"B", b"C"]


def test_an_encoder_error_reaches_the_caller_and_closes_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(store_io, "ROW_GROUP_ROWS", 100)
    monkeypatch.setattr(store_io, "available_cores", lambda: 3)
    calls = []
    encode = store_io.TrajectoryWriter.encode

    def failing(self, group):
        calls.append(group.num_rows)
        if len(calls) == 3:
            raise RuntimeError("encoder broke")
        return encode(self, group)

    monkeypatch.setattr(store_io.TrajectoryWriter, "encode", failing)
    frame = long_rows(n_runs=20)
    with pytest.raises(RuntimeError, match="encoder broke"):
        store_io.StoreDraft(tmp_path).write_trajectories([frame[:1000], frame[1000:]])
    assert len(calls) < frame.height // 100  # stopped early, not after every group


def test_bools_in_a_map_or_a_list_are_one_byte_each():
    """Compact protocol: a bool element of a collection is a byte (1 true, 2 false), not a
    type code; a map<bool, i32> {true: 3, false: 4} followed by a field decodes back."""
    raw_map = bytes([2, 0x15, 1, 6, 2, 8])
    meta = [pj.Field(1, 11, raw_map), pj.Field(2, 9, pj.List(1, [1, 2, 1])), pj.Field(3, 5, 7)]
    assert pj.decode_footer(b"PAR1" + pj.encode_footer(meta)) == meta


def one_group(**options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(50)), "s": [f"v{i % 7}" for i in range(50)]}),
                   sink, **options)
    return sink.getvalue()


def test_a_file_with_a_page_index_is_refused():
    """The offset index lists absolute page offsets inside the body, which the join copies
    unread: joined, they would point into the wrong row group (readers that use the page
    index would read garbage), so such files are refused rather than joined."""
    joined = pj.JoinedParquet(io.BytesIO())
    joined.add(one_group())  # no page index: fine
    with pytest.raises(ValueError, match="page index"):
        joined.add(one_group(write_page_index=True))


@pytest.mark.parametrize("where", ["file", "column"])
def test_encrypted_metadata_is_refused(where):
    data = fake_file(b"A" * 4, 1)
    meta = pj.decode_footer(data)
    if where == "file":
        meta.insert(6, pj.Field(8, 12, [pj.Field(1, 12, [])]))  # encryption_algorithm
    else:
        group = next(f for f in meta if f.fid == 4).value.items[0]
        chunk = group[0].value.items[0]
        chunk.append(pj.Field(9, 8, b"sealed"))  # encrypted_column_metadata
    with pytest.raises(ValueError, match="encrypted"):
        pj.JoinedParquet(io.BytesIO()).add(b"PAR1" + b"A" * 4 + pj.encode_footer(meta))


# Footer fields (parquet.thrift) whose handling by the join is known: offsets it moves,
# fields it refuses, and fields that hold no position.
KNOWN_FIELDS = {"FileMetaData": set(range(1, 10)), "RowGroup": set(range(1, 8)),
                "ColumnChunk": set(range(1, 10)), "ColumnMetaData": set(range(1, 18))}


def test_the_store_writer_writes_only_footer_fields_the_join_knows(tmp_path):
    """A pyarrow that writes a new footer field (perhaps another absolute offset) fails
    here, not silently in users' stores: check the field, then add it to KNOWN_FIELDS."""
    writer = store_io.TrajectoryWriter(tmp_path / "t.parquet")
    groups = store_io.RowGroups(writer.schema)
    data = writer.encode((groups.add(long_rows(n_runs=2)) + groups.finish())[0])
    writer.discard()
    meta = pj.decode_footer(data)
    seen = {"FileMetaData": {f.fid for f in meta}, "RowGroup": set(), "ColumnChunk": set(),
            "ColumnMetaData": set()}
    for group_ in next(f for f in meta if f.fid == 4).value.items:
        seen["RowGroup"] |= {f.fid for f in group_}
        for chunk in next(f for f in group_ if f.fid == 1).value.items:
            seen["ColumnChunk"] |= {f.fid for f in chunk}
            seen["ColumnMetaData"] |= {f.fid for f in next(f for f in chunk if f.fid == 3).value}
    assert seen["RowGroup"] and seen["ColumnMetaData"]
    for struct_name, fids in seen.items():
        assert fids <= KNOWN_FIELDS[struct_name], struct_name


def test_an_error_of_the_chunks_source_keeps_its_own_file_name(tmp_path):
    """Only the writes of trajectories.parquet are named after it (an OSError on an open
    handle names no file); an error reading the chunks, e.g. a spilled part, is not."""
    import errno

    frame = long_rows()

    def chunks():
        yield frame[:100]
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError) as raised:
        store_io.StoreDraft(tmp_path, tmp_path / "store").write_trajectories(chunks())
    assert raised.value.filename is None


def test_files_of_different_schemas_are_refused():
    """The joined footer keeps the first file's schema: a row group of another would be
    read with the wrong one."""
    joined = pj.JoinedParquet(io.BytesIO())
    joined.add(one_group())
    other = io.BytesIO()
    pq.write_table(pa.table({"x": [1.5], "s": ["a"]}), other)  # x: double, not int64
    with pytest.raises(ValueError, match="different schemas"):
        joined.add(other.getvalue())


def test_an_error_in_close_closes_the_file(tmp_path, monkeypatch):
    writer = store_io.TrajectoryWriter(tmp_path / "t.parquet")
    writer.write(long_rows(n_runs=2))  # one run goes on: close() encodes it

    def broken(_group):
        raise RuntimeError("encoder broke")

    monkeypatch.setattr(writer, "encode", broken)
    with pytest.raises(RuntimeError, match="encoder broke"):
        writer.close()
    assert writer._handle.closed
