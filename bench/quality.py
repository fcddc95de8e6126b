"""Quality on synthetic worlds with a known truth, in every world family: one round and two.

For each family (`regmixd simulate --family`: shift, the default; saturation; curriculum;
order) and world seed:

One round. Proxies designed the RegMix way (`design --static`'s procedure, with the world's
caps) are simulated (512 by default; `--runs 128,512` for both sets, the smaller the first rows
of the larger). A model is fitted with `fit`'s defaults and plans are built with `schedule`'s
defaults and the world's prior.json, as the CLI would:

    regmixd simulate --family F --runs 512 --domains K --seed S --out W
    regmixd fit W/store --out M --prior W/prior.json
    regmixd schedule M --prior W/prior.json [--static | --force-dynamic] --target-steps 25000

Two rounds (unless --one-round), 448 + 64 of the same 512-proxy budget, in the same world:

    regmixd design --prior W/prior.json --runs 448 --proxy-steps 1000 --out d1.csv
                   (phased, the default share; capped by the world's corpora as above)
    regmixd simulate --mixtures d1.csv --world W/world.json --out R1; ingest; fit -> M1
    regmixd design --refine M1 --runs 64 --proxy-steps 1000 --prefix v --out v.csv
    regmixd simulate --mixtures v.csv --world W/world.json --seed S' --out R2
    regmixd ingest R2/logs --out STORE --append; regmixd fit STORE --verify-prefix v --out M2
    regmixd schedule M2 --prior W/prior.json            (the guarded plan)

(through the same library calls, in memory). Reported per family and seed: the TRUE final loss
(proxy scale, lower is better) of the prior; static RegMix from the 512 static proxies (the
baseline of every comparison); the raw offline schedule (`--force-dynamic`); the guarded
schedule (`schedule`'s default: the guard may hand out static RegMix); online steering
(OnlineController from the target run's own observed loss); the same after two rounds
(`*_r2`; `guarded_r1` is round one's guarded plan, before verification); the oracle static
mixture and oracle schedule; the guard's evidence and decision. Per family: "worse than static"
counts (true loss > static + 0.01) and gap closed = sum(static - plan) / sum(static - oracle
schedule). A sweep over the guard's k recomputes the one-round guarded plan from the recorded
evidence. Every finished world is appended to bench/results/NAME-rows.jsonl as it ends.

Whole worlds run in parallel with --jobs N (local processes) or --cluster tcp://HOST:PORT (a
Dask scheduler); a world's numbers do not depend on where it ran.

Run: python bench/quality.py [--families shift,saturation,curriculum,order] [--seeds 3]
     [--first-seed 0] [--runs 512] [--domains 17] [--candidates N | --quick] [--jobs 2]
     [--one-round] [--name quality]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any

import numpy as np
from _harness import RESULTS, report

TOLERANCE = 0.01  # "worse than static" means more than this above static's true loss
FIRST_ROUND = 448  # two rounds: phased proxies from `design`, then `design --refine`'s 64
VERIFY_PREFIX = "v"
# Round two's runs get their own noise (`simulate --world W --seed S'`): run i's noise comes
# from (seed, i), so reusing round one's seed would repeat its first runs' noise.
ROUND_TWO_SEED = 1_000_000
K_SWEEP = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
PLANS = ("offline", "guarded", "online")
# Two rounds: the 448 phased proxies' guarded plan (r1), then after the verification round (r2).
TWO_ROUND_PLANS = ("guarded_r1", "offline_r2", "guarded_r2", "online_r2")


def columns(runs: list[int], two_rounds: bool) -> list[str]:
    """The per-seed table's columns."""
    per_set = [f"{name}_{n}" for n in runs for name in ("static", *PLANS)]
    two = (
        [
            "form_r1",
            *TWO_ROUND_PLANS[:1],
            "form_r2",
            "static_r2",
            *TWO_ROUND_PLANS[1:],
            "decision_r2",
            "verified_gain",
            "verified_sd",
        ]
        if two_rounds
        else []
    )
    return ["family", "seed", "form", "prior", *per_set, *two, "oracle_static",
            "oracle_schedule", "advantage", "rollout_mae", "rollout_rho", "decision",
            "seconds"]  # fmt: skip


def _stages(schedule: Any) -> list[tuple[float, float, tuple[float, ...]]]:
    steps = schedule.target_steps
    return [(s.start_step / steps, s.end_step / steps, s.weights) for s in schedule.stages]


