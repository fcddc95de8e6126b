"""regmixd: data-mixture schedules for LLM pretraining from proxy-run trajectories (RegMix-D).

The package is laid out along the pipeline, logs -> store -> model -> plan -> trainer:

- `store/`  reads proxy-run logs (`store/readers/`, one module per format) into a store;
- `fit/`    turns a store into transition rows and fits the XGBoost models;
- `plan/`   searches the mixture simplex for a schedule, under constraints, and exports it;
- `online/` steers a live run with a fitted model;
- `sim/`    synthetic worlds with a known truth, their oracle, and proxy designs;
- `cli/`    one module per command.

Shared by all of them: `domain` (values and column names), `weights` (mixture weights and
the prior), `files` (atomic writes, JSON, hashes) and `errors`. A stage imports only the
stages before it; `tests/test_layers.py` and the import-linter contracts in pyproject.toml
keep it that way.
"""

from regmixd_cli._version import __version__

__all__ = ["__version__"]
