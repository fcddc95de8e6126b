"""Work one item ahead: a generator's next item is computed in a thread while the caller uses
the current one.

Ingest's write pass is a chain of stages, each a generator (build long rows -> cut row groups
-> encode). Most of each stage runs in numpy, polars or pyarrow, which release the GIL, so two
stages in two threads keep both cores busy where one thread would leave one idle. The items
and their order are exactly the generator's: only the timing changes, so the output stays
byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def ahead(items: Iterator[T], name: str) -> Iterator[T]:
    """Yield `items`, computing each next one in a thread (`name`) while this one is used.

    Calls to `next(items)` never overlap, so a generator needs no locking. An exception
    raised by `items` is raised here, at the item it replaced. If the caller stops early, the
    one item in flight is finished and dropped.
    """

    def step() -> object:
        return next(items, _END)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(step)
        while (item := pending.result()) is not _END:
            pending = pool.submit(step)
            yield item  # type: ignore[misc]
