"""`dropout(p)`: inverted dropout with masks drawn reproducibly from an explicit key.

In train mode each element is kept with probability 1 - p and scaled by 1 / (1 - p)
(PyTorch's nn.Dropout); in eval mode the layer is the identity. The keep-mask of a layer
is a pure function of (key, layer path, input shape, p), so a training step is
reproducible from its key, and two dropout layers in one model draw independent masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from ..shapes import Shape
from ..value import Value
from .checks import call_text, real_number
from .draws import DROPOUT, check_seed, uniform01
from .layer import SameShape, Scope

__all__ = ["Dropout", "dropout", "dropout_mask"]

V = TypeVar("V", bound=Value)


def dropout_mask(key: int, path: str, shape: Shape, p: float) -> np.ndarray[Any, Any]:
    """The keep-mask (True = kept) of the dropout layer at `path` for an input of `shape`.

    Each element is kept with probability 1 - p; the mask depends only on the arguments.
    """
    u = uniform01(check_seed(key, "dropout key"), path, DROPOUT, shape)
    return u >= float(p)


@dataclass(frozen=True, slots=True, repr=False)
class Dropout(SameShape):
    """Inverted dropout with drop probability p in [0, 1)."""

    p: float = 0.5

    def __post_init__(self) -> None:
        where = call_text("dropout", p=self.p)
        q = real_number(where, "p", self.p)
        if not 0 <= q < 1:
            raise ValueError(f"{where}: p must be in [0, 1), got {self.p!r}")

    def describe(self) -> str:
        return f"dropout p={self.p}"

    def forward(self, x: V, scope: Scope[V]) -> V:
        if scope.ctx.mode == "eval" or self.p == 0:
            return x
        key = scope.ctx.key
        if key is None:
            raise ValueError(
                f"{scope.where(self)}: train mode needs a key to draw the dropout mask "
                "(pass key=<int>, e.g. the step number, or use mode='eval')"
            )
        keep = dropout_mask(key, scope.path, x.shape, self.p)
        mask = scope.ctx.constant(x, scope.qualify("mask"), keep.astype(np.float64))
        # The scale 1 / (1 - p) is formed exactly, then rounded (or kept) by the field.
        return x * mask * (1 / (1 - Fraction(self.p)))

    def __repr__(self) -> str:
        return f"dropout({self.p!r})"


def dropout(p: float = 0.5) -> Dropout:
    """Inverted dropout (PyTorch's nn.Dropout): in train mode keep each element with
    probability 1 - p and scale by 1 / (1 - p); identity in eval mode. p outside [0, 1)
    raises ValueError. Train mode needs an integer key (see `dropout_mask`)."""
    return Dropout(p)
