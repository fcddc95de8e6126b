"""`--jobs`: the independent fits run in parallel processes and the model bytes do not change."""

from __future__ import annotations

from pathlib import Path

import pytest

from regmixd_cli.fit.parallel import Processes, Serial, chunks, executor, resolve_jobs
from tests.helpers.cli import SAMPLE_FIT, fails
from tests.helpers.paths import PROXY_LOGS


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.cli import Invoker

    path = tmp_path_factory.mktemp("par") / "store"
    result = Invoker()("ingest", PROXY_LOGS, "--out", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.slow
def test_fit_with_two_jobs_writes_the_same_bytes_as_one(cli, store, tmp_path):
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"model{jobs}"
        result = cli(
            "fit", store, "--out", out, "--switch-points", "2", *SAMPLE_FIT,
            "--ensemble", "3", "--jobs", jobs,
        )
        assert result.exit_code == 0, result.output
        outs.append(_files(out))
    assert outs[0] == outs[1]
    assert any(name.startswith("ens") for name in outs[0])


def test_schedule_does_not_depend_on_jobs(cli, tiny_model, tmp_path):
    texts = []
    for jobs in ("1", "2"):
        out = tmp_path / f"s{jobs}.json"
        result = cli("schedule", tiny_model, "--out", out, "--candidates", "3000",
                     "--jobs", jobs)
        assert result.exit_code == 0, result.output
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]


def test_negative_jobs_is_a_usage_error(cli, store, tmp_path):
    fails(cli("fit", store, "--out", tmp_path / "m", "--jobs", "-1"), 2, "--jobs")
    assert not (tmp_path / "m").exists()


def test_executors_keep_the_order_of_items():
    assert resolve_jobs(0) >= 1 and resolve_jobs(3) == 3
    assert isinstance(executor(1), Serial)
    pool = executor(2)
    assert isinstance(pool, Processes)
    try:
        assert pool.map(abs, [-3, 2, -1, 0]) == [3, 2, 1, 0]
    finally:
        pool.close()
    assert chunks(range(5), 2) == [[0, 1], [2, 3], [4]]


def test_cluster_without_dask_is_a_usage_error(cli, store, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask", None)  # as if dask were not installed
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    result = cli("fit", store, "--out", tmp_path / "m", "--cluster", "tcp://127.0.0.1:1")
    fails(result, 2, "regmixd[dask]")
    assert not (tmp_path / "m").exists()


def test_run_checks_jobs_before_any_output(cli, tmp_path):
    fails(cli("run", PROXY_LOGS, "--out", tmp_path / "r", "--jobs", "-2"), 2, "--jobs")
    assert not (tmp_path / "r").exists()