def _online(world: Any, model: Any, prior: Any, config: Any, seed: int) -> float:
    """True final loss of a target run steered online from its own observed losses."""
    from regmixd_cli.online.controller import OnlineController
    from regmixd_cli.sim.world import true_final_loss, true_loss_curve

    steps = world.target_steps
    controller = OnlineController(
        model,
        steps,
        param_ratio=world.param_ratio,
        beta=world.beta,
        prior=dict(zip(model.domains, prior.weights, strict=True)),
        prior_source=prior.source,
        candidates=config.candidates,
        top_k=config.top_k,
        alpha=config.alpha,
        seed=seed,
    )
    rng = np.random.default_rng([seed, 99])
    first = controller.first_weights()  # the prior, or static RegMix when the guard holds it
    stages: list[list[Any]] = [[0.0, 1.0, tuple(first[d] for d in model.domains)]]
    for switch_step in controller.switch_steps:
        proxy_step = switch_step * world.proxy_steps / steps
        observed = float(true_loss_curve(world, stages, [proxy_step], scale="target")[0])
        observed += rng.normal(0.0, world.dynamics.eval_noise) / world.target_scale
        mixture = controller.mixture_for(switch_step, observed)
        if mixture is None:  # cannot happen: every switch step is evaluated
            raise RuntimeError(f"no decision at switch step {switch_step}")
        stages[-1][1] = switch_step / steps
        stages.append([switch_step / steps, 1.0, tuple(mixture[d] for d in model.domains)])
    return true_final_loss(world, [(a, b, w) for a, b, w in stages])


def _merge(first: Any, second: Any) -> Any:
    """Two simulations of one world as one (what `ingest --append` makes of their logs)."""
    import dataclasses

    if not np.array_equal(first.steps, second.steps):
        raise RuntimeError("the two rounds log different steps")
    phases = tuple(
        p
        for sim in (first, second)
        for p in (sim.phases if sim.phases is not None else ((),) * len(sim.runs))
    )
    return dataclasses.replace(
        first,
        runs=first.runs + second.runs,
        mixtures=np.concatenate([first.mixtures, second.mixtures]),
        target=np.concatenate([first.target, second.target]),
        train=np.concatenate([first.train, second.train]),
        true_target=np.concatenate([first.true_target, second.true_target]),
        phases=phases if any(phases) else None,
    )


def two_rounds(
    world: Any, seed: int, prior_file: Path, caps: Any, n_total: int, config: Any
) -> dict[str, Any]:
    """Round one: `design` (phased, its default share) of n_total - 64 proxies, fit. Round two:
    `design --refine MODEL --prefix v` (64 runs) simulated in the same world, appended, refit
    with `--verify-prefix v`; then `schedule`'s guarded plan. True losses of every plan."""
    from regmixd_cli.fit.model import FitConfig
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.plan.guard import STATIC
    from regmixd_cli.plan.schedule import (
        build_guarded,
        build_schedule,
        build_static,
        guard_verdict,
        resolve_schedule_prior,
    )
    from regmixd_cli.sim.design import SWITCH_SHARE, design_phased
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
    from regmixd_cli.sim.refine import design_refinement
    from regmixd_cli.sim.world import true_final_loss

    n_verify = n_total - n_total * FIRST_ROUND // 512
    n_first = n_total - n_verify
    first, phases = design_phased(
        world.prior, n_first, seed, world.proxy_steps, 5, SWITCH_SHARE, caps
    )
    sim_one = simulate_runs(world, first, seed, eval_every=50, phases=phases)
    fit_config = FitConfig(target=world.target_metric, prior=str(prior_file))
    model_one = fit_model(runs_to_store(sim_one), fit_config)
    prior = resolve_schedule_prior(str(prior_file), model_one)
    row: dict[str, Any] = {"form_r1": model_one.form}
    # Round one alone (448 phased proxies): the guarded plan as `schedule` would hand it out.
    offline_one = build_schedule(model_one, config, prior, world.target_steps, seed)
    static_one = build_static(model_one, config, prior, world.target_steps, seed)
    verdict_one = guard_verdict(model_one, offline_one, static_one)
    row["offline_r1"] = true_final_loss(world, _stages(offline_one))
    row["guarded_r1"] = (
        true_final_loss(world, _stages(static_one))
        if verdict_one.decision == STATIC
        else row["offline_r1"]
    )
    plan = design_refinement(
        model_one, n_verify, world.proxy_steps, VERIFY_PREFIX, seed, config.candidates
    )
    sim_two = simulate_runs(
        world, plan.first, seed + ROUND_TWO_SEED, eval_every=50, runs=plan.runs,
        phases=plan.phases,
    )  # fmt: skip
    both = runs_to_store(_merge(sim_one, sim_two))
    model = fit_model(both, dataclasses_replace(fit_config, verify_prefixes=(VERIFY_PREFIX,)))
    prior = resolve_schedule_prior(str(prior_file), model)
    offline = build_schedule(model, config, prior, world.target_steps, seed)
    static = build_static(model, config, prior, world.target_steps, seed)
    # `schedule`'s default: the guard, and the best verification run's plan when the model
    # cannot credibly beat it (plan.guard.weigh_verified).
    guarded, verdict = build_guarded(model, config, prior, world.target_steps, seed)
    row["form_r2"] = model.form
    row["static_r2"] = true_final_loss(world, _stages(static))
    row["offline_r2"] = true_final_loss(world, _stages(offline))
    row["guarded_r2"] = true_final_loss(world, _stages(guarded))
    row["decision_r2"] = verdict.decision
    observed = verdict.evidence.get("verification") or {}
    row["verified_gain"] = (
        observed["static"] - observed["dynamic"] if "static" in observed else None
    )
    row["verified_sd"] = observed.get("sd")
    row["online_r2"] = _online(world, model, prior, config, seed)
    return row


