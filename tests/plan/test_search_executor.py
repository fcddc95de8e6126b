"""Search batches on workers (`search_mixture(executor=...)`, `CandidatePool(executor=...)`):
local processes and a real Dask cluster (scheduler + two worker processes on 127.0.0.1,
stopped by the test) give exactly the result of the local search."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pytest

from regmixd_cli.errors import InfeasibleError
from regmixd_cli.fit.files import load_model
from regmixd_cli.fit.parallel import Cluster, Processes, Serial
from regmixd_cli.plan.schedule import resolve_schedule_prior
from regmixd_cli.plan.search import (
    CandidatePool,
    SearchConfig,
    SearchResult,
    batch_size,
    search_mixture,
)
from tests.helpers.dask_cluster import local_cluster


def _same(a: SearchResult, b: SearchResult) -> None:
    assert a.weights.tobytes() == b.weights.tobytes()
    assert (a.predicted_loss, a.best_loss) == (b.predicted_loss, b.best_loss)
    assert (a.n_candidates, a.n_feasible, a.n_used) == (b.n_candidates, b.n_feasible, b.n_used)


def _linear(weights: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    out: np.ndarray = candidates @ weights
    return out


def _only_first_below(limit: float, candidates: np.ndarray) -> np.ndarray:
    mask: np.ndarray = candidates[:, 0] < limit
    return mask


def test_batches_on_workers_give_the_local_result_for_any_worker_count():
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    config = SearchConfig(candidates=5000, top_k=37, chunk_size=1024)
    # Coarse scores: many ties, which the merge must break by candidate index as one pass does.
    score = functools.partial(_linear, np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32))
    coarse = lambda c: np.round(score(c), 1)  # noqa: E731
    for fn in (score, coarse):
        local = search_mixture(fn, prior, config, np.random.default_rng(11))
        for workers in (1, 2, 3, 8):
            executor = Serial()
            executor.workers = workers  # batches and waves follow the worker count
            remote = search_mixture(fn, prior, config, np.random.default_rng(11), executor=executor)
            _same(remote, local)
    assert batch_size(config, 2) == 1024 and batch_size(config, 8) == 313


def test_feasible_and_transform_stay_local_and_give_the_local_result():
    prior = np.full(5, 0.2)
    config = SearchConfig(candidates=3000, top_k=16, chunk_size=700)
    score = functools.partial(_linear, np.linspace(-1.0, 1.0, 5).astype(np.float32))
    feasible = functools.partial(_only_first_below, 0.1)

    def transform(c: np.ndarray) -> None:
        c[:, 1] *= 0.5
        c /= c.sum(axis=1, keepdims=True)

    local = search_mixture(score, prior, config, np.random.default_rng(2), feasible, transform)
    executor = Serial()
    executor.workers = 3
    remote = search_mixture(score, prior, config, np.random.default_rng(2), feasible, transform,
                            executor=executor)
    _same(remote, local)
    assert remote.n_feasible < config.candidates
    with pytest.raises(InfeasibleError):
        search_mixture(score, prior, config, np.random.default_rng(2),
                       functools.partial(_only_first_below, -1.0), executor=executor)


def test_processes_score_a_model_exactly_as_this_process(tiny_model):
    model = load_model(tiny_model)
    prior = resolve_schedule_prior(None, model).weights
    config = SearchConfig(candidates=6000, top_k=32)
    score = functools.partial(model.predict_transition, 2, loss=float(model.initial_loss))
    local = search_mixture(score, prior, config, np.random.default_rng(4))
    pool = Processes(2)
    try:
        _same(search_mixture(score, prior, config, np.random.default_rng(4), executor=pool), local)
        seed = np.random.SeedSequence(9)
        here = CandidatePool(prior, config, seed, model.prepare_transitions)
        there = CandidatePool(prior, config, seed, model.prepare_transitions, executor=pool)
        for j in (1, 2):
            pooled = functools.partial(_at_stage, model, j, float(model.initial_loss))
            _same(there.search(pooled), here.search(pooled))
    finally:
        pool.close()


def _at_stage(model, stage, loss, prepared, candidates):  # type: ignore[no-untyped-def]
    return model.predict_prepared(prepared, stage, candidates, loss)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster() as address:
        yield address


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_dask_cluster_searches_exactly_as_this_process(tiny_model, cluster):
    assert cluster.startswith("tcp://127.0.0.1:")
    model = load_model(tiny_model)
    prior = resolve_schedule_prior(None, model).weights
    config = SearchConfig(candidates=20_000, top_k=64, chunk_size=4096)
    loss = float(model.initial_loss)
    remote = Cluster(cluster)
    try:
        assert remote.workers == 2
        # A closure is fine for Dask (cloudpickle).
        score = lambda c: model.predict_transition(1, c, loss)  # noqa: E731
        local = search_mixture(score, prior, config, np.random.default_rng(0))
        _same(search_mixture(score, prior, config, np.random.default_rng(0), executor=remote),
              local)
        endpoint = search_mixture(model.predict_endpoint, prior, config, np.random.default_rng(1))
        _same(search_mixture(model.predict_endpoint, prior, config, np.random.default_rng(1),
                             executor=remote), endpoint)
        seed = np.random.SeedSequence(3)
        here = CandidatePool(prior, config, seed, model.prepare_transitions)
        there = CandidatePool(prior, config, seed, model.prepare_transitions, executor=remote,
                              max_bytes=0)  # drawn again and sent again for every search
        for j in range(1, model.n_switch_points + 1):
            pooled = functools.partial(_at_stage, model, j, loss - 0.05 * j)
            _same(there.search(pooled), here.search(pooled))
    finally:
        remote.close()
