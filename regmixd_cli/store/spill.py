"""Tables set aside while a large input is read: kept in memory, or as Arrow IPC files on disk.

The native JSONL reader parses a big log batch by batch and hands each batch's rows here, so
that ingest can later gather the rows of one run range at a time without holding the whole
file. The first `keep_bytes` of parts stay in memory (writing and mapping them back costs
kernel time on the critical path); the rest go to disk, so memory stays bounded whatever the
file size. On disk, a part is read back through a memory map and sliced, so only the pages of
the rows asked for are touched; the map is released with the last frame that uses it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True, slots=True)
class SpilledPart:
    """A table written to an Arrow IPC file by `Spill.put`."""

    path: Path
    height: int


# Parts (polars' estimate of their size) kept in memory before any goes to disk: a 1 GB log's
# wide parts (~0.3 GB) stay in memory, so ingest's peak stays well under the file's size.
KEEP_BYTES = 512 << 20


class Spill:
    """Where parts go: memory (`directory=None`, or while the first `keep_bytes` last), then
    uncompressed Arrow IPC files in `directory`."""

    def __init__(self, directory: Path | None = None, keep_bytes: int = KEEP_BYTES) -> None:
        self.directory = None if directory is None else Path(directory)
        self.keep_bytes = keep_bytes
        self._kept = 0
        self._names = itertools.count()

    def put(self, frame: pl.DataFrame) -> pl.DataFrame | SpilledPart:
        """Keep `frame` (in memory, or on disk); the returned handle goes to `take`."""
        if self.directory is None:
            return frame
        size = int(frame.estimated_size())
        if self._kept + size <= self.keep_bytes:
            self._kept += size
            return frame
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"part-{next(self._names):06d}.arrow"
        frame.write_ipc(path, compression="uncompressed")
        return SpilledPart(path, frame.height)

    def drop(self, part: pl.DataFrame | SpilledPart) -> None:
        """Give back a part from `put` that will not be read: its memory counts no more, its
        file is removed."""
        if isinstance(part, SpilledPart):
            part.path.unlink(missing_ok=True)
        elif self.directory is not None:
            self._kept -= int(part.estimated_size())

    @staticmethod
    def take(part: pl.DataFrame | SpilledPart, ranges: Sequence[tuple[int, int]]) -> pl.DataFrame:
        """Rows [start, stop) of a kept part, for each range in order, as one frame."""
        import polars as pl

        if isinstance(part, pl.DataFrame):
            pieces = [part.slice(start, stop - start) for start, stop in ranges]
        else:
            import pyarrow as pa
            import pyarrow.ipc as ipc

            table = ipc.open_file(pa.memory_map(str(part.path))).read_all()
            pieces = [pl.from_arrow(table.slice(start, stop - start))  # type: ignore[misc]
                      for start, stop in ranges]
        return pieces[0] if len(pieces) == 1 else pl.concat(pieces)