def one_world(
    family: str,
    seed: int,
    n_domains: int,
    runs: list[int],
    candidates: int | None,
    workdir: Path,
    two: bool = True,
) -> dict[str, Any]:
    """Every method's true final loss in the world of (`family`, `seed`)."""
    from regmixd_cli.fit.model import FitConfig
    from regmixd_cli.fit.training import fit_model
    from regmixd_cli.plan.guard import STATIC
    from regmixd_cli.plan.schedule import (
        build_schedule,
        build_static,
        guard_verdict,
        resolve_schedule_prior,
    )
    from regmixd_cli.plan.search import SearchConfig
    from regmixd_cli.sim.design import MAX_EPOCHS, caps_from_tokens, design_mixtures
    from regmixd_cli.sim.oracle import find_oracle
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs
    from regmixd_cli.sim.world import make_world, true_final_loss

    started = time.perf_counter()
    world = make_world(n_domains, seed, family=family)
    prior_file = workdir / f"prior-{family}-{seed}.json"  # what `simulate` writes as W/prior.json
    prior_file.write_text(json.dumps(dict(zip(world.domains, world.prior, strict=True))))
    proxy_tokens = world.proxy_steps * world.tokens_per_step
    caps = caps_from_tokens([a * proxy_tokens for a in world.available], MAX_EPOCHS, proxy_tokens)
    mixtures = design_mixtures(world.prior, max(runs), seed, caps)
    config = SearchConfig() if candidates is None else SearchConfig(candidates=candidates)
    row: dict[str, Any] = {"family": family, "seed": seed}
    for n_runs in runs:
        # Run i's noise depends on (seed, i) only: 128 runs are the first 128 of the 512.
        sim_n = simulate_runs(world, mixtures[:n_runs], seed, eval_every=50)
        model = fit_model(
            runs_to_store(sim_n), FitConfig(target=world.target_metric, prior=str(prior_file))
        )
        prior = resolve_schedule_prior(str(prior_file), model)
        static = build_static(model, config, prior, world.target_steps, seed)
        offline = build_schedule(model, config, prior, world.target_steps, seed)
        verdict = guard_verdict(model, offline, static)
        row[f"static_{n_runs}"] = true_final_loss(world, _stages(static))
        row[f"offline_{n_runs}"] = true_final_loss(world, _stages(offline))
        row[f"guarded_{n_runs}"] = row[
            f"static_{n_runs}" if verdict.decision == STATIC else f"offline_{n_runs}"
        ]
        row[f"online_{n_runs}"] = _online(world, model, prior, config, seed)
        row["form"] = model.form
        evidence = verdict.evidence
        row |= {
            "advantage": verdict.predicted_advantage,
            "rollout_mae": evidence.get("rollout_mae"),
            "rollout_rho": evidence.get("rollout_spearman"),
            "decision": verdict.decision,
        }
    if two:
        row |= two_rounds(world, seed, prior_file, caps, max(runs), config)
    oracle = find_oracle(world, 5, seed)
    row["prior"] = oracle.prior_loss
    row["oracle_static"] = oracle.static_loss
    row["oracle_schedule"] = oracle.schedule_loss
    row["seconds"] = time.perf_counter() - started
    return row


