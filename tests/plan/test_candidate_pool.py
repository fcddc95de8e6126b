"""One candidate pool for every switch point: kept in memory or drawn again, same schedule."""

from __future__ import annotations

import numpy as np

from regmixd_cli.fit.files import load_model
from regmixd_cli.plan import schedule as schedule_module
from regmixd_cli.plan.schedule import build_schedule, resolve_schedule_prior
from regmixd_cli.plan.search import CandidatePool, SearchConfig, search_mixture


def test_pool_search_equals_a_plain_search_of_the_same_draws():
    prior = np.full(4, 0.25)
    config = SearchConfig(candidates=5000, top_k=16, chunk_size=700)
    seed = np.random.SeedSequence(3)
    weights = np.array([0.3, -0.2, 0.5, 0.1], dtype=np.float32)

    def score(c):
        return c @ weights

    plain = search_mixture(score, prior, config, np.random.default_rng(seed))
    for max_bytes in (2**30, 0):  # kept, and drawn again each search
        pool = CandidatePool(prior, config, seed, lambda c: c @ weights, max_bytes)
        for _ in range(2):
            result = pool.search(lambda prepared, c: prepared)
            assert np.array_equal(result.weights, plain.weights)
            assert result.predicted_loss == plain.predicted_loss


def test_schedule_does_not_depend_on_keeping_the_pool(tiny_model, monkeypatch):
    model = load_model(tiny_model)
    config = SearchConfig(candidates=4000, chunk_size=1500)
    prior = resolve_schedule_prior(None, model)
    kept = build_schedule(model, config, prior, None, 7)
    monkeypatch.setattr(schedule_module.CandidatePool.__init__, "__defaults__", (0,))
    streamed = build_schedule(model, config, prior, None, 7)
    assert kept == streamed


def test_online_decisions_equal_every_offline_stage(tiny_model):
    """With the loss offline predicted, decision j is offline stage j for EVERY j (same pool)."""
    from regmixd_cli.online.controller import decide_online

    model = load_model(tiny_model)
    config = SearchConfig(candidates=3000)
    prior = resolve_schedule_prior(None, model)
    offline = build_schedule(model, config, prior, 6000, 5)
    for j in range(1, model.n_switch_points + 1):
        decision = decide_online(
            model, offline.stages[j].start_step, offline.stages[j - 1].predicted_loss, 6000,
            param_ratio=1.0, beta=0.0, search_config=config, seed=5,
        )
        assert tuple(decision.weights.values()) == offline.stages[j].weights
