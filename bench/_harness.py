"""Tiny benchmark harness: repeat, take medians, compare with a baseline in the same run.

Benchmarks print a table on stdout and write JSON to bench/results/<name>.json. They never
assert a wall-clock time; the ratios they report are what the README quotes.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def time_call(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall times of `repeats` calls of fn."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_command(argv: Sequence[str], repeats: int) -> list[float]:
    """Wall times of `repeats` runs of a command (stdout/stderr discarded)."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return time_call(lambda: subprocess.run(argv, check=True, **quiet), repeats)


def median(values: Sequence[float]) -> float:
    """Median of a sequence."""
    return float(statistics.median(values))


def report(name: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as a Markdown table and save them with machine facts as JSON."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = (_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("| " + " | ".join(cells) + " |")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "rows": rows,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


class AnonPeak:
    """The largest anonymous resident memory (RssAnon: not the mapped input or libraries) a
    process reached, sampled every 5 ms in a thread: peak RSS counts the pages of a file
    polars maps, which are page cache, shared and reclaimable."""

    def __init__(self, pid: int | str = "self") -> None:
        self.status = f"/proc/{pid}/status"
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.005)

    def sample(self) -> None:
        try:
            with open(self.status) as handle:
                for line in handle:
                    if line.startswith("RssAnon:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
        except OSError:
            pass  # the process has ended (or there is no /proc)

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)