def world_task(task: tuple[Any, ...]) -> dict[str, Any]:
    """One world, in its own scratch directory (a task for `--jobs` / `--cluster`)."""
    family, seed, n_domains, runs, candidates, two = task
    with tempfile.TemporaryDirectory() as tmp:
        row = one_world(family, seed, n_domains, runs, candidates, Path(tmp), two)
    print(f"{family} seed {seed}: {row['seconds']:.0f} s", file=sys.stderr, flush=True)
    return row


def _guarded_at(row: dict[str, Any], k: float, n: int) -> float:
    """The guarded plan's true loss had the guard used k (same evidence, same rule)."""
    from regmixd_cli.plan.guard import GUARD_MIN_SPEARMAN

    mae, rho, adv = row["rollout_mae"], row["rollout_rho"], row["advantage"]
    credible = adv > 0 and (rho is None or rho >= GUARD_MIN_SPEARMAN)
    credible = credible and (mae is None or adv >= k * mae)
    return float(row[f"offline_{n}"] if credible else row[f"static_{n}"])


def family_summary(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Worse-than-static counts and gap closed of each plan, over one family's seeds; the
    baseline is static RegMix fitted on n static proxies."""
    gap = sum(r[f"static_{n}"] - r["oracle_schedule"] for r in rows)
    out: dict[str, Any] = {"family": rows[0]["family"], "runs": n, "seeds": len(rows)}
    for plan in summary_plans(rows, n):
        worse = sum(r[plan] > r[f"static_{n}"] + TOLERANCE for r in rows)
        closed = sum(r[f"static_{n}"] - r[plan] for r in rows)
        out[f"{plan}_worse"] = f"{worse}/{len(rows)}"
        out[f"{plan}_gap_closed"] = closed / gap if gap > 0 else None
    out["static_vs_oracle_static"] = float(
        np.mean([r[f"static_{n}"] - r["oracle_static"] for r in rows])
    )
    return out


def summary_plans(rows: list[dict[str, Any]], n: int) -> list[str]:
    """The plans summarised: one round on n static proxies, and the two-round protocol's."""
    plans = [f"{p}_{n}" for p in PLANS]
    return plans + [p for p in TWO_ROUND_PLANS if p in rows[0]]


def per_seed_table(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The README's table: per family and seed, one round (n static proxies, guarded) and two
    rounds (448 phased + 64 verification, guarded): loss minus static RegMix's from n static
    proxies, worse than it (> TOLERANCE)?, and gain / gap; then each family's sums."""
    plans = [("one round", f"guarded_{n}"), ("two rounds", "guarded_r2")]
    plans = [(label, key) for label, key in plans if key in rows[0]]
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        chosen = [r for r in rows if r["family"] == family]
        gap = sum(r[f"static_{n}"] - r["oracle_schedule"] for r in chosen)
        for r in [*chosen, None]:
            entry: dict[str, Any] = {"family": family, "seed": "all" if r is None else r["seed"]}
            for label, key in plans:
                group = chosen if r is None else [r]
                delta = [x[key] - x[f"static_{n}"] for x in group]
                worse = sum(d > TOLERANCE for d in delta)
                g = gap if r is None else r[f"static_{n}"] - r["oracle_schedule"]
                entry[f"{label}: vs static"] = f"{sum(delta) / len(delta):+.3f}" + (
                    "" if r is not None else " (mean)"
                )
                entry[f"{label}: worse?"] = (
                    ("yes" if worse else "no") if r is not None else f"{worse}/{len(group)}"
                )
                entry[f"{label}: gap closed"] = f"{0.0 - sum(delta) / g:.2f}" if g > 0 else "-"
            out.append(entry)
    return out


def k_sweep(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Guarded plan per k: worse-than-static count and gap closed, per family and overall."""
    families = sorted({r["family"] for r in rows})
    table = []
    for k in K_SWEEP:
        entry: dict[str, Any] = {"k": k}
        for family in [*families, "all"]:
            chosen = [r for r in rows if family in ("all", r["family"])]
            losses = [_guarded_at(r, k, n) for r in chosen]
            pairs = list(zip(losses, chosen, strict=True))
            worse = sum(x > r[f"static_{n}"] + TOLERANCE for x, r in pairs)
            gap = sum(r[f"static_{n}"] - r["oracle_schedule"] for r in chosen)
            closed = sum(r[f"static_{n}"] - x for x, r in pairs)
            entry[family] = (
                f"{worse}/{len(chosen)} worse, gap {closed / gap:+.2f}" if gap > 0 else "-"
            )
        table.append(entry)
    return table


def main() -> None:
    from regmixd_cli.sim.families import FAMILY_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILY_NAMES))
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0, help="world seeds start here")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worlds in parallel local processes (0 = all cores)"
    )
    parser.add_argument(
        "--cluster", default=None, metavar="ADDRESS", help="send whole worlds to a Dask scheduler"
    )
    parser.add_argument(
        "--name", default="quality", help="results file stem: bench/results/NAME.json"
    )
    parser.add_argument(
        "--one-round", action="store_true", help="skip the two-round protocol (448 + 64)"
    )
    parser.add_argument("--runs", default="512", help="proxy counts, comma-separated (128,512)")
    parser.add_argument("--domains", type=int, default=17)
    parser.add_argument(
        "--candidates", type=int, default=None, help="default: SearchConfig's (100,000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="20,000 candidates (a smoke run; numbers are noisier)"
    )
    args = parser.parse_args()
    candidates = 20_000 if args.quick and args.candidates is None else args.candidates
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    runs = sorted({int(r) for r in args.runs.split(",")})
    from regmixd_cli.fit.parallel import chunks, executor

    tasks = [
        (family, seed, args.domains, runs, candidates, not args.one_round)
        for seed in range(args.first_seed, args.first_seed + args.seeds)
        for family in families
    ]
    pool = executor(args.jobs, args.cluster)
    rows: list[dict[str, Any]] = []
    partial = RESULTS / f"{args.name}-rows.jsonl"  # every finished world, as soon as it is done
    RESULTS.mkdir(exist_ok=True)
    partial.write_text("")
    try:  # whole worlds per task; each world's numbers do not depend on where it ran
        for chunk in chunks(tasks, pool.workers):
            done = pool.map(world_task, chunk)
            with partial.open("a") as f:
                f.writelines(json.dumps(row) + "\n" for row in done)
            rows += done
    finally:
        pool.close()
    rows.sort(key=lambda r: (families.index(r["family"]), r["seed"]))
    for row in rows:
        print(row, file=sys.stderr, flush=True)
    n = max(runs)
    summaries = [family_summary([r for r in rows if r["family"] == f], n) for f in families]
    sweep = k_sweep(rows, n)
    shown = [{k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    report(args.name, shown, columns(runs, not args.one_round))
    print()
    summary_columns = [
        "family",
        "runs",
        "seeds",
        *(f"{p}_{c}" for p in summary_plans(rows, n) for c in ("worse", "gap_closed")),
        "static_vs_oracle_static",
    ]
    print_table(
        [{k: f"{v:.3f}" if isinstance(v, float) else v for k, v in s.items()} for s in summaries],
        summary_columns,
    )
    print()
    print_table(sweep, ["k", *sorted({r["family"] for r in rows}), "all"])
    print()
    seeds_table = per_seed_table(rows, n)
    print_table(seeds_table, list(seeds_table[0]))
    path = RESULTS / f"{args.name}.json"  # the same file, with numbers instead of display strings
    payload = json.loads(path.read_text())
    payload["rows"] = rows
    payload["summary"] = summaries
    payload["k_sweep"] = sweep
    payload["per_seed"] = seeds_table
    payload["settings"] = {
        "families": families,
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "two_rounds": None if args.one_round else [FIRST_ROUND, max(runs) - FIRST_ROUND],
        "runs": runs,
        "domains": args.domains,
        "candidates": candidates or 100_000,
        "tolerance": TOLERANCE,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(
        f"\n{args.seeds} worlds per family, {args.domains} domains, {runs} proxies, "
        f"{candidates or 100_000} candidates; true final loss at proxy scale (lower is better)"
    )


def print_table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    """A Markdown table on stdout (no file)."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = (
            str(r.get(c, "") if r.get(c) is not None else "").ljust(w)
            for c, w in zip(cols, widths, strict=True)
        )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
