"""`--cluster`: the same fits on a real Dask cluster (scheduler + two worker processes, all on
127.0.0.1 and stopped by the test) write the same bytes as the local run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import SAMPLE_FIT, Invoker, fails
from tests.helpers.dask_cluster import local_cluster
from tests.helpers.paths import PROXY_LOGS

distributed = pytest.importorskip(
    "dask.distributed", reason="dask[distributed] not installed (pip install 'regmixd[dask]')"
)

pytestmark = [
    pytest.mark.slow,
    # Dask's own start-up and shutdown chatter (deprecations, slow-close notices) is not ours.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster() as address:
        yield address


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "store"
    result = Invoker()("ingest", PROXY_LOGS, "--out", path)
    assert result.exit_code == 0, result.output
    return path


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_cluster_fit_writes_the_same_bytes_as_local(cli, store, cluster, tmp_path):
    assert cluster.startswith("tcp://127.0.0.1:")
    fit = ("--switch-points", "2", *SAMPLE_FIT, "--ensemble", "2")
    local, remote = tmp_path / "local", tmp_path / "remote"
    result = cli("fit", store, "--out", local, *fit, "--jobs", "1")
    assert result.exit_code == 0, result.output
    result = cli("fit", store, "--out", remote, *fit, "--cluster", cluster)
    assert result.exit_code == 0, result.output
    assert _files(local) == _files(remote)


def test_unreachable_scheduler_is_a_usage_error(cli, store, tmp_path):
    with socket.socket() as probe:  # a free local port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("fit", store, "--out", tmp_path / "m", "--cluster", f"tcp://127.0.0.1:{port}")
    fails(result, 2, "--cluster", f"127.0.0.1:{port}")
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def model(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster-model") / "model"
    result = Invoker()("fit", store, "--out", path, "--switch-points", "2", *SAMPLE_FIT)
    assert result.exit_code == 0, result.output
    return path


def test_searches_on_the_cluster_give_the_same_outputs(cli, model, cluster, tmp_path):
    """schedule, compare, online and design --refine score their candidate batches on the
    cluster; every output is byte-identical to the local run's."""
    search = ("--candidates", "3000")
    runs = {
        "schedule": ("schedule", model, "--out", "-", *search, "--seed", "4"),
        "static": ("schedule", model, "--static", "--out", "-", *search),
        "compare": ("compare", model, "static", "offline", *search, "--json"),
        "online": ("online", model, "--step", "400", "--loss", "6.1", "--target-steps", "1000",
                   *search, "--json"),
        "refine": ("design", "--refine", model, "--runs", "8", "--proxy-steps", "1000",
                   "--prefix", "v", "--out", "-"),
    }
    for name, args in runs.items():
        local = cli(*args, "--jobs", "1")
        assert local.exit_code == 0, (name, local.output)
        remote = cli(*args, "--cluster", cluster)
        assert remote.exit_code == 0, (name, remote.output)
        assert local.stdout == remote.stdout and local.stdout.strip(), name
