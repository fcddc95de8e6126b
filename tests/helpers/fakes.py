"""What stand-in models of one target share with FittedModel: the state is the loss."""

from __future__ import annotations

from typing import Any


class OneTarget:
    """Mix into a stand-in model with `target`, `initial_loss` and `predict_transition`."""

    target: str
    initial_loss: float

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.target,)

    @property
    def initial_state(self) -> float:
        return self.initial_loss

    def predict_state(self, stage: int, mixtures: Any, state: Any) -> Any:
        return self.predict_transition(stage, mixtures, state)  # type: ignore[attr-defined]

    def objective_of(self, state: Any) -> Any:
        return state
