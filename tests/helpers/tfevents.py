"""TensorBoard event files written byte by byte (TFRecord framing + Event protobufs), so the
reader is tested on the real format without TensorFlow or tensorboard installed."""

from __future__ import annotations

import struct
from pathlib import Path

from regmixd_cli.store.readers.tensorboard import masked_crc


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + varint(payload)
    assert isinstance(payload, bytes)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload  # fixed 32/64


def simple_value(tag: str, value: float) -> bytes:
    """A Summary.Value with simple_value (PyTorch SummaryWriter, Megatron, HF Trainer)."""
    return field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", value))


def tensor_value(tag: str, value: float, *, double: bool = False, packed: bool = True) -> bytes:
    """A Summary.Value with a scalar TensorProto (TensorFlow 2's tf.summary.scalar)."""
    if double:
        tensor = field(1, 0, 2) + field(2, 2, b"") + field(6, 2, struct.pack("<d", value))
    elif packed:
        tensor = field(1, 0, 1) + field(2, 2, b"") + field(5, 2, struct.pack("<f", value))
    else:
        tensor = field(1, 0, 1) + field(4, 2, struct.pack("<f", value))
    metadata = field(1, 2, field(1, 2, b"scalars"))
    return field(1, 2, tag.encode()) + field(9, 2, metadata) + field(8, 2, tensor)


def event(step: int, values: list[bytes], wall_time: float = 1.7e9) -> bytes:
    summary = b"".join(field(1, 2, v) for v in values)
    out = field(1, 1, struct.pack("<d", wall_time))
    if step:
        out += field(2, 0, step)
    return out + field(5, 2, summary)


def file_version_event() -> bytes:
    return field(1, 1, struct.pack("<d", 1.7e9)) + field(3, 2, b"brain.Event:2")


def record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", masked_crc(header)) + data
            + struct.pack("<I", masked_crc(data)))


def write_events(path: Path, events: list[bytes]) -> Path:
    """An event file holding a file_version event then `events`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(record(e) for e in [file_version_event(), *events]))
    return path


def scalar_run(path: Path, losses: dict[int, float], tag: str = "lm loss validation",
               extra: dict[str, float] | None = None) -> Path:
    """An event file with one scalar `tag` per step (plus `extra` tags at every step)."""
    events = []
    for step, value in losses.items():
        values = [simple_value(tag, value)]
        values += [simple_value(k, v) for k, v in (extra or {}).items()]
        events.append(event(step, values))
    return write_events(path, events)
