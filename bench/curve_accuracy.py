"""Held-out accuracy of curve-shift's curve: one booster per grid point vs one multi-output booster.

The same grouped 5-fold CV as `regmixd fit` (fit.crossval: seeded folds, early stopping on 20 %
of the training runs, the default XGBSettings), applied to the two ways of predicting each
mixture's static loss curve at t_1..t_{N+1}:
- `points`: one booster per grid point t_1..t_N plus the endpoint booster (models before the
  `curve` booster; phased stores still);
- `curve`: ONE multi-output booster (vector leaves) whose outputs are the offsets of l_1..l_N
  from l_{N+1}, and l_{N+1} (what `fit` now trains on static stores);
and scored as `fit` scores curve-shift: teacher-forced next-interval MAE / Spearman (mean over
stages) and the rollout from the true l_1 to T_p. Also prints each variant's trees per curve.

Run: python bench/curve_accuracy.py [--world K SEED RUNS]   (default: --world 17 0 512)
     python bench/curve_accuracy.py --store STORE   (e.g. the sample logs, ingested)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from regmixd_cli.fit.boosters import _train
from regmixd_cli.fit.crossval import assign_folds
from regmixd_cli.fit.metrics import spearman
from regmixd_cli.fit.model import XGBSettings, curve_shift
from regmixd_cli.fit.transitions import build_loss_table, resolve_target


def world_store(k: int, seed: int, runs: int) -> Any:
    """`regmixd simulate`'s world with RegMix's design of `runs` static proxies."""
    from regmixd_cli.sim.design import MAX_EPOCHS, caps_from_tokens, design_mixtures
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
    from regmixd_cli.sim.world import make_world

    world = make_world(k, seed)
    tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * tokens for a in world.available], MAX_EPOCHS, tokens)
    mixtures = design_mixtures(world.prior, runs, seed, caps)
    return runs_to_store(simulate_runs(world, mixtures, seed, eval_every=50))


def held_out_curves(m: np.ndarray, losses: np.ndarray, variant: str) -> tuple[np.ndarray, int]:
    """Out-of-fold curves (runs x points) and the median trees per curve over the folds."""
    settings, folds = XGBSettings(), 5
    n_runs, n_points = losses.shape
    fold_of = assign_folds(n_runs, folds, 0)
    curves = np.empty_like(losses)
    trees = []
    for fold in range(folds):
        train, held = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        shuffled = np.random.default_rng([0, fold]).permutation(train)
        n_early = max(1, round(settings.early_stopping_fraction * len(train)))
        early, fit = np.sort(shuffled[:n_early]), np.sort(shuffled[n_early:])
        if variant == "points":
            count = 0
            for j in range(n_points):
                booster, best = _train(settings, 0, m[fit], losses[fit, j],
                                       settings.max_rounds, (m[early], losses[early, j]))
                curves[held, j] = booster.inplace_predict(m[held])
                count += best
            trees.append(count)
            continue
        target = losses.copy()
        target[:, :-1] -= target[:, -1:]
        booster, best = _train(settings, 0, m[fit], target[fit], settings.max_rounds,
                               (m[early], target[early]))
        pred = booster.inplace_predict(m[held]).astype(np.float64)
        pred[:, :-1] += pred[:, -1:]
        curves[held] = pred
        trees.append(best)
    return curves, int(np.median(trees))


def scores(curves: np.ndarray, losses: np.ndarray, grid: tuple[float, ...]) -> dict[str, float]:
    """curve-shift's held-out scores, as `fit` reports them."""
    n_points = losses.shape[1]
    nxt = np.column_stack([curve_shift(curves, grid, s, losses[:, s - 1])
                           for s in range(1, n_points)])
    path = losses[:, 0].copy()
    for s in range(1, n_points):
        path = curve_shift(curves, grid, s, path)
    return {
        "next_mae": float(np.abs(nxt - losses[:, 1:]).mean()),
        "next_rho": float(np.mean([spearman(nxt[:, s], losses[:, s + 1])
                                   for s in range(n_points - 1)])),
        "rollout_mae": float(np.abs(path - losses[:, -1]).mean()),
        "rollout_rho": float(spearman(path, losses[:, -1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a store written by `regmixd ingest`")
    parser.add_argument("--world", type=int, nargs=3, metavar=("K", "SEED", "RUNS"),
                        default=(17, 0, 512))
    args = parser.parse_args()
    if args.store is not None:
        from regmixd_cli.store.files import read_store

        store, name = read_store(args.store), str(args.store)
    else:
        k, seed, runs = args.world
        store, name = world_store(k, seed, runs), f"make_world({k}, {seed}), {runs} runs"
    table = build_loss_table(store, resolve_target(store, None, name), n_switch_points=5)
    m = table.mixtures.astype(np.float32)
    print(f"{name}: {table.n_runs} runs, {len(table.domains)} domains, grid {table.grid}")
    print("| curve | next MAE | next rho | rollout MAE | rollout rho | trees per curve | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for variant in ("points", "curve"):
        start = time.process_time()
        curves, trees = held_out_curves(m, table.losses, variant)
        s = scores(curves, table.losses, table.grid)
        print(f"| {variant} | {s['next_mae']:.4f} | {s['next_rho']:.4f} | {s['rollout_mae']:.4f}"
              f" | {s['rollout_rho']:.4f} | {trees} | {time.process_time() - start:.1f} |")


if __name__ == "__main__":
    main()
