"""Candidate search vs the bare XGBoost predictions it needs (the bar: at most 1.5x).

Default workload: the model `regmixd fit` actually produces. A simulated world
(`make_world(17, seed)`, RegMix's design of 512 proxies, logged every 50 of 1000 steps) is fitted
with the default `FitConfig()`, whose `auto` picks the curve-shift form: every candidate's curve
is one pass of the multi-output `curve` booster (models fitted before it: N + 1 = 6 boosters,
one per grid point), and transitions interpolate the curves in numpy (`model.curve_shift`).
Two searches on it:
- the full offline schedule: Algorithm 1 with 100,000 candidates x 5 switch points;
- one search over 10,000,000 candidates (chunked, bounded memory).
A secondary row keeps the earlier synthetic per-stage booster (one booster per stage, features
m..., loss; --rounds trees of --depth) for the schedule workload.

The baseline is `booster.inplace_predict` of exactly the boosters the search called, on exactly
the matrices it passed them (recorded during the first timed run: the copies cost ~1 ms per
131,072-row chunk and are charged to regmixd, so the ratio errs high), in the same memory
layout. So the ratio is the search's own overhead: Dirichlet sampling, the curve-shift numpy,
the running top-k and the mean. Runs alternate with the baseline so load drift hits both;
medians over --repeats (--big-repeats for the 10^7 search, which takes minutes per run).

The floor rows (issue #17) compare the whole default `schedule` (100,000 candidates x 5 switch
points, curve-shift) with the bare predictions of ONE booster per switch point on 100,000
candidates: (a) `floor: per-stage` -- the paper's per-stage model (features m..., loss), refitted
on the same store with the round counts its cross-validation found (the bar: at most 1.5x);
(b) `floor: same-size` -- only for a model with one booster per grid point (fitted before the
`curve` booster): its point_1..point_5, one per switch point. Both the schedule alone
(`build_schedule`) and the CLI's default, guarded, schedule (`build_guarded`: also static
RegMix, one more search with the endpoint booster) are timed. Alternated with the floors,
medians over --repeats.

Run: python bench/search.py [--repeats 3] [--big 10000000] [--big-repeats 1] [--synthetic]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _harness import median, report

N_DOMAINS = 17
N_SWITCH = 5
PROXY_STEPS = 1000.0


class Log:
    """Every (booster, matrix) pair a model asked for; a matrix shared by calls is kept once."""

    def __init__(self) -> None:
        self.matrices: list[np.ndarray] = []
        self.calls: list[tuple[Any, int]] = []

    def add(self, booster: Any, x: np.ndarray) -> None:
        last = self.matrices[-1] if self.matrices else None
        # Curve-shift passes one candidate matrix to its N + 1 boosters in turn.
        if last is None or last.shape != x.shape or not np.array_equal(last, x):
            self.matrices.append(np.array(x, copy=True, order="K"))  # same memory layout
        self.calls.append((booster, len(self.matrices) - 1))

    def replay(self) -> None:
        """The bare floor: every recorded prediction, nothing else."""
        for booster, index in self.calls:
            booster.inplace_predict(self.matrices[index])

    @property
    def rows(self) -> int:
        return sum(self.matrices[i].shape[0] for _, i in self.calls)


class Recorder:
    """A booster stand-in that logs every matrix it is asked to predict."""

    def __init__(self, log: Log, booster: Any) -> None:
        self.log, self.booster = log, booster

    def inplace_predict(self, x: np.ndarray) -> np.ndarray:
        self.log.add(self.booster, x)
        return self.booster.inplace_predict(x)


def recording(model: Any, log: Log) -> Any:
    """The same model with every booster wrapped in a Recorder."""
    wrapped = {name: Recorder(log, b) for name, b in model.boosters.items()}
    return dataclasses.replace(model, boosters=wrapped)


def real_model(seed: int, n_runs: int) -> tuple[Any, float]:
    """What `regmixd fit` makes of a simulated world: FitConfig() defaults (auto form)."""
    from regmixd_cli.fit.model import FitConfig
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.sim.design import MAX_EPOCHS, caps_from_tokens, design_mixtures
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
    from regmixd_cli.sim.world import make_world

    world = make_world(N_DOMAINS, seed)
    proxy_tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * proxy_tokens for a in world.available], MAX_EPOCHS, proxy_tokens)
    mixtures = design_mixtures(world.prior, n_runs, seed, caps)
    store = runs_to_store(simulate_runs(world, mixtures, seed, eval_every=50))
    start = time.perf_counter()
    model = fit_model(store, FitConfig())
    elapsed = time.perf_counter() - start
    _STORES[id(model)] = store
    return model, elapsed


_STORES: dict[int, Any] = {}


def per_stage_boosters(model: Any) -> list[Any]:
    """The paper's per-stage boosters on the model's store (CV's median round counts)."""
    import math

    from regmixd_cli.fit.boosters import fit_booster
    from regmixd_cli.fit.model import PER_STAGE, XGBSettings
    from regmixd_cli.fit.transitions import build_loss_table

    store = _STORES[id(model)]
    table = build_loss_table(store, model.target, n_switch_points=model.n_switch_points)
    cv = model.report["cv_rounds"]
    everyone = np.arange(table.n_runs)
    out = []
    for j in range(1, model.n_switch_points + 1):
        rounds = int(math.ceil(float(np.median(cv[f"stage_{j}"]))))
        booster, _ = fit_booster(table, everyone, PER_STAGE, j, XGBSettings(), 0, rounds)
        out.append(booster)
    return out


def floor_rows(model: Any, prior: Any, config: Any, repeats: int) -> list[dict[str, Any]]:
    """The default schedule vs one booster per switch point (see the module docstring)."""
    from regmixd_cli.fit.model import default_threads
    from regmixd_cli.plan.schedule import build_guarded, build_schedule

    rng = np.random.default_rng(0)
    n = model.n_switch_points
    m = rng.dirichlet(np.ones(len(model.domains)), size=config.candidates).astype(np.float32)
    x = np.hstack([m, np.full((m.shape[0], 1), 4.0, dtype=np.float32)])
    stage = per_stage_boosters(model)
    for b in stage:
        b.set_param({"nthread": default_threads()})
    floors: dict[str, Callable[[], Any]] = {
        "per-stage": lambda: [b.inplace_predict(x) for b in stage]
    }
    trees = {"per-stage": sum(b.num_boosted_rounds() for b in stage)}
    if "point_1" in model.boosters:  # one booster per grid point (models before `curve`)
        points = [model.boosters[f"point_{j}"] for j in range(1, n + 1)]
        floors["same-size"] = lambda: [b.inplace_predict(m) for b in points]
        trees["same-size"] = sum(b.num_boosted_rounds() for b in points)
    wall: dict[str, list[float]] = {"schedule": [], "guarded": [], **{k: [] for k in floors}}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    calls = {
        "schedule": lambda: build_schedule(model, config, prior, None, 0),
        # The CLI's default: the guard also searches static RegMix (the endpoint booster).
        "guarded": lambda: build_guarded(model, config, prior, None, 0),
        **floors,
    }
    for _ in range(repeats):
        for name, call in calls.items():
            w, c = time.perf_counter(), time.process_time()
            call()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return [
        {
            "workload": f"{side} {config.candidates} x {n} ({model.form}) vs floor: {name}",
            "booster_calls": n, "rows_predicted": n * config.candidates,
            "floor_trees": trees[name], "search_s": median(wall[side]),
            "bare_predict_s": median(wall[name]), "ratio": median(wall[side]) / median(wall[name]),
            "search_cpu_s": median(cpu[side]), "bare_cpu_s": median(cpu[name]),
            "cpu_ratio": median(cpu[side]) / median(cpu[name]), "target": 1.5,
            "meets": "yes" if median(wall[side]) / median(wall[name]) <= 1.5 else "NO",
            "repeats": repeats,
        }  # fmt: skip
        for side in ("schedule", "guarded")
        for name in floors
    ]


def synthetic_model(rounds: int, depth: int, nthread: int) -> Any:
    """The earlier stand-in: one booster (512 x 5 rows, features m..., loss) for every stage."""
    import xgboost as xgb

    from regmixd_cli.fit.model import FittedModel

    rng = np.random.default_rng(0)
    m = rng.dirichlet(np.ones(N_DOMAINS), size=512 * N_SWITCH).astype(np.float32)
    loss = rng.uniform(3.0, 6.0, size=(m.shape[0], 1)).astype(np.float32)
    x = np.hstack([m, loss])
    y = -0.3 + (m[:, :3] ** 2).sum(axis=1) - 0.5 * m[:, 3] + 0.01 * rng.standard_normal(m.shape[0])
    params = {
        "eta": 0.01,
        "max_depth": depth,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "nthread": nthread,
        "seed": 0,
        "tree_method": "hist",
        "verbosity": 0,
    }
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds)
    grid = tuple(PROXY_STEPS * (i + 1) / (N_SWITCH + 1) for i in range(N_SWITCH + 1))
    domains = tuple(f"d{k:02d}" for k in range(N_DOMAINS))
    return FittedModel(
        domains=domains, target="val/loss", grid=grid, proxy_steps=PROXY_STEPS,
        prior=dict.fromkeys(domains, 1 / N_DOMAINS), prior_source="uniform", form="per-stage",
        loss_ranges=((3.0, 6.0),) * (N_SWITCH + 1), initial_loss=5.0, report={},
        boosters={f"stage_{j}": booster for j in range(1, N_SWITCH + 1)}, residual=True,
    )  # fmt: skip


