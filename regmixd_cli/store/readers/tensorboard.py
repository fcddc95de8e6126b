"""TensorBoard event files (`events.out.tfevents.*`), as Megatron-LM, nanotron, Levanter and the
Hugging Face Trainer write them: every scalar, by tag, at its step.

Parsed by hand, with no dependency: an event file is a TFRecord stream (for each record: an
8-byte little-endian length, its masked CRC-32C, the bytes, their masked CRC-32C) of `Event`
protocol buffers. Of an Event only `step` (field 2) and `summary` (field 5) are read; of each
`Summary.Value`, `tag` (1) and either `simple_value` (2, what PyTorch's SummaryWriter writes)
or a scalar `tensor` (8, what TensorFlow 2 writes: DT_FLOAT/DT_DOUBLE/DT_HALF/DT_INT32/DT_INT64
in `float_val`, `double_val`, `half_val`, `int_val`, `int64_val` or `tensor_content`).
Images, histograms, text and non-scalar tensors are skipped. Both CRCs are checked, so a
corrupt file is an error naming the byte offset; a last record cut short (a trainer still
writing) is left out, as TensorBoard itself does.

Run id: the directory holding the event file, relative to the directory given to ingest (as
for trainer_state.json); several event files in one directory (restarts) are one run. Tags
are metric names as logged (`lm loss validation`, `eval/loss`); RegMix-style names are
shortened as in the other readers. The file says nothing about the mixture: `--mixtures`.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from regmixd_cli.domain import METRIC, RUN, STEP, TOKENS, VALUE
from regmixd_cli.errors import InputError
from regmixd_cli.files import sha256_file
from regmixd_cli.store.observations import empty_observations, observation_schema
from regmixd_cli.store.readers.base import STEP_MAX, TENSORBOARD, Parsed, normalise_metric
from regmixd_cli.store.readers.hf import relative_run_name

FILE_MARKER = "tfevents"

# TensorFlow DataType enum values of the scalar tensors read.
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_HALF = 1, 2, 3, 9, 19


def is_event_file(path: Path | str) -> bool:
    """Whether a file name is a TensorBoard event file's (`events.out.tfevents.<...>`)."""
    return f".{FILE_MARKER}." in Path(path).name or Path(path).name.startswith(
        f"events.out.{FILE_MARKER}")


# ------------------------------------------------------------------------------- CRC-32C


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ------------------------------------------------------------------------ protocol buffers


class _Malformed(ValueError):
    """Bytes that are not the protocol buffer expected."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: ints for varint/fixed, bytes else."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        if pos > len(data):
            raise _Malformed("truncated field")
        out.append((number, wire, value))
    return out


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _tensor_scalar(data: bytes) -> float | None:
    """The value of a scalar TensorProto, or None for anything else."""
    dtype = 0
    dims = 0
    numbers: list[float] = []
    content = b""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 2 and wire == 2:
            dims = sum(1 for n, _w, _v in _fields(value) if n == 2)
        elif number == 4 and wire == 2:
            content = value
        elif number in (5, 6, 7, 10, 13):
            numbers.extend(_packed(number, wire, value))
    if dims:
        return None
    if content:
        formats = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_INT32: "<i", _DT_INT64: "<q",
                   _DT_HALF: "<e"}
        fmt = formats.get(dtype)
        if fmt is None or len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, content)[0])
    return numbers[0] if len(numbers) == 1 else None


def _packed(number: int, wire: int, value: Any) -> list[float]:
    """The numbers of one repeated-field entry (packed or not) of a TensorProto."""
    if number == 5:  # float_val
        return [float(x) for (x,) in struct.iter_unpack("<f", value)]
    if number == 6:  # double_val
        return [float(x) for (x,) in struct.iter_unpack("<d", value)]
    if number == 13:  # half_val: the half's bits in an int32 varint
        bits = _varints(value) if wire == 2 else [value]
        return [float(struct.unpack("<e", struct.pack("<H", b & 0xFFFF))[0]) for b in bits]
    ints = _varints(value) if wire == 2 else [value]  # int_val (7), int64_val (10)
    return [float(_signed64(i)) for i in ints]


def _varints(data: bytes) -> list[int]:
    out = []
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        out.append(value)
    return out


def _scalars(event: bytes) -> tuple[int | None, list[tuple[str, float]]]:
    """An Event's step and its scalar (tag, value) pairs."""
    step: int | None = None
    values: list[tuple[str, float]] = []
    for number, wire, value in _fields(event):
        if number == 2 and wire == 0:
            step = _signed64(value)
        elif number == 5 and wire == 2:
            for n, w, item in _fields(value):
                if n == 1 and w == 2:
                    scalar = _summary_value(item)
                    if scalar is not None:
                        values.append(scalar)
    return step, values


