"""regmixd: data-mixture schedules for LLM pretraining from proxy-run trajectories (RegMix-D)."""

__version__ = "0.1.0"

# Light: online.py imports no numpy at module level, so `regmixd --help` stays instant.
from regmixd_cli.online import OnlineController  # noqa: E402

__all__ = ["OnlineController", "__version__"]
