"""Where the repository, the bundled sample logs and the real RegMix data are."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_LOGS = ROOT / "sample_logs"


def regmix_data_dir() -> Path:
    """Where the RegMix CSVs live: $REGMIXD_REGMIX_DATA or ../shared/external/regmix/data."""
    env = os.environ.get("REGMIXD_REGMIX_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "external" / "regmix" / "data"

# The bundled proxy sweep: 64 runs' logs, their prior and the synthetic world behind them.
PROXIES = SAMPLE_LOGS / "proxies"
PROXY_LOGS = PROXIES / "logs"
PROXY_PRIOR = PROXIES / "prior.json"
PROXY_WORLD = PROXIES / "world.json"
