"""Ingest vs a bare polars read + Parquet write of the same native JSONL.

    python bench/ingest.py [--size-mb 1000] [--repeats 5] [--dir DIR] [--before DIR] [--rounds N]

Generates a deterministic native JSONL of about --size-mb MB in a temporary directory (runs of
1000 steps x 18 metrics; blocks of 8 runs interleaved line by line, as when proxies share one
log; each block's mixture lines first), deletes it afterwards, and times, repetitions
interleaved, each measurement in a fresh child process (so its peak RSS is its own):

  bare-read     pl.read_ndjson(f).write_parquet(out)              timed inside the process
  bare-scan     pl.scan_ndjson(f).collect().write_parquet(out)    timed inside the process
  ingest        what `regmixd ingest f --out store` does, in process (imports not timed:
                numpy, polars and pyarrow are imported first, as polars is for the bare rows)
  bare-process  the faster bare variant as `python -c ...`, timed from outside (start-up in)
  cli           `regmixd ingest f --out store`, timed from outside (start-up in)

With --rounds N, the in-process rows instead run in one process, round-robin (bare-read,
ingest, and ingest-before with --before), N rounds: on a noisy shared machine the versions
then see the same drift, which separate processes minutes apart do not. It prints the same
table (no peak memory: one process), saved as bench/results/ingest_round_robin.json.

With --before DIR (a checkout of another regmixd version, e.g. `git worktree add DIR REV`),
`ingest-before` runs the `ingest` measurement with that version's code, and `cli-before` its
command (`python -m regmixd_cli ingest ...`), interleaved with the others, so a change is
measured under the same machine load.

The floor is the faster bare variant; `ingest` is compared with it and `cli` with
`bare-process`: `ratio` is the ratio of the medians, `paired` the median of each repeat's
ratio to the floor's sample of the same repeat (the machine's speed drifts between repeats).
Peak RSS is the child's ru_maxrss, which counts the pages of a file polars maps (page cache,
shared and reclaimable: bare polars and ingest both map the log); peak anon is its largest
anonymous memory (RssAnon, sampled every 5 ms: the memory the work itself holds). CPU is its
user + system time over the same span (all threads). Medians over --repeats; the load average
of the (shared) machine is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS, AnonPeak, median, report  # noqa: E402

DOMAINS = ("arxiv", "freelaw", "nih_exporter", "pubmed_central", "wikipedia_en",
           "dm_mathematics", "github", "philpapers", "stackexchange", "enron_emails",
           "gutenberg_pg_19", "pile_cc", "ubuntu_irc", "europarl", "hackernews",
           "pubmed_abstracts", "uspto_backgrounds")
METRICS = (*(f"val/{d}" for d in DOMAINS), "train/loss")
STEPS = 1000
BLOCK = 8  # runs whose lines interleave

BARE = {
    "bare-read": "pl.read_ndjson(src).write_parquet(dst)",
    "bare-scan": "pl.scan_ndjson(src).collect().write_parquet(dst)",
}


def make_log(path: Path, size_bytes: int) -> int:
    """Write the JSONL; returns the number of runs."""
    import io

    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    written = n_runs = 0
    with open(path, "wb") as handle:
        while written < size_bytes:
            runs = [f"p{r:05d}" for r in range(n_runs, n_runs + BLOCK)]
            n_runs += BLOCK
            mixtures = rng.dirichlet(np.ones(len(DOMAINS)), size=BLOCK)
            head = "".join(
                json.dumps({"run": run, "mixture": dict(zip(DOMAINS, map(float, m), strict=True))})
                + "\n" for run, m in zip(runs, mixtures, strict=True)).encode()
            steps = np.repeat(np.arange(1, STEPS + 1) * 10, BLOCK)
            frame = pl.DataFrame({
                "run": runs * STEPS, "step": steps, "tokens": steps << 20,
                **{m: np.round(rng.uniform(2.0, 8.0, steps.size), 6) for m in METRICS},
            })
            body = io.BytesIO()
            frame.write_ndjson(body)
            handle.write(head)
            handle.write(body.getvalue())
            written += len(head) + body.getbuffer().nbytes
    return n_runs


# ---------------------------------------------------------------------------------------------
# Children: each measurement runs in a fresh process and prints {"seconds", "rss_mb"}.


def cpu_seconds(who: int) -> float:
    """User + system CPU time of this process (RUSAGE_SELF) or its waited-for children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, src: str, dst: str, bare: str) -> None:
    """Run one measurement in this (fresh) process; print its time, CPU time, peak RSS and
    peak anonymous memory."""
    who = resource.RUSAGE_SELF if mode in BARE or mode == "ingest" else resource.RUSAGE_CHILDREN
    cpu = cpu_seconds(who)
    if mode in BARE:
        import polars as pl

        cpu = cpu_seconds(who)
        anon = AnonPeak()
        start = time.perf_counter()
        eval(BARE[mode], {"pl": pl, "src": src, "dst": dst})  # noqa: S307 - fixed text above
        seconds = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elif mode == "ingest":
        # The libraries are imported before the clock starts, as polars is for the bare
        # variants (regmixd imports them lazily, inside the calls); the cli row times them.
        import numpy  # noqa: F401
        import polars  # noqa: F401
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        ingest = load_ingest(None)  # this process's regmixd (PYTHONPATH for ingest-before)
        cpu = cpu_seconds(who)
        anon = AnonPeak()
        start = time.perf_counter()
        ingest(src, dst)
        seconds = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    else:  # a command, timed from outside; RUSAGE_CHILDREN sees only that one process
        start = time.perf_counter()
        process = subprocess.Popen(command(mode, src, dst, bare), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        anon = AnonPeak(process.pid)
        if process.wait():
            raise subprocess.CalledProcessError(process.returncode, process.args)
        seconds = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_seconds(who) - cpu, "rss_mb": rss / 1024,
                      "anon_mb": anon.stop()}))


