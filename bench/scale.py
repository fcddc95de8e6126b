"""Scale: simulate N proxies x 1,000 logged steps x 50 domains, then ingest, fit, schedule.

Each stage is the CLI (`regmixd simulate`, `ingest`, `fit` with 5-fold CV, `schedule` with
defaults) run in a fresh child process (`--child`), which reports its wall time, its peak
anonymous memory (RssAnon sampled every 5 ms: ingest's peak RSS also counts the pages of the
logs polars maps) and peak resident memory (ru_maxrss of itself and of its direct children:
Dask's local workers; the forkserver's --jobs workers are not its children, so a local fit's
workers are not counted -- each holds one booster's design matrix, a small fraction of the
parent's). `fit` and
`schedule` run locally on every core (`--jobs 0`), and with --serial also with `--jobs 1` (the
baseline, in the same run; bench/fit_speed.py measures the speed-up); `fit` also on a 2-worker
Dask cluster on 127.0.0.1 (started and stopped here) when dask is installed. The growth
columns divide each stage's time and memory by those of the smallest N (linear growth: the
ratio of the N's).

Run: python bench/scale.py [--proxies 1000 2000] [--domains 50] [--steps 1000] [--no-cluster]
     [--serial]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import AnonPeak, report

ROOT = Path(__file__).resolve().parent.parent


def child(argv: list[str]) -> None:
    """Run one regmixd command in this process; print its time and peak memory as JSON."""
    from regmixd_cli.cli import app

    anon = AnonPeak()
    start = time.perf_counter()
    try:
        app(argv, prog_name="regmixd", standalone_mode=False)
    finally:
        elapsed = time.perf_counter() - start
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"s": elapsed, "rss_mb": own / 1024, "anon_mb": anon.stop(),
                          "workers_rss_mb": workers / 1024}))


def stage(argv: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path[1:]]))
    out = subprocess.run(
        [sys.executable, __file__, "--child", *argv],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def one_size(
    n: int, domains: int, steps: int, cluster: str | None, tmp: Path, serial: bool
) -> list[dict[str, Any]]:
    world, store = tmp / f"w{n}", tmp / f"s{n}"
    rows: list[dict[str, Any]] = []

    def row(name: str, argv: list[str]) -> None:
        r = stage(argv)
        rows.append({"proxies": n, "stage": name} | r)
        print(rows[-1], file=sys.stderr, flush=True)

    row("simulate", ["simulate", "--runs", str(n), "--domains", str(domains), "--steps",
                     str(steps), "--eval-every", "1", "--seed", "0", "--out", str(world)])
    row("ingest", ["ingest", str(world / "logs"), "--out", str(store)])
    for jobs in ("1", "0") if serial else ("0",):
        model = tmp / f"m{n}_{jobs}"
        row(f"fit --jobs {jobs}", ["fit", str(store), "--out", str(model), "--jobs", jobs])
    if cluster:
        row("fit --cluster (2 workers)", ["fit", str(store), "--out", str(tmp / f"m{n}_c"),
                                          "--cluster", cluster])
        same = _same(tmp / f"m{n}_0", tmp / f"m{n}_c")
        rows[-1]["identical_to_local"] = same
    for jobs in ("1", "0") if serial else ("0",):
        row(f"schedule --jobs {jobs}", ["schedule", str(tmp / f"m{n}_0"), "--out",
                                        str(tmp / f"sch{n}_{jobs}.json"), "--jobs", jobs])
    return rows


def _same(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in a.iterdir())
    return files == sorted(p.name for p in b.iterdir()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--serial", action="store_true", help="also --jobs 1 (the baseline)")
    args = parser.parse_args()
    local = None
    if not args.no_cluster:
        try:
            from dask.distributed import LocalCluster

            local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=None)  # fmt: skip
        except ImportError:
            print("dask not installed: no cluster rows", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sorted(args.proxies):
                address = str(local.scheduler_address) if local is not None else None
                rows += one_size(n, args.domains, args.steps, address, Path(tmp), args.serial)
    finally:
        if local is not None:
            local.close()
    smallest = min(args.proxies)
    base = {r["stage"]: r for r in rows if r["proxies"] == smallest}
    for r in rows:
        b = base[r["stage"]]
        r["time_growth"] = r["s"] / b["s"]
        r["mem_growth"] = r["rss_mb"] / b["rss_mb"]
        r["n_growth"] = r["proxies"] / smallest
    jobs1 = {
        (r["proxies"], r["stage"].split()[0]): r["s"] for r in rows if "--jobs 1" in r["stage"]
    }
    for r in rows:
        key = (r["proxies"], r["stage"].split()[0])
        if key in jobs1 and "--jobs 1" not in r["stage"]:
            r["speedup_vs_jobs1"] = jobs1[key] / r["s"]
    print(f"cores {os.cpu_count()}, load {os.getloadavg()}", file=sys.stderr)
    report("scale", rows, ["proxies", "stage", "s", "rss_mb", "anon_mb", "workers_rss_mb",
                           "speedup_vs_jobs1",
                           "identical_to_local", "n_growth", "time_growth", "mem_growth"])


if __name__ == "__main__":
    main()