def paired(run: Callable[[Any], Any], model: Any, repeats: int) -> tuple[Log, dict[str, Any]]:
    """Time run(model) and its bare predictions, alternated; the first run also records them."""
    log = Log()
    wall: dict[str, list[float]] = {"fn": [], "base": []}
    cpu: dict[str, list[float]] = {"fn": [], "base": []}
    for i in range(repeats):
        target = recording(model, log) if i == 0 else model
        calls = (("fn", lambda t=target: run(t)), ("base", log.replay))
        for name, call in calls:
            w, c = time.perf_counter(), time.process_time()
            call()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    search_t, bare_t = median(wall["fn"]), median(wall["base"])
    search_cpu, bare_cpu = median(cpu["fn"]), median(cpu["base"])
    return log, {
        "booster_calls": len(log.calls), "rows_predicted": log.rows,
        "search_s": search_t, "bare_predict_s": bare_t, "ratio": search_t / bare_t,
        "search_cpu_s": search_cpu, "bare_cpu_s": bare_cpu, "cpu_ratio": search_cpu / bare_cpu,
        "target": 1.5, "meets": "yes" if search_t / bare_t <= 1.5 else "NO", "repeats": repeats,
    }  # fmt: skip


def main() -> None:
    from regmixd_cli.fit.model import default_threads
    from regmixd_cli.plan.schedule import build_schedule, resolve_schedule_prior
    from regmixd_cli.plan.search import SearchConfig, search_mixture

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", type=int, default=10_000_000, help="0 skips the big search")
    parser.add_argument("--big-repeats", type=int, default=1)
    parser.add_argument("--runs", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1000, help="synthetic booster's trees")
    parser.add_argument("--depth", type=int, default=4, help="synthetic booster's depth")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic row")
    args = parser.parse_args()

    nthread = default_threads()
    config = SearchConfig()
    big = SearchConfig(candidates=args.big) if args.big else None
    model, fit_s = real_model(args.seed, args.runs)
    prior = resolve_schedule_prior(None, model)
    trees = sum(b.num_boosted_rounds() for b in model.boosters.values())
    model_desc = (
        f"fit_model(FitConfig()) on make_world({N_DOMAINS}, {args.seed}), {args.runs} runs: "
        f"form {model.form}, {len(model.boosters)} boosters, {trees} trees in all"
    )
    rows = []

    def schedule(m: Any) -> Any:
        return build_schedule(m, config, prior, None, 0)

    rows += floor_rows(model, prior, config, args.repeats)
    _, row = paired(schedule, model, args.repeats)
    rows.append({"workload": f"schedule {config.candidates} x {N_SWITCH} ({model.form})"} | row)
    if big is not None:
        loss = float(model.initial_loss)

        def search(m: Any) -> Any:
            rng = np.random.default_rng(0)
            score = lambda c: m.predict_transition(1, c, loss)  # noqa: E731
            return search_mixture(score, prior.weights, big, rng)

        _, row = paired(search, model, args.big_repeats)
        workload = f"search {args.big} (chunks of {big.chunk_size}, {model.form})"
        rows.append({"workload": workload} | row)
    if not args.no_synthetic:
        synthetic = synthetic_model(args.rounds, args.depth, nthread)
        uniform = resolve_schedule_prior(None, synthetic)
        _, row = paired(
            lambda m: build_schedule(m, config, uniform, None, 0), synthetic, args.repeats
        )
        rows.append(
            {
                "workload": f"schedule {config.candidates} x {N_SWITCH} "
                f"(synthetic per-stage, {args.rounds} trees depth {args.depth})"
            }
            | row
        )
    print(model_desc)
    print(f"fit {fit_s:.1f} s; prediction threads {nthread}; load average {os.getloadavg()}")
    for r in rows:
        r.update(nthread=nthread, loadavg=[round(v, 2) for v in os.getloadavg()], model=model_desc)
    report(
        "search",
        rows,
        [
            "workload",
            "booster_calls",
            "rows_predicted",
            "floor_trees",
            "search_s",
            "bare_predict_s",
            "ratio",
            "search_cpu_s",
            "bare_cpu_s",
            "cpu_ratio",
            "target",
            "meets",
            "repeats",
        ],
    )


if __name__ == "__main__":
    main()
