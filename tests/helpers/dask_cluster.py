"""A real Dask cluster for tests: a scheduler and two single-threaded worker processes, bound to
127.0.0.1 and stopped when the `with` block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def local_cluster() -> Iterator[str]:
    """The scheduler's tcp:// address; skips the test when dask[distributed] is missing."""
    distributed = pytest.importorskip(
        "dask.distributed", reason="dask[distributed] not installed (pip install 'regmixd[dask]')"
    )
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_port=0,
    ) as local:
        yield str(local.scheduler_address)