def command(mode: str, src: str, dst: str, bare: str) -> list[str]:
    """`regmixd ingest` (`cli`), the other checkout's (`cli-before`), or the bare variant
    `bare` as a `python -c` process."""
    if mode == "cli":
        return [str(Path(sys.executable).with_name("regmixd")), "ingest", src, "--out", dst]
    if mode == "cli-before":  # PYTHONPATH points at the other checkout (see `measure`); -P
        # keeps the working directory (maybe this checkout) off the front of the import path
        return [sys.executable, "-P", "-m", "regmixd_cli", "ingest", src, "--out", dst]
    code = f"import polars as pl; src, dst = {src!r}, {dst!r}; {BARE[bare]}"
    return [sys.executable, "-c", code]


def measure(mode: str, src: Path, work: Path, bare: str, before: str | None = None
            ) -> dict[str, float]:
    """One measurement in a fresh child process: {"seconds", "cpu_s", "rss_mb"}."""
    dst = work / mode.replace("-", "_")
    env = None
    if mode in ("ingest-before", "cli-before"):
        env = {**os.environ, "PYTHONPATH": str(Path(str(before)).resolve())}
        mode = "ingest" if mode == "ingest-before" else mode
    argv = [sys.executable, __file__, "--child", mode, str(src), str(dst), "--bare", bare]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(dst, ignore_errors=True)
    if dst.is_file():
        dst.unlink()
    return result


def load_ingest(code: str | None) -> Any:
    """`ingest(src, dst)` with the regmixd of checkout `code` (None: this one), its modules
    loaded apart from any other version's in this process."""
    import importlib

    for name in [n for n in sys.modules if n == "regmixd_cli" or n.startswith("regmixd_cli.")]:
        del sys.modules[name]
    if code is not None:
        sys.path.insert(0, str(Path(code).resolve()))
    try:
        files = importlib.import_module("regmixd_cli.store.files")
        ingest = importlib.import_module("regmixd_cli.store.ingest")
        readers = importlib.import_module("regmixd_cli.store.readers")
        spill = importlib.import_module("regmixd_cli.store.spill")
    finally:
        if code is not None:
            sys.path.pop(0)

    def run(src: str, dst: str) -> None:
        with files.open_store(Path(dst)) as draft:  # the same calls as `regmixd ingest`
            inputs = readers.read_inputs([src], spill=spill.Spill(draft.spill_dir))
            result = ingest.build_store(inputs.parsed, label=src,
                                        sink=draft.write_trajectories)
            draft.finish(result.store)

    return run


