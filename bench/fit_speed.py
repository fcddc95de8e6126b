"""Wall time of `fit` at the published scale: 512 proxies x 5 transitions, 17 domains, 5-fold CV.

Proxies come from a simulated world (`regmixd_cli.simulate`), logged every 50 of 1000 steps.
Prints the time and the report's held-out scores. Target (issue 3): under about 60 s on 2 cores.

Run: python bench/fit_speed.py [--runs 512] [--switch-points 5] [--repeats 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import median, report, time_call

from regmixd_cli.model import FitConfig, fit_model
from regmixd_cli.simulate import make_world, runs_to_store, simulate_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=512)
    parser.add_argument("--switch-points", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    world = make_world(17, 0)
    mixtures = np.random.default_rng(1).dirichlet(np.asarray(world.prior) * 17 + 0.05, args.runs)
    store = runs_to_store(simulate_runs(world, mixtures, 2, eval_every=50))
    config = FitConfig(target="val/pile_cc", n_switch_points=args.switch_points)
    fitted = []
    times = time_call(lambda: fitted.append(fit_model(store, config)), args.repeats)
    rep = fitted[-1].report
    form = rep["choice"]["form"]
    rows = [{
        "runs": args.runs,
        "transitions": args.switch_points,
        "seconds": round(median(times), 2),
        "form": form,
        "mean_transition_rho": round(
            float(np.mean([r[form]["spearman"] for r in rep["transitions"]])), 4
        ),
        "rollout_rho": rep["endpoint"]["rollout"][form]["spearman"],
        "endpoint_rho": rep["endpoint"]["endpoint"]["spearman"],
    }]  # fmt: skip
    report("fit_speed", rows, list(rows[0]))


if __name__ == "__main__":
    main()
