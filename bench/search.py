"""Candidate search vs the bare XGBoost predictions it needs (SPEC section 6: at most 1.5x).

Two workloads on a real booster (K = 17 domains, per-stage features m..., loss):
- the full offline schedule: Algorithm 1 with 100,000 candidates x 5 switch points;
- one search over 10,000,000 candidates (chunked, bounded memory).
The baseline is `booster.inplace_predict` on exactly the feature matrices the search built
(recorded in a first, untimed run), so the ratio is the search's own overhead: Dirichlet
sampling, feature assembly, the running top-k and the mean.

Run: python bench/search.py [--repeats 3] [--rounds 1000] [--depth 4] [--big 10000000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _harness import median, report

N_DOMAINS = 17
N_SWITCH = 5
PROXY_STEPS = 1000.0


class Recorder:
    """A booster stand-in that keeps a copy of every matrix it is asked to predict."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.seen: list[np.ndarray] = []

    def inplace_predict(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x.copy())
        return self.booster.inplace_predict(x)


def train_booster(rounds: int, depth: int, nthread: int) -> Any:
    """A transition booster like `fit` makes: 512 proxies x 5 transitions, features (m, loss)."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    m = rng.dirichlet(np.ones(N_DOMAINS), size=512 * N_SWITCH).astype(np.float32)
    loss = rng.uniform(3.0, 6.0, size=(m.shape[0], 1)).astype(np.float32)
    x = np.hstack([m, loss])
    y = -0.3 + (m[:, :3] ** 2).sum(axis=1) - 0.5 * m[:, 3] + 0.01 * rng.standard_normal(m.shape[0])
    params = {"eta": 0.01, "max_depth": depth, "subsample": 0.8, "colsample_bytree": 0.8,
              "nthread": nthread, "seed": 0, "tree_method": "hist", "verbosity": 0}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds)


def make_model(boosters: dict[str, Any]) -> Any:
    from regmixd_cli.model import FittedModel

    grid = tuple(PROXY_STEPS * (i + 1) / (N_SWITCH + 1) for i in range(N_SWITCH + 1))
    domains = tuple(f"d{k:02d}" for k in range(N_DOMAINS))
    return FittedModel(
        domains=domains, target="val/loss", grid=grid, proxy_steps=PROXY_STEPS,
        prior=dict.fromkeys(domains, 1 / N_DOMAINS), prior_source="uniform", form="per-stage",
        loss_ranges=((3.0, 6.0),) * (N_SWITCH + 1), initial_loss=5.0, report={},
        boosters=boosters, residual=True,
    )


def paired(fn: Any, base: Any, repeats: int) -> tuple[float, float, float, float]:
    """Median wall and CPU seconds of `fn` and `base`, alternated so load drift hits both."""
    wall: dict[str, list[float]] = {"fn": [], "base": []}
    cpu: dict[str, list[float]] = {"fn": [], "base": []}
    for _ in range(repeats):
        for name, call in (("fn", fn), ("base", base)):
            w, c = time.perf_counter(), time.process_time()
            call()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return median(wall["fn"]), median(wall["base"]), median(cpu["fn"]), median(cpu["base"])


def main() -> None:
    from regmixd_cli.model import default_threads
    from regmixd_cli.prior import Prior
    from regmixd_cli.schedule import build_schedule
    from regmixd_cli.search import SearchConfig, search_mixture

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--big", type=int, default=10_000_000)
    args = parser.parse_args()

    nthread = default_threads()
    booster = train_booster(args.rounds, args.depth, nthread)
    stages = [f"stage_{j}" for j in range(1, N_SWITCH + 1)]
    prior = Prior(tuple([1 / N_DOMAINS] * N_DOMAINS), "uniform")
    config = SearchConfig()
    rows = []

    # 1. The full offline schedule: 100,000 candidates x 5 switch points.
    recorder = Recorder(booster)
    build_schedule(make_model(dict.fromkeys(stages, recorder)), config, prior, None, 0)
    matrices = recorder.seen
    model = make_model(dict.fromkeys(stages, booster))
    times = paired(
        lambda: build_schedule(model, config, prior, None, 0),
        lambda: [booster.inplace_predict(x) for x in matrices],
        args.repeats,
    )
    rows.append(row(f"schedule {config.candidates} x {N_SWITCH}", matrices, times))

    # 2. One search over --big candidates, chunked.
    big = SearchConfig(candidates=args.big)
    recorder = Recorder(booster)
    rec_model = make_model(dict.fromkeys(stages, recorder))

    def search(m: Any) -> Any:
        rng = np.random.default_rng(0)
        return search_mixture(lambda c: m.predict_transition(1, c, 5.0), prior.weights, big, rng)

    search(rec_model)
    matrices = recorder.seen
    times = paired(
        lambda: search(model), lambda: [booster.inplace_predict(x) for x in matrices], args.repeats
    )
    rows.append(row(f"search {args.big} (chunks of {big.chunk_size})", matrices, times))
    for r in rows:
        r.update(trees=args.rounds, depth=args.depth, nthread=nthread)
    report("search", rows, ["workload", "rows_predicted", "search_s", "bare_predict_s", "ratio",
                            "search_cpu_s", "bare_cpu_s", "cpu_ratio", "target", "trees",
                            "depth", "nthread"])


def row(workload: str, matrices: list[np.ndarray], times: tuple[float, ...]) -> dict[str, Any]:
    search_t, bare_t, search_cpu, bare_cpu = times
    return {"workload": workload, "rows_predicted": sum(len(x) for x in matrices),
            "search_s": search_t, "bare_predict_s": bare_t, "ratio": search_t / bare_t,
            "search_cpu_s": search_cpu, "bare_cpu_s": bare_cpu,
            "cpu_ratio": search_cpu / bare_cpu, "target": 1.5}


if __name__ == "__main__":
    main()
