"""regmixd: data-mixture schedules for LLM pretraining from proxy-run trajectories (RegMix-D)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
