"""One Parquet file from row groups encoded separately (so they can be encoded in parallel).

pyarrow encodes one row group at a time, in one thread. `trajectories.parquet` is instead
written as: each row group encoded by its own `pq.ParquetWriter` into memory (in a pool of
threads; pyarrow releases the GIL), then the files' bodies are appended in order to one file
and their footers joined into one. A footer is a Thrift (compact protocol) `FileMetaData`;
joining it means concatenating the row groups with their file offsets moved to where the
bodies now start, and summing the rows. Everything else in the footer is copied unread.

The codec below is generic (it knows the compact protocol, not Parquet's structs), and only
the offset fields named below are changed, so a footer field this code does not know
survives as it was. Positions it cannot move (an offset index's page offsets, inside the
body; encrypted metadata) make it refuse the file (`ValueError`), as does a schema other than
the first file's. See https://github.com/apache/parquet-format (parquet.thrift) for the
field numbers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO, Any

MAGIC = b"PAR1"

# Compact-protocol type codes.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# FileMetaData fields; encryption_algorithm and footer_signing_key_metadata.
_SCHEMA, _NUM_ROWS, _ROW_GROUPS = 2, 3, 4
_FM_ENCRYPTION = (8, 9)
# RowGroup fields.
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
# ColumnChunk fields: file_offset, meta_data, offset/column index offsets.
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
# ColumnChunk fields that cannot be moved: crypto_metadata and encrypted_column_metadata (the
# offsets inside are encrypted).
_CC_ENCRYPTION = (8, 9)
# ColumnMetaData fields: data, index and dictionary page offsets, bloom filter offset.
_CM_OFFSETS = (9, 10, 11, 14)


@dataclass(slots=True)
class Field:
    """One field of a struct: its id, compact type code and value (a `Struct` for structs,
    a `List` for lists and sets, bytes for binaries and maps kept raw, else a number)."""

    fid: int
    ftype: int
    value: Any


@dataclass(slots=True)
class List:
    etype: int
    items: list[Any]


Struct = list[Field]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("Parquet footer ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise ValueError("Parquet footer ends early")
        self.pos += n
        return chunk

    def value(self, ftype: int) -> Any:
        if ftype in (_TRUE, _FALSE):
            return ftype == _TRUE
        if ftype == _BYTE:
            return self.byte()
        if ftype in (_I16, _I32, _I64):
            return self.zigzag()
        if ftype == _DOUBLE:
            return self.take(8)
        if ftype == _BINARY:
            return self.take(self.varint())
        if ftype in (_LIST, _SET):
            head = self.byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return List(etype, [self.element(etype) for _ in range(size)])
        if ftype == _MAP:
            start = self.pos
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.element(types >> 4)
                    self.element(types & 0x0F)
            return self.data[start:self.pos]
        if ftype == _STRUCT:
            return self.struct()
        raise ValueError(f"Parquet footer: unknown Thrift type {ftype}")

    def element(self, etype: int) -> Any:
        """One element of a list, set or map: a bool is a byte there (1 true, 2 false), not a
        type code; kept raw."""
        return self.byte() if etype in (_TRUE, _FALSE) else self.value(etype)

    def struct(self) -> Struct:
        fields: Struct = []
        last = 0
        while (head := self.byte()) != 0:
            delta, ftype = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            fields.append(Field(fid, ftype, self.value(ftype)))
            last = fid
        return fields


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _write_value(out: bytearray, ftype: int, value: Any) -> None:
    if ftype in (_TRUE, _FALSE):
        return  # a struct field's bool is its type code
    if ftype == _BYTE:
        out.append(value)
    elif ftype in (_I16, _I32, _I64):
        out += _zigzag(value)
    elif ftype == _DOUBLE:
        out += value
    elif ftype == _BINARY:
        out += _varint(len(value)) + value
    elif ftype in (_LIST, _SET):
        size = len(value.items)
        out.append((min(size, 15) << 4) | value.etype)
        if size >= 15:
            out += _varint(size)
        for item in value.items:
            if value.etype in (_TRUE, _FALSE):
                out.append(item)
            else:
                _write_value(out, value.etype, item)
    elif ftype == _MAP:
        out += value
    elif ftype == _STRUCT:
        _write_struct(out, value)
    else:
        raise ValueError(f"Parquet footer: unknown Thrift type {ftype}")


def _write_struct(out: bytearray, fields: Struct) -> None:
    last = 0
    for f in fields:
        ftype = (_TRUE if f.value else _FALSE) if f.ftype in (_TRUE, _FALSE) else f.ftype
        delta = f.fid - last
        if 0 < delta <= 15:
            out.append((delta << 4) | ftype)
        else:
            out.append(ftype)
            out += _zigzag(f.fid)
        _write_value(out, f.ftype, f.value)
        last = f.fid
    out.append(0)


def _footer_start(data: bytes | memoryview) -> int:
    """Where the `FileMetaData` of a whole Parquet file held in `data` begins."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise ValueError("not a Parquet file")
    length = int.from_bytes(data[-8:-4], "little")
    if length > len(data) - 12:
        raise ValueError("Parquet footer longer than the file")
    return len(data) - 8 - length