def round_robin(log: Path, work: Path, rounds: int, before: str | None) -> None:
    """bare-read, ingest (and ingest-before) alternating in this process, `rounds` times."""
    import polars as pl

    def bare(src: str, dst: str) -> None:
        pl.read_ndjson(src).write_parquet(dst)

    versions: dict[str, Any] = {"bare-read": bare, "ingest": load_ingest(None)}
    if before:
        versions["ingest-before"] = load_ingest(before)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    for i in range(rounds):
        for name, run in versions.items():
            dst = work / name.replace("-", "_")
            cpu = cpu_seconds(resource.RUSAGE_SELF)
            start = time.perf_counter()
            run(str(log), str(dst))
            samples[name].append((time.perf_counter() - start,
                                  cpu_seconds(resource.RUSAGE_SELF) - cpu))
            shutil.rmtree(dst, ignore_errors=True)
            if dst.is_file():
                dst.unlink()
        print(f"round {i + 1}/{rounds}: " + ", ".join(
            f"{n} {s[-1][0]:.2f} s" for n, s in samples.items()), file=sys.stderr)
    floor = [t for t, _ in samples["bare-read"]]
    floor_cpu = median([c for _, c in samples["bare-read"]])
    report("ingest_round_robin", [{
        "measurement": name,
        "median_s": median([t for t, _ in runs]),
        "ratio": median([t for t, _ in runs]) / median(floor),
        "paired": median([t / f for (t, _), f in zip(runs, floor, strict=True)]),
        "cpu_s": median([c for _, c in runs]),
        "cpu_ratio": median([c for _, c in runs]) / floor_cpu,
    } for name, runs in samples.items()],
        ["measurement", "median_s", "ratio", "paired", "cpu_s", "cpu_ratio"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1000.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", help="where to put the temporary file (default: system temp)")
    parser.add_argument("--before", help="another checkout whose ingest runs as ingest-before")
    parser.add_argument("--rounds", type=int,
                        help="in-process rows only, round-robin in one process, N rounds")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "DST"), help=argparse.SUPPRESS)
    parser.add_argument("--bare", default="bare-read", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.bare)
        return

    work = Path(tempfile.mkdtemp(prefix="regmixd-bench-ingest-", dir=args.dir))
    try:
        log = work / "log.jsonl"
        start = time.perf_counter()
        n_runs = make_log(log, int(args.size_mb * 1e6))
        size_mb = log.stat().st_size / 1e6
        print(f"generated {size_mb:.0f} MB ({n_runs} runs x {STEPS} steps x {len(METRICS)} "
              f"metrics) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if args.rounds:
            round_robin(log, work, args.rounds, args.before)
            return
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, float]]] = {}
        # Warm the page cache so no measurement pays for the first read from disk.
        measure("bare-read", log, work, "bare-read")
        for i in range(args.repeats):
            for mode in ("bare-read", "bare-scan", "ingest",
                         *(("ingest-before",) if args.before else ())):
                runs.setdefault(mode, []).append(
                    measure(mode, log, work, "bare-read", args.before))
            floor = min(BARE, key=lambda m: median([r["seconds"] for r in runs[m]]))
            for mode in ("bare-process", "cli", *(("cli-before",) if args.before else ())):
                runs.setdefault(mode, []).append(measure(mode, log, work, floor))
            print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(
                f"{m} {r[-1]['seconds']:.2f} s" for m, r in runs.items()), file=sys.stderr)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    seconds = {m: median([r["seconds"] for r in rs]) for m, rs in runs.items()}
    cpu = {m: median([r["cpu_s"] for r in rs]) for m, rs in runs.items()}
    floor = min(BARE, key=lambda m: seconds[m])
    base = {"bare-read": floor, "bare-scan": floor, "ingest": floor, "ingest-before": floor,
            "bare-process": "bare-process", "cli": "bare-process", "cli-before": "bare-process"}
    rows = [{
        "measurement": m,
        "median_s": seconds[m],
        "min_s": min(r["seconds"] for r in rs),
        "max_s": max(r["seconds"] for r in rs),
        "vs": base[m],
        "ratio": seconds[m] / seconds[base[m]],
        # each repeat against its own baseline sample (same repeat, minutes apart at most):
        # steadier than the ratio of medians when the machine's speed drifts
        "paired": median([r["seconds"] / b["seconds"] for r, b in zip(rs, runs[base[m]],
                                                                      strict=True)]),
        "cpu_s": cpu[m],
        "cpu_ratio": cpu[m] / cpu[base[m]],
        "peak_rss_mb": median([r["rss_mb"] for r in rs]),
        "rss_vs_file": median([r["rss_mb"] for r in rs]) / size_mb,
        "peak_anon_mb": median([r["anon_mb"] for r in rs]),
    } for m, rs in runs.items()]
    print(f"\nfile {size_mb:.0f} MB, {n_runs} runs, median of {args.repeats}; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)\n")
    report("ingest", rows, ["measurement", "median_s", "min_s", "max_s", "vs", "ratio", "paired",
                            "cpu_s", "cpu_ratio", "peak_rss_mb", "rss_vs_file", "peak_anon_mb"])
    path = RESULTS / "ingest.json"
    payload = json.loads(path.read_text())
    payload.update({
        "command": "python bench/ingest.py " + " ".join(sys.argv[1:]),
        "file_mb": round(size_mb, 1), "n_runs": n_runs, "steps": STEPS,
        "metrics": len(METRICS), "repeats": args.repeats, "floor": floor,
        "before": args.before,
        "loadavg_before": load_before, "loadavg_after": load_after, "cpus": os.cpu_count(),
        "samples": runs,
    })
    path.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