def _summary_value(data: bytes) -> tuple[str, float] | None:
    tag: str | None = None
    scalar: float | None = None
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            tag = value.decode("utf-8", errors="replace")
        elif number == 2 and wire == 5:
            scalar = float(struct.unpack("<f", value)[0])
        elif number == 8 and wire == 2:
            scalar = _tensor_scalar(value)
    if tag is None or scalar is None:
        return None
    return tag, scalar


# ------------------------------------------------------------------------------ the reader


def iter_records(data: bytes, shown: str) -> list[bytes]:
    """The records of a TFRecord stream; a corrupt record is an InputError (a last record
    cut short is left out: the writer may still be at it)."""
    records: list[bytes] = []
    pos = 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked_crc(header) != length_crc:
            raise InputError(f"{shown}: byte {pos}: corrupt TFRecord length (CRC mismatch); "
                             "not a TensorBoard event file, or damaged")
        end = pos + 12 + length + 4
        if end > len(data):
            break  # cut short
        body = data[pos + 12:pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[end - 4:end])
        if masked_crc(body) != body_crc:
            raise InputError(f"{shown}: byte {pos}: corrupt TFRecord (CRC mismatch); the "
                             "event file is damaged")
        records.append(body)
        pos = end
    return records


def read_tensorboard(path: str | Path, root: Path | None = None) -> Parsed:
    """Read one event file into observations of its run (named relative to `root`)."""
    import polars as pl

    shown = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc.__class__.__name__})"
                         ) from None
    from regmixd_cli.store.readers.base import check_not_lfs_pointer

    check_not_lfs_pointer(shown, data[:200])
    run = relative_run_name(Path(path).resolve().parent, root)
    steps: list[int] = []
    metrics: list[str] = []
    values_: list[float] = []
    names: dict[str, str] = {}  # tag -> metric name, each tag checked once
    for i, record in enumerate(iter_records(data, shown)):
        try:
            step, values = _scalars(record)
        except (_Malformed, struct.error, UnicodeDecodeError):
            raise InputError(f"{shown}: record {i}: not a TensorBoard Event; is this an "
                             "event file?") from None
        if not values:
            continue
        if step is None:
            step = 0  # proto3 leaves a zero step out
        if not 0 <= step <= STEP_MAX:
            raise InputError(f"{shown}: record {i}: step {step} is negative")
        for tag, value in values:
            name = names.get(tag)
            if name is None:
                if any(ord(c) < 32 for c in tag):
                    raise InputError(f"{shown}: record {i}: tag {tag!r} holds a control "
                                     "character")
                name = names[tag] = normalise_metric(tag)
            steps.append(step)
            metrics.append(name)
            values_.append(value)
    rows = {RUN: [run] * len(steps), STEP: steps, TOKENS: [None] * len(steps), METRIC: metrics,
            VALUE: values_}
    long = pl.DataFrame(rows, schema=observation_schema()) if steps else empty_observations()
    # A tag logged twice at one step (a restart re-logging it) keeps the last value written.
    long = long.unique([RUN, METRIC, STEP], keep="last", maintain_order=True)
    sha = sha256_file(Path(path))
    return Parsed(shown, TENSORBOARD, {}, long.sort([RUN, METRIC, STEP], maintain_order=True),
                  sha)
