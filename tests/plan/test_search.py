"""Candidate search: Dirichlet candidates on the simplex, top-k mean, determinism, chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regmixd_cli.errors import InfeasibleError, UsageError
from regmixd_cli.plan.search import SearchConfig, search_mixture


def distance_to(target: np.ndarray):
    """A score: squared distance of each candidate to `target` (best = target itself)."""
    target32 = np.asarray(target, dtype=np.float32)

    def score(candidates: np.ndarray) -> np.ndarray:
        return ((candidates - target32) ** 2).sum(axis=1)

    return score


def brute_force(prior, config: SearchConfig, seed: int, score) -> np.ndarray:
    """Reference: every candidate at once, ranked by (loss, index), top-k mean."""
    seen: list[np.ndarray] = []

    def recording(candidates: np.ndarray) -> np.ndarray:
        seen.append(candidates.copy())
        return score(candidates)

    big = SearchConfig(config.candidates, config.top_k, config.alpha, chunk_size=config.candidates)
    search_mixture(recording, prior, big, np.random.default_rng(seed))
    (everything,) = seen
    losses = np.asarray(score(everything), dtype=np.float64)
    order = np.lexsort((np.arange(losses.size), losses))[: config.top_k]
    mean = everything[np.sort(order)].astype(np.float64).mean(axis=0)
    return mean / mean.sum()


priors = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=7).filter(lambda w: sum(w) > 0.01)


@settings(max_examples=40, deadline=None)
@given(
    prior=priors,
    alpha=st.sampled_from([0.05, 0.3, 1.0, 4.0]),
    candidates=st.integers(1, 400),
    chunk=st.integers(1, 500),
    seed=st.integers(0, 2**32 - 1),
)
def test_candidates_and_result_lie_on_the_simplex(prior, alpha, candidates, chunk, seed):
    zero = np.asarray(prior) == 0
    seen: list[np.ndarray] = []

    def score(c: np.ndarray) -> np.ndarray:
        assert c.dtype == np.float32 and c.shape[1] == len(prior)
        seen.append(c.copy())
        return c[:, 0] * 0.5 - c[:, -1]

    config = SearchConfig(candidates, min(8, candidates), alpha, chunk_size=chunk)
    result = search_mixture(score, prior, config, np.random.default_rng(seed))
    drawn = np.concatenate(seen)
    assert drawn.shape[0] == candidates
    assert np.all(drawn >= 0)
    np.testing.assert_allclose(drawn.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(drawn[:, zero] == 0), "a zero-prior domain got weight"
    assert result.weights.dtype == np.float64
    assert np.all(result.weights >= 0) and abs(result.weights.sum() - 1.0) < 1e-12
    assert np.all(result.weights[zero] == 0)
    assert result.n_candidates == candidates and result.n_feasible == candidates
    assert result.n_used == min(8, candidates)


@settings(max_examples=25, deadline=None)
@given(
    prior=priors,
    chunk=st.integers(1, 300),
    top_k=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_any_chunk_size_gives_the_same_answer_as_one_chunk(prior, chunk, top_k, seed, ties):
    target = np.linspace(1.0, 2.0, len(prior))
    target /= target.sum()
    score = distance_to(target)
    if ties:  # tree models predict piecewise-constant losses: many exact ties

        def score(c: np.ndarray, base=score) -> np.ndarray:
            return np.floor(base(c) * 4.0)

    config = SearchConfig(300, top_k, 1.0, chunk_size=chunk)
    one = SearchConfig(300, top_k, 1.0, chunk_size=300)
    a = search_mixture(score, prior, config, np.random.default_rng(seed))
    b = search_mixture(score, prior, one, np.random.default_rng(seed))
    assert np.array_equal(a.weights, b.weights)
    assert a.predicted_loss == b.predicted_loss and a.best_loss == b.best_loss
    np.testing.assert_array_equal(a.weights, brute_force(prior, config, seed, score))


def test_same_seed_same_result_and_different_seed_different_result():
    prior = [0.5, 0.3, 0.2]
    score = distance_to(np.array([0.6, 0.3, 0.1]))
    config = SearchConfig(5000, 32)
    a = search_mixture(score, prior, config, np.random.default_rng(7))
    b = search_mixture(score, prior, config, np.random.default_rng(7))
    c = search_mixture(score, prior, config, np.random.default_rng(8))
    assert np.array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)


def test_top_k_mean_finds_an_interior_optimum():
    target = np.array([0.6, 0.25, 0.1, 0.05])
    config = SearchConfig(20_000, 16)
    result = search_mixture(distance_to(target), [0.25] * 4, config, np.random.default_rng(0))
    assert np.abs(result.weights - target).max() < 0.05
    assert result.best_loss <= result.predicted_loss


def test_zero_prior_domains_stay_zero_and_the_rest_is_searched():
    target = np.array([0.0, 0.7, 0.3])
    result = search_mixture(
        distance_to(target), [0.0, 0.5, 0.5], SearchConfig(5000, 16), np.random.default_rng(1)
    )
    assert result.weights[0] == 0.0
    assert np.abs(result.weights - target).max() < 0.05


def test_tiny_alpha_never_produces_invalid_candidates():
    seen: list[np.ndarray] = []

    def score(c: np.ndarray) -> np.ndarray:
        seen.append(c.copy())
        return c[:, 0]

    config = SearchConfig(20_000, 8, alpha=0.01)
    result = search_mixture(score, [1 / 17] * 17, config, np.random.default_rng(3))
    drawn = np.concatenate(seen)
    assert np.all(np.isfinite(drawn))
    np.testing.assert_allclose(drawn.sum(axis=1), 1.0, atol=1e-5)
    assert result.n_feasible == 20_000


def test_feasible_hook_drops_candidates_before_ranking():
    prior = [1 / 3] * 3
    score = distance_to(np.array([0.9, 0.05, 0.05]))

    def cap(c: np.ndarray) -> np.ndarray:
        return c[:, 0] <= 0.4

    result = search_mixture(score, prior, SearchConfig(5000, 32), np.random.default_rng(0), cap)
    assert result.weights[0] <= 0.4 + 1e-9
    assert 0 < result.n_feasible < 5000
    assert result.weights[0] > 0.3  # pushed against the cap, towards the optimum


def test_fewer_feasible_than_k_averages_what_there_is():
    def rare(c: np.ndarray) -> np.ndarray:
        return c[:, 0] > 0.9995  # Dirichlet(0.5, 0.5): about 1.4% of candidates

    result = search_mixture(
        lambda c: c[:, 1], [0.5, 0.5], SearchConfig(2000, 128), np.random.default_rng(0), rare
    )
    assert 0 < result.n_used == result.n_feasible < 128


def test_nothing_feasible_is_an_infeasible_error():
    with pytest.raises(InfeasibleError, match="none of the 100 candidate"):
        search_mixture(
            lambda c: c[:, 0],
            [0.5, 0.5],
            SearchConfig(100, 4),
            np.random.default_rng(0),
            lambda c: np.zeros(c.shape[0], dtype=bool),
        )


def test_non_finite_scores_are_never_chosen():
    def score(c: np.ndarray) -> np.ndarray:
        out = c[:, 0].astype(np.float64)
        out[c[:, 0] < 0.2] = np.nan  # would otherwise be the best
        return out

    result = search_mixture(score, [0.5, 0.5], SearchConfig(3000, 16), np.random.default_rng(0))
    assert result.weights[0] >= 0.2
    assert result.n_feasible < 3000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": 0}, "--candidates 0"),
        ({"top_k": 0}, "--top-k 0"),
        ({"candidates": 10, "top_k": 11}, "larger than --candidates"),
        ({"alpha": 0.0}, "--alpha"),
        ({"alpha": float("nan")}, "--alpha"),
        ({"chunk_size": 0}, "chunk size"),
        ({"threads": -1}, "threads -1"),
    ],
)
def test_bad_configuration_is_a_usage_error(kwargs, message):
    with pytest.raises(UsageError, match=message):
        SearchConfig(**kwargs)


@pytest.mark.parametrize("prior", [[], [0.0, 0.0], [0.5, -0.1], [float("nan"), 1.0]])
def test_bad_prior_is_a_usage_error(prior):
    with pytest.raises(UsageError, match="prior"):
        search_mixture(lambda c: c[:, 0], prior, SearchConfig(10, 2), np.random.default_rng(0))


@pytest.mark.parametrize("alpha", [1.0, 0.05])
def test_thread_count_does_not_change_the_result(alpha):
    score = distance_to(np.array([0.5, 0.2, 0.2, 0.1]))
    results = [
        search_mixture(
            score,
            [0.4, 0.3, 0.2, 0.1],
            SearchConfig(3000, 16, alpha, chunk_size=chunk, threads=threads),
            np.random.default_rng(11),
        )
        for threads, chunk in ((1, 3000), (2, 700), (3, 3000), (4, 1))
    ]
    assert all(np.array_equal(r.weights, results[0].weights) for r in results)
