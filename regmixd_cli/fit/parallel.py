"""Where independent work runs: a serial loop, local processes, or a Dask cluster.

One tiny interface, `Executor.map(fn, items) -> list` (results in the order of `items`), and
one constructor, `executor(jobs, cluster)`:
- jobs == 1 (and no cluster): a plain loop in this process;
- jobs > 1: a `ProcessPoolExecutor` of `jobs` worker processes (forkserver start method: the
  workers are forked from a clean server process that preloaded numpy and xgboost, so they
  start in milliseconds and never inherit the parent's OpenMP threads, which make a plain
  fork unsafe);
- cluster = "tcp://HOST:PORT": a `dask.distributed` client of a running `dask scheduler`.

Every task must be a module-level function of picklable arguments, and must not depend on
which process runs it: the fit tasks train single-threaded XGBoost boosters, whose bytes are
then identical in any process on any machine (same xgboost version). That is what makes
`--jobs` and `--cluster` change the speed and never the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from regmixd_cli.cores import available_cores
from regmixd_cli.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

# Seconds to wait for a Dask scheduler before giving up with a usage error.
CONNECT_TIMEOUT = 5.0
_PRELOAD = ["numpy", "xgboost", "regmixd_cli.fit.boosters"]


def resolve_jobs(jobs: int | None) -> int:
    """`--jobs`: None or 0 means every available core; negative is an error."""
    if jobs is None or jobs == 0:
        return available_cores()
    if jobs < 0:
        raise UsageError(f"--jobs {jobs}: give a positive number of processes (0 = all cores)")
    return int(jobs)


class Executor(Protocol):
    """Runs `fn` over `items`; results come back in the order of `items`."""

    workers: int

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def close(self) -> None: ...


class Serial:
    """The reference: a loop in this process."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def close(self) -> None:
        return None


class Processes:
    """A pool of `jobs` local worker processes, started on first use and reused until close."""

    def __init__(self, jobs: int) -> None:
        self.workers = jobs
        self._pool: Any = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _exit_with_parent(owner: int) -> None:
    """In a worker: exit as soon as `owner`, the process that made the pool, is gone.

    A killed regmixd (SIGKILL, OOM) cannot shut its pool down, and its workers (children of
    the forkserver, which outlives it too) would otherwise wait on the task queue forever,
    holding the terminal's pipes open.
    """
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.2)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid was reused by another user's process
                os._exit(1)

    threading.Thread(target=watch, name="regmixd-exit-with-owner", daemon=True).start()


class Cluster:
    """A Dask client: tasks go to the workers of a running `dask scheduler`."""

    def __init__(self, address: str) -> None:
        try:
            import dask.distributed
        except ImportError:
            raise UsageError(
                "--cluster needs Dask: pip install 'regmixd[dask]' (dask[distributed])"
            ) from None
        try:
            # Dask's API is untyped: the client is used as Any.
            client: Any = dask.distributed.Client
            self._client: Any = client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(
                f"--cluster {address}: cannot reach a Dask scheduler there within "
                f"{CONNECT_TIMEOUT:g} s ({exc.__class__.__name__}); start one with "
                "`dask scheduler` and give its tcp://HOST:PORT"
            ) from None
        self.workers = max(1, sum(self._client.nthreads().values()))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        futures = self._client.map(fn, list(items), pure=False)
        return list(self._client.gather(futures))

    def close(self) -> None:
        self._client.close()


def executor(jobs: int | None = None, cluster: str | None = None) -> Executor:
    """The executor for `--jobs` and `--cluster` (the cluster wins when both are given)."""
    if cluster:
        return Cluster(cluster)
    n = resolve_jobs(jobs)
    return Serial() if n == 1 else Processes(n)


def chunks(items: Iterable[T], size: int) -> list[list[T]]:
    """`items` in consecutive lists of at most `size`."""
    out: list[list[T]] = []
    for item in items:
        if not out or len(out[-1]) >= size:
            out.append([])
        out[-1].append(item)
    return out
