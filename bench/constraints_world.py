"""Constraints and intervals on a synthetic world (numbers in docs/DECISIONS.md).

For each seed: simulate a K-domain world and its proxies, fit with a bootstrap ensemble,
then (1) schedule without and with the world's own token budgets (TOML, max_epochs E) and
compare token use, predicted loss and true loss; (2) check how often held-out runs' true
losses fall inside the 10-90% intervals (next interval from the observed loss, final loss by
rollout from l_1, endpoint model), for the bootstrap spread alone and widened by OOB
residuals; (3) the same for the schedules' own stage intervals against the world's truth.

    python bench/constraints_world.py --seeds 0 1 2 --domains 10 --runs 256 --ensemble 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REGMIXD = str(Path(sys.executable).with_name("regmixd"))


def sh(*args: str) -> str:
    done = subprocess.run([REGMIXD, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"regmixd {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def token_use(doc: dict, domains: list[str]) -> np.ndarray:
    """Each domain's use over the run, in units of the run's tokens."""
    use = np.zeros(len(domains))
    for s in doc["stages"]:
        frac = (s["end_step"] - s["start_step"]) / doc["target_steps"]
        use += frac * np.asarray([s["weights"][d] for d in domains])
    return use


def calibration(model_dir: Path, world, seed: int, n_runs: int) -> dict[str, float]:
    from regmixd_cli.fit.ensemble import interval, load_ensemble
    from regmixd_cli.fit.files import load_model
    from regmixd_cli.fit.transitions import build_loss_table
    from regmixd_cli.sim.design import design_mixtures
    from regmixd_cli.sim.proxies import runs_to_store, simulate_runs

    model = load_model(model_dir)
    ens = load_ensemble(model_dir, model)
    assert ens is not None
    caps = [min(15 * p, 1.0) for p in world.prior]
    mix = design_mixtures(world.prior, n_runs, 10_000 + seed, caps)
    sim = simulate_runs(world, mix, 10_000 + seed)  # fresh noise, fresh mixtures
    table = build_loss_table(runs_to_store(sim), model.target, intervals=model.grid)
    order = [table.domains.index(d) for d in model.domains]  # the store sorts domains
    m = table.mixtures[:, order].astype(np.float32)
    hits: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    n = model.n_switch_points
    paths = np.stack([r.rollout(m, table.losses[:, 0]) for r in ens.replicas])  # (B, R, N+1)
    ends = np.stack([r.predict_endpoint(m) for r in ens.replicas])  # (B, R)
    for widen in (False, True):
        tag = "oob" if widen else "boot"
        for j in range(1, n + 1):
            preds = np.stack(
                [r.predict_transition(j, m, table.losses[:, j - 1]) for r in ens.replicas]
            )
            res = ens.residuals("next", j - 1) if widen else None
            for i in range(table.n_runs):
                lo, _, hi = interval(preds[:, i], res)
                hits.setdefault(f"next/{tag}", []).append(lo <= table.losses[i, j] <= hi)
                widths.setdefault(f"next/{tag}", []).append(hi - lo)
        res = ens.residuals("rollout", n - 1) if widen else None
        res_end = ens.residuals("endpoint") if widen else None
        for i in range(table.n_runs):
            lo, _, hi = interval(paths[:, i, -1], res)
            hits.setdefault(f"rollout/{tag}", []).append(lo <= table.losses[i, -1] <= hi)
            widths.setdefault(f"rollout/{tag}", []).append(hi - lo)
            lo, _, hi = interval(ends[:, i], res_end)
            hits.setdefault(f"endpoint/{tag}", []).append(lo <= table.losses[i, -1] <= hi)
            widths.setdefault(f"endpoint/{tag}", []).append(hi - lo)
    out = {f"{k} coverage": float(np.mean(v)) for k, v in hits.items()}
    out |= {f"{k} width": float(np.mean(v)) for k, v in widths.items()}
    return out


def make_scarce_world(
    out: Path, n_domains: int, seed: int, n_runs: int, scarce: str, scarcity: float
) -> None:
    """`regmixd simulate`'s world with one domain's unique tokens divided by `scarcity`."""
    import dataclasses

    from regmixd_cli.sim.design import MAX_EPOCHS, design_mixtures
    from regmixd_cli.sim.files import write_simulation
    from regmixd_cli.sim.proxies import run_ids, simulate_runs
    from regmixd_cli.sim.world import make_world

    world = make_world(n_domains, seed)
    available = list(world.available)
    available[world.domains.index(scarce)] /= scarcity
    world = dataclasses.replace(world, available=tuple(available))
    caps = [min(MAX_EPOCHS * p, 1.0) for p in world.prior]
    mix = design_mixtures(world.prior, n_runs, seed, caps)
    sim = simulate_runs(world, mix, seed, runs=run_ids(n_runs))
    settings = {"seed": seed, "runs": n_runs, "scarce": scarce, "scarcity": scarcity}
    write_simulation(out, world, sim, settings, 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--domains", type=int, default=10)
    parser.add_argument("--runs", type=int, default=256)
    parser.add_argument("--ensemble", type=int, default=20)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--heldout", type=int, default=128)
    parser.add_argument("--scarce", default="wikipedia_en")
    parser.add_argument("--scarcity", type=float, default=8.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/regmixd-constraints-bench"))
    args = parser.parse_args()
    from regmixd_cli.sim.files import world_from_dict
    from regmixd_cli.sim.world import true_loss_curve

    results = []
    for seed in args.seeds:
        root = args.work / f"s{seed}"
        root.mkdir(parents=True, exist_ok=True)
        w, st, m = root / "world", root / "store", root / "model"
        if not (m / "model.json").exists():
            make_scarce_world(w, args.domains, seed, args.runs, args.scarce, args.scarcity)
            sh("ingest", str(w / "logs"), "--out", str(st))
            sh("fit", str(st), "--out", str(m), "--prior", str(w / "prior.json"),
               "--ensemble", str(args.ensemble), "--seed", str(seed))  # fmt: skip
        world = world_from_dict(json.loads((w / "world.json").read_text()), "world")
        domains = list(world.domains)
        tps, steps = world.tokens_per_step, world.target_steps
        run_tokens = tps * steps
        toml = ["[schedule]", f"tokens_per_step = {tps}", ""]
        for d, avail in zip(domains, world.available, strict=True):
            if d != args.scarce:
                continue
            toml += [f"[domains.{d}]", f"available_tokens = {avail * run_tokens:.6e}",
                     f"max_epochs = {args.epochs}", ""]  # fmt: skip
        (root / "budget.toml").write_text("\n".join(toml))
        row: dict = {"seed": seed}
        for name, extra in (("free", []), ("budget", ["--constraints", str(root / "budget.toml")])):
            for static in (False, True):
                tag = f"{name}{'-static' if static else ''}"
                out = root / f"{tag}.json"
                sh("schedule", str(m), "--out", str(out), "--target-steps", str(steps),
                   "--candidates", str(args.candidates), *extra,
                   *(["--static"] if static else []))  # fmt: skip
                doc = json.loads(out.read_text())
                use = token_use(doc, domains) / (np.asarray(world.available) * args.epochs)
                stages = [(s["start_fraction"], s["end_fraction"],
                           [s["weights"][d] for d in domains]) for s in doc["stages"]]  # fmt: skip
                ends = [s["end_fraction"] * world.proxy_steps for s in doc["stages"]]
                truth = true_loss_curve(world, stages, ends)
                inside = [
                    iv[0] <= t <= iv[2]
                    for s, t in zip(doc["stages"], truth, strict=True)
                    if (iv := s.get("predicted_loss_interval"))
                ]
                row[tag] = {
                    "predicted_final": doc["stages"][-1]["predicted_loss"],
                    "true_final": float(truth[-1]),
                    "max_budget_use": float(use.max()),
                    "most_used": domains[int(use.argmax())],
                    "over_budget": [d for d, u in zip(domains, use, strict=True) if u > 1 + 1e-9],
                    "stage_interval_hits": f"{sum(inside)}/{len(inside)}",
                }
        row["calibration"] = calibration(m, world, seed, args.heldout)
        results.append(row)
        print(json.dumps(row, indent=1), flush=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
