"""Start-up cost of `regmixd --help` and `regmixd --version` vs a bare `python -c pass`.

Run: python bench/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import shutil
import sys

from _harness import median, report, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    exe = shutil.which("regmixd")
    if exe is None:
        sys.exit("regmixd is not on PATH; pip install . first")
    bare = median(time_command([sys.executable, "-c", "pass"], args.repeats))
    rows = []
    for argv in (["--help"], ["--version"]):
        t = median(time_command([exe, *argv], args.repeats))
        rows.append(
            {"command": "regmixd " + " ".join(argv), "median_s": t, "python_startup_s": bare,
             "target_s": 0.5, "meets": "yes" if t < 0.5 else "NO"}
        )
    report("startup", rows, ["command", "median_s", "python_startup_s", "target_s", "meets"])


if __name__ == "__main__":
    main()
