"""The state file of `online --follow`: decisions so far, and the settings they were made with.

A restarted watcher reads it back and must decide exactly as the first one did, so every
setting that shapes a decision is pinned and checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from regmixd_cli.errors import InputError, UsageError
from regmixd_cli.files import read_json, write_json
from regmixd_cli.online.controller import OnlineController
from regmixd_cli.online.decision import Decision

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


def load_state(
    path: Path, settings: dict[str, Any], controller: OnlineController | None = None
) -> list[Decision]:
    """Decisions of an earlier watcher of the same run; settings must match exactly, and with
    `controller` every decision must be one it could have made (its domains, its switch
    steps, finite losses, weights on the simplex): a hand-edited file is refused (exit 3)."""
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
                "rerun with the original options, or use a new ``state`` file"
            )
    try:
        decisions = [Decision.from_json(d) for d in data["decisions"]]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{path}: malformed decision ({exc.__class__.__name__}: {exc})") from None
    if controller is not None:
        for i, decision in enumerate(decisions):
            problem = _decision_problem(decision, i, controller)
            if problem:
                raise InputError(f"{path}: decisions[{i}]: {problem} (edited by hand?); use a "
                                 "new ``state`` file")
    return decisions


def _decision_problem(decision: Decision, i: int, controller: OnlineController) -> str:
    """What makes a restored decision one this watcher could not have made ('' if none)."""
    steps = controller.switch_steps
    numbers = (decision.loss, decision.corrected_loss, decision.proxy_step,
               decision.predicted_loss, decision.predicted_target_loss)
    weights = decision.weights
    if decision.switch != i + 1 or decision.switch > len(steps):
        return f"switch {decision.switch} is not switch point {i + 1} of {len(steps)}"
    if decision.start_step != steps[i]:
        return f"start_step {decision.start_step} is not the switch step {steps[i]}"
    # The observed losses are positive; an objective over them need not be (an excess loss).
    observed = decision.losses.values() if decision.losses else (decision.loss,)
    if not all(math.isfinite(x) for x in numbers) or min(observed) <= 0:
        return "a loss or step is not a finite positive number"
    if set(weights) != set(controller.model.domains):
        return "its weights do not name exactly the model's domains"
    if (not all(math.isfinite(w) and w >= 0 for w in weights.values())
            or abs(sum(weights.values()) - 1) > 1e-6):
        return "its weights are not a mixture (non-negative, sum 1)"
    return ""


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
