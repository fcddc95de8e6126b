"""The state file of `online --follow`: decisions so far, and the settings they were made with.

A restarted watcher reads it back and must decide exactly as the first one did, so every
setting that shapes a decision is pinned and checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.files import read_json, write_json
from regmixd_cli.online.controller import Decision, OnlineController

STATE_SCHEMA = "regmixd.online-state/v1"


# The settings a state file pins: a restarted watcher must decide exactly as the first one did.
PINNED = (
    "model",
    "target_steps",
    "metric",
    "param_ratio",
    "beta",
    "prior",
    "candidates",
    "top_k",
    "alpha",
    "seed",
    "constraints",
)


def state_settings(controller: OnlineController, metric: str) -> dict[str, Any]:
    """The pinned settings of a watcher, as a state file records them."""
    provenance = controller.provenance()
    return {
        "model": provenance["model"],
        "target_steps": controller.target_steps,
        "metric": metric,
        **{key: provenance.get(key) for key in PINNED[3:]},
    }


def load_state(path: Path, settings: dict[str, Any]) -> list[Decision]:
    """Decisions of an earlier watcher of the same run; settings must match exactly."""
    if not path.exists():
        return []
    data = read_json(path, "online state file")
    if not isinstance(data, dict) or data.get("schema_version") != STATE_SCHEMA:
        raise InputError(f"{path}: not a regmixd online state file ({STATE_SCHEMA})")
    recorded = data.get("settings", {})
    for key in PINNED:
        if recorded.get(key) != settings[key]:
            raise UsageError(
                f"{path}: written with {key} = {recorded.get(key)!r}, now {settings[key]!r}; "
                "rerun with the original options, or use a new --state file"
            )
    try:
        return [Decision.from_json(d) for d in data["decisions"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed decision ({exc.__class__.__name__}: {exc})") from None


def save_state(path: Path, settings: dict[str, Any], controller: OnlineController) -> None:
    """Write the decisions so far, atomically."""
    write_json(
        path,
        {
            "schema_version": STATE_SCHEMA,
            "settings": settings,
            "decisions": [d.to_json() for d in controller.decisions],
        },
    )