def decode_footer(data: bytes | memoryview) -> Struct:
    """The `FileMetaData` of a whole Parquet file held in `data`."""
    return _Reader(bytes(data[_footer_start(data):len(data) - 8])).struct()


def encode_footer(meta: Struct) -> bytes:
    """`meta` as the end of a Parquet file: FileMetaData, its length, magic."""
    out = bytearray()
    _write_struct(out, meta)
    return bytes(out) + struct.pack("<I", len(out)) + MAGIC


def _get(fields: Struct, fid: int) -> Field | None:
    return next((f for f in fields if f.fid == fid), None)


def _items(fields: Struct, fid: int) -> list[Any]:
    """The items of list field `fid` (none if the field is absent)."""
    found = _get(fields, fid)
    return found.value.items if found is not None else []


def _shift(fields: Struct, fids: tuple[int, ...], by: int) -> None:
    for f in fields:
        if f.fid in fids and f.ftype == _I64 and f.value > 0:
            f.value += by


def _check_movable(meta: Struct) -> None:
    """Refuse a file whose bodies hold positions this join cannot move: an offset index (its
    page locations are absolute offsets inside the body, which is copied unread) or
    encrypted metadata. Joined anyway, such a file would read back with pyarrow yet send
    readers that use the page index to wrong offsets."""
    if any(f.fid in _FM_ENCRYPTION for f in meta):
        raise ValueError("cannot join encrypted Parquet files")
    for group in _items(meta, _ROW_GROUPS):
        for chunk in _items(group, _RG_COLUMNS):
            for f in chunk:
                if f.fid == _CC_OFFSET_INDEX and f.ftype == _I64 and f.value > 0:
                    raise ValueError("cannot join Parquet files with a page index "
                                     "(write_page_index): its page offsets would be wrong")
                if f.fid in _CC_ENCRYPTION:
                    raise ValueError("cannot join encrypted Parquet files")


class JoinedParquet:
    """Appends single-file row groups, in order, to one Parquet file.

    `add(data)` takes a whole Parquet file (from a writer with the same schema and options)
    and appends its row groups; `close()` writes the joined footer. Offsets are moved by
    where each body lands; a zero offset means "absent" and stays zero. Files with a page
    index or encryption are refused (`ValueError`): positions inside them cannot be moved.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.handle.write(MAGIC)
        self.pos = len(MAGIC)
        self.meta: Struct | None = None
        self.groups: list[Struct] = []
        self.rows = 0

    @property
    def started(self) -> bool:
        """Whether a file was added (its footer is the joined file's model)."""
        return self.meta is not None

    def add(self, data: bytes | memoryview) -> None:
        """Append the row groups of `data`, a whole Parquet file."""
        data = memoryview(data)
        footer = _footer_start(data)
        meta = _Reader(bytes(data[footer:len(data) - 8])).struct()
        _check_movable(meta)
        if self.meta is not None and _get(meta, _SCHEMA) != _get(self.meta, _SCHEMA):
            raise ValueError("cannot join Parquet files of different schemas")
        body = data[len(MAGIC):footer]
        by = self.pos - len(MAGIC)
        for group in _items(meta, _ROW_GROUPS):
            _shift(group, (_RG_FILE_OFFSET,), by)
            ordinal = _get(group, _RG_ORDINAL)
            if ordinal is not None:
                ordinal.value = len(self.groups)
            for chunk in _items(group, _RG_COLUMNS):  # an offset index was refused above
                _shift(chunk, (_CC_FILE_OFFSET, _CC_COLUMN_INDEX), by)
                column_meta = _get(chunk, _CC_META)
                if column_meta is not None:
                    _shift(column_meta.value, _CM_OFFSETS, by)
            self.groups.append(group)
        rows = _get(meta, _NUM_ROWS)
        self.rows += rows.value if rows is not None else 0
        if self.meta is None:
            self.meta = meta
        self.handle.write(body)
        self.pos += len(body)

    def close(self) -> None:
        """Write the joined footer (the first file's, with every row group and row)."""
        if self.meta is None:
            raise ValueError("no row groups to join")
        for f in self.meta:
            if f.fid == _NUM_ROWS:
                f.value = self.rows
            elif f.fid == _ROW_GROUPS:
                f.value = List(_STRUCT, self.groups)
        self.handle.write(encode_footer(self.meta))
