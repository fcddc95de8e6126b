"""RegMix's regression accuracy on its own published proxy runs, for every loss column.

For each of the 13 validation losses as target: `regmixd fit` on the 512 training proxies
(default settings; early stopping on a split of them), then `regmixd evaluate` on the 256
held-out test proxies. Prints CV rho (training runs) and test rho / Pearson r / MAE / top-10;
then the same for the objectives over all 13 losses (`fit --target 'val/*' --objective
mean|worst`).
The paper (RegMix, 1M proxies, Pile-CC): LightGBM 0.9845, linear regression 0.9008.

Run: python bench/regmix_accuracy.py [--data ../shared/external/regmix/data]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(
    os.environ.get("REGMIXD_REGMIX_DATA", ROOT.parent / "shared" / "external" / "regmix" / "data")
)


def regmixd(*args: str | Path) -> str:
    """Run the CLI; return stdout."""
    argv = [sys.executable, "-m", "regmixd_cli", *map(str, args)]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for split in ("train", "test"):
            regmixd(
                "ingest", args.data / f"{split}_mixture_1m.csv",
                args.data / f"{split}_pile_loss_1m.csv", "--out", work / split,
            )  # fmt: skip
        metrics = json.loads((work / "train" / "manifest.json").read_text())["metrics"]
        for target in metrics:
            start = time.perf_counter()
            fit = json.loads(
                regmixd("fit", work / "train", "--out", work / "m", "--target", target, "--json")
            )
            seconds = time.perf_counter() - start
            test = json.loads(regmixd("evaluate", work / "m", work / "test", "--json"))["endpoint"]
            rows.append({
                "target": target,
                "cv_rho": fit["endpoint"]["endpoint"]["spearman"],
                "test_rho": test["spearman"],
                "test_pearson": test["pearson"],
                "test_mae": test["mae"],
                "top10": test["top_k_overlap"],
                "rounds": fit["final_rounds"]["endpoint"],
                "fit_s": round(seconds, 2),
            })  # fmt: skip
        # The objectives over all 13 losses (one regressor per loss, folded by the objective).
        for kind in ("mean", "worst"):
            start = time.perf_counter()
            fit = json.loads(regmixd("fit", work / "train", "--out", work / kind, "--target",
                                     "val/*", "--objective", kind, "--json"))
            seconds = time.perf_counter() - start
            test = json.loads(regmixd("evaluate", work / kind, work / "test", "--json"))
            rows.append({
                "target": f"{kind} of all {len(metrics)}",
                "cv_rho": fit["endpoint"]["endpoint"]["spearman"],
                "test_rho": test["endpoint"]["spearman"],
                "test_pearson": test["endpoint"]["pearson"],
                "test_mae": test["endpoint"]["mae"],
                "top10": test["endpoint"]["top_k_overlap"],
                "rounds": "-",
                "fit_s": round(seconds, 2),
            })  # fmt: skip
    columns = [
        "target",
        "cv_rho",
        "test_rho",
        "test_pearson",
        "test_mae",
        "top10",
        "rounds",
        "fit_s",
    ]
    report("regmix_accuracy", rows, columns)


if __name__ == "__main__":
    main()
