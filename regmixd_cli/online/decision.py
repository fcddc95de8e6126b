"""One online decision: the mixture for the next segment of a live run, and what it rests on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Decision:
    """One online decision: the mixture for the segment that starts at switch point `switch`.

    `step`/`loss` are what the run reported; `proxy_step` is its image s on the proxy time
    axis; `corrected_loss` is the loss mapped to the proxy scale; `predicted_loss` is the
    model's loss at the next interval end (proxy scale) for `weights`, and
    `predicted_target_loss` the same mapped back to the run's scale.
    """

    switch: int
    start_step: int
    end_step: int
    step: int
    proxy_step: float
    loss: float
    corrected_loss: float
    weights: Mapping[str, float]
    predicted_loss: float
    predicted_target_loss: float
    warnings: tuple[str, ...] = ()
    # A model of several targets: each target's observed and corrected loss (`loss` and
    # `corrected_loss` are then the objective over them); None for one target.
    losses: Mapping[str, float] | None = None
    corrected_losses: Mapping[str, float] | None = None
    predicted_losses: Mapping[str, float] | None = None  # each target's, proxy scale

    def to_json(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (the line `--follow` writes, and `--json`)."""
        targets = {} if self.losses is None or self.corrected_losses is None else {
            "losses": dict(self.losses), "corrected_losses": dict(self.corrected_losses)}
        if self.predicted_losses is not None:
            targets["predicted_losses"] = dict(self.predicted_losses)
        return targets | {
            "switch": self.switch,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "step": self.step,
            "proxy_step": self.proxy_step,
            "loss": self.loss,
            "corrected_loss": self.corrected_loss,
            "weights": dict(self.weights),
            "predicted_loss": self.predicted_loss,
            "predicted_target_loss": self.predicted_target_loss,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        """Inverse of `to_json` (raises KeyError/TypeError/ValueError on a malformed dict)."""
        return cls(
            switch=int(data["switch"]),
            start_step=int(data["start_step"]),
            end_step=int(data["end_step"]),
            step=int(data["step"]),
            proxy_step=float(data["proxy_step"]),
            loss=float(data["loss"]),
            corrected_loss=float(data["corrected_loss"]),
            weights={str(k): float(v) for k, v in dict(data["weights"]).items()},
            predicted_loss=float(data["predicted_loss"]),
            predicted_target_loss=float(data["predicted_target_loss"]),
            warnings=tuple(str(w) for w in data.get("warnings", ())),
            losses=_losses(data.get("losses")),
            corrected_losses=_losses(data.get("corrected_losses")),
            predicted_losses=_losses(data.get("predicted_losses")),
        )


def _losses(data: Any) -> dict[str, float] | None:
    return None if data is None else {str(k): float(v) for k, v in dict(data).items()}
