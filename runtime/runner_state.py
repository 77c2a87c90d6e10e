"""`RunnerState`: a runner's whole training state as one immutable value.

This is the one public shape of what a runner holds and a checkpoint stores: the
parameters and buffers by name, the step and mode, and (optionally) the optimizer's
identity and state. `Runner.state()` gives it, `Runner.set_state` takes it, and
`checkpoint` writes and reads it without knowing anything about runners, so runner and
checkpoint do not import each other both ways.

`structure` and `fingerprint` describe a built model by what matters for its state (its
layers, and its parameter and buffer names and shapes), not by object identity: two
`nn.build` calls of the same description agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..spec.fields import Field
from ..spec.nn import Built, Mode
from ..spec.tensor import Tensor
from .optim import OptState

__all__ = ["RunnerState", "SavedOptimizer", "structure", "fingerprint"]


@dataclass(frozen=True)
class SavedOptimizer:
    """An optimizer's state with the optimizer it belongs to (`name` is its repr, e.g.
    "adam(lr=0.03, ...)"; state is adopted only by an optimizer of the same repr)."""

    name: str
    state: OptState[Tensor]


@dataclass(frozen=True)
class RunnerState:
    """Everything a training run needs to continue: parameters and buffers (names in model
    order), the number of updates done, the mode, and optionally the optimizer state.

    `fingerprint` names the model structure the state belongs to (see `fingerprint`);
    every tensor is of `field`."""

    fingerprint: str
    field: Field
    params: Mapping[str, Tensor]
    buffers: Mapping[str, Tensor]
    step: int
    mode: Mode
    optimizer: SavedOptimizer | None = None


def structure(model: Built[Any, Any]) -> str:
    """A text naming a built model's structure: its layer description and its parameter
    and buffer names and shapes (not their values, nor the field)."""
    return (
        repr(model.model)
        + "|"
        + "|".join(
            f"{kind}:{name}:{t.shape}"
            for kind, state in (("p", model.params), ("b", model.buffers))
            for name, t in state.items()
        )
    )


def fingerprint(model: Built[Any, Any]) -> str:
    """A hash of `structure(model)`: equal for models whose state is interchangeable."""
    return hashlib.sha256(structure(model).encode()).hexdigest()
