"""Ingest speed vs a bare polars read + Parquet write of the same native JSONL (SPEC section 6).

    python bench/ingest.py [--runs 1000] [--steps 250] [--repeats 3]

Writes a deterministic native JSONL (about 110 MB at the defaults: 1000 runs x 250 steps x 14
metrics, each run's mixture line followed by its observations) to bench/results/, then reports
the median wall time of:
  bare        pl.scan_ndjson(f).collect().write_parquet(...)   (schema from the first 100 lines)
  bare-full   the same with infer_schema_length=None            (schema from the whole file)
  ingest      read_inputs + build_store + write_store, in process
  cli         `regmixd ingest f --out store` as a subprocess (adds interpreter start-up)
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DOMAINS = ("arxiv", "freelaw", "nih_exporter", "pubmed_central", "wikipedia_en",
           "dm_mathematics", "github", "philpapers", "stackexchange", "enron_emails",
           "gutenberg_pg_19", "pile_cc", "ubuntu_irc", "europarl", "hackernews",
           "pubmed_abstracts", "uspto_backgrounds")
METRICS = tuple(f"val/{d}" for d in DOMAINS[:13]) + ("train/loss",)


def make_log(path: Path, n_runs: int, n_steps: int) -> None:
    """A native JSONL log: per run, its mixture line then its observation lines."""
    rng = random.Random(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for r in range(n_runs):
            draws = [rng.random() for _ in DOMAINS]
            total = sum(draws)
            run = f"p{r:04d}"
            mixture = {d: x / total for d, x in zip(DOMAINS, draws, strict=True)}
            handle.write(json.dumps({"run": run, "mixture": mixture}) + "\n")
            for s in range(1, n_steps + 1):
                record: dict[str, object] = {"run": run, "step": 4 * s, "tokens": 4 * s << 20}
                for metric in METRICS:
                    record[metric] = round(rng.uniform(3.0, 8.0), 6)
                handle.write(json.dumps(record) + "\n")


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import polars as pl

    from regmixd_cli.ingest import build_store
    from regmixd_cli.io.store import write_store
    from regmixd_cli.readers import read_inputs

    log = RESULTS / f"ingest_{args.runs}x{args.steps}.jsonl"
    if not log.is_file():
        make_log(log, args.runs, args.steps)
    work = Path(tempfile.mkdtemp(prefix="regmixd-bench-"))
    try:
        def bare() -> None:
            pl.scan_ndjson(log).collect().write_parquet(work / "bare.parquet")

        def bare_full() -> None:
            pl.scan_ndjson(log, infer_schema_length=None).collect().write_parquet(
                work / "bare.parquet")

        def ingest() -> None:
            inputs = read_inputs([str(log)])
            write_store(work / "store", build_store(inputs.parsed).store)

        def cli() -> None:
            exe = Path(sys.executable).with_name("regmixd")
            subprocess.run([str(exe), "ingest", str(log), "--out", str(work / "cli")],
                           check=True, capture_output=True)

        results = {name: median_time(fn, args.repeats)
                   for name, fn in (("bare", bare), ("bare-full", bare_full),
                                    ("ingest", ingest), ("cli", cli))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = log.stat().st_size / 1e6
    print(f"file: {log.name}, {size:.0f} MB, median of {args.repeats}")
    for name, seconds in results.items():
        print(f"  {name:10s} {seconds:7.3f} s   {seconds / results['bare']:5.2f}x bare")


if __name__ == "__main__":
    main()
