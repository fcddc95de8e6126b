"""Phased proxies and the form choice: does a schedule beat static RegMix, and which held-out
evidence picks the form that does? (Numbers: docs/DECISIONS.md, "Fitting and model forms".)

For each world seed (`regmixd simulate`'s world) two designs of R proxies are simulated:
RegMix's static design, and a phased design (`design --proxy-steps`, a --switch-share of the
runs switching at the grid's switch points). One model is cross-validated per design (all
forms), every form is refitted on all runs, and each form's offline schedule, plus static
RegMix (the endpoint model), is scored by its TRUE final loss in the world. Reported per world
and form: true final loss minus static RegMix's on the STATIC design (negative = better than
the baseline a user has today), and the held-out evidence `fit` reports (after-change MAE,
phased-rollout MAE).

Run: python bench/phased_choice.py [--seeds 4] [--domains 8] [--runs 256] [--share 0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from typing import Any

import numpy as np


def _stages(schedule: Any) -> list[tuple[float, float, tuple[float, ...]]]:
    steps = schedule.target_steps
    return [(s.start_step / steps, s.end_step / steps, s.weights) for s in schedule.stages]


def _models(store: Any, config: Any) -> tuple[Any, dict[str, Any]]:
    """The auto model and one refitted model per cross-validated form."""
    from regmixd_cli.fit.boosters import booster_kinds, fit_booster
    from regmixd_cli.fit.model import default_threads
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.fit.transitions import build_loss_table

    auto = fit_model(store, config)
    table = build_loss_table(store, auto.target, n_switch_points=config.n_switch_points)
    rounds = auto.report["cv_rounds"]
    everyone = np.arange(table.n_runs)
    models = {}
    for form in auto.report["transitions"][0]:
        if form in ("stage", "t_from", "t_to"):
            continue
        boosters = {}
        for name, kind, stage in booster_kinds(table, (form,)):
            n = int(math.ceil(float(np.median(rounds[name]))))
            boosters[name], _ = fit_booster(table, everyone, kind, stage, config.xgb,
                                            config.seed, n)
            boosters[name].set_param({"nthread": default_threads()})
        models[form] = dataclasses.replace(auto, form=form, boosters=boosters)
    return auto, models


def _static_endpoint(store: Any, auto: Any, config: Any) -> Any:
    """`auto` with its endpoint booster refitted on the store's static runs only."""
    from regmixd_cli.fit.boosters import fit_booster
    from regmixd_cli.fit.model import ENDPOINT
    from regmixd_cli.fit.transitions import after_change, build_loss_table

    table = build_loss_table(store, auto.target, n_switch_points=config.n_switch_points)
    static = np.flatnonzero(~after_change(table).any(axis=1) & (
        np.abs(table.history[:, 0] - table.history[:, -1]).sum(axis=1) < 1e-9))
    n = int(math.ceil(float(np.median(auto.report["cv_rounds"][ENDPOINT]))))
    booster, _ = fit_booster(table, static, ENDPOINT, 0, config.xgb, config.seed, n)
    return dataclasses.replace(auto, boosters={**auto.boosters, ENDPOINT: booster})


def one_world(seed: int, n_domains: int, n_runs: int, share: float, candidates: int,
              designs: tuple[str, ...] = ("static", "phased")) -> dict[str, Any]:
    from regmixd_cli.fit.model import FitConfig
    from regmixd_cli.plan.schedule import build_schedule, build_static, resolve_schedule_prior
    from regmixd_cli.plan.search import SearchConfig
    from regmixd_cli.sim.design import MAX_EPOCHS, caps_from_tokens, design_phased
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
    from regmixd_cli.sim.world import make_world, true_final_loss

    started = time.perf_counter()
    world = make_world(n_domains, seed)
    proxy_tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * proxy_tokens for a in world.available], MAX_EPOCHS, proxy_tokens)
    first, phases = design_phased(world.prior, n_runs, seed, world.proxy_steps, 5, share, caps)
    search = SearchConfig(candidates=candidates)
    config = FitConfig(target=world.target_metric)
    row: dict[str, Any] = {"seed": seed}
    for design, ph in (("static", None), ("phased", phases)):
        if design not in designs:
            continue
        sim = simulate_runs(world, first, seed, eval_every=50, phases=ph)
        auto, models = _models(runs_to_store(sim), config)
        prior = resolve_schedule_prior(None, auto)
        static = true_final_loss(world, _stages(build_static(auto, search, prior,
                                                             world.target_steps, seed)))
        row[f"{design}/static"] = static
        if ph is not None:  # the endpoint model fitted on the static runs only, for comparison
            row[f"{design}/static_runs_endpoint"] = true_final_loss(world, _stages(build_static(
                _static_endpoint(runs_to_store(sim), auto, config), search, prior,
                world.target_steps, seed)))
        row[f"{design}/auto"] = auto.form
        for form, model in models.items():
            plan = build_schedule(model, search, prior, world.target_steps, seed)
            row[f"{design}/{form}"] = true_final_loss(world, _stages(plan))
        evidence = auto.report.get("evidence", {}).get("forms", {})
        for form, entry in evidence.items():
            for key in ("after_change", "phased_rollout"):
                if key in entry:
                    row[f"{design}/{form}/{key}"] = entry[key]["mae"]
                    row[f"{design}/{form}/{key}/spearman"] = entry[key]["spearman"]
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--domains", type=int, default=8)
    parser.add_argument("--runs", type=int, default=256)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--candidates", type=int, default=20_000)
    parser.add_argument("--phased-only", action="store_true", help="skip the static design")
    args = parser.parse_args()
    designs = ("phased",) if args.phased_only else ("static", "phased")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = one_world(seed, args.domains, args.runs, args.share, args.candidates, designs)
        row["share"] = args.share
        print(json.dumps(row), flush=True)
        print(f"seed {seed} done in {row['seconds']} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
