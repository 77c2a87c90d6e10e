"""Shape-preserving layers without parameters: activations and (log-)softmax.

Each is a `SameShape` layer, so it fits between any two layers whose shapes agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from .. import functional as F
from ..errors import ShapeError
from ..ops.registry import apply
from ..value import Value
from .checks import call_text, real_number
from .layer import SameShape, Scope

__all__ = [
    "Activation", "LeakyReLU", "Softmax", "relu", "leaky_relu", "sigmoid", "tanh", "gelu",
    "silu", "softmax", "log_softmax",
]

V = TypeVar("V", bound=Value)
# Each name is also the tag of the unary op that computes it.
ActivationName = Literal["relu", "sigmoid", "tanh", "gelu", "silu"]


@dataclass(frozen=True, slots=True, repr=False)
class Activation(SameShape):
    """An elementwise activation: the unary op of the same name ("relu", "tanh", ...)."""

    name: ActivationName

    def __post_init__(self) -> None:
        if self.name not in get_args(ActivationName):
            known = ", ".join(get_args(ActivationName))
            raise ValueError(f"activation: unknown name {self.name!r}; known: {known}")

    def describe(self) -> str:
        return self.name

    def forward(self, x: V, scope: Scope[V]) -> V:
        return apply(self.name, x)

    def __repr__(self) -> str:
        return f"{self.name}()"


@dataclass(frozen=True, slots=True, repr=False)
class LeakyReLU(SameShape):
    """x where x > 0, else negative_slope * x (PyTorch's nn.LeakyReLU)."""

    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        where = call_text("leaky_relu", negative_slope=self.negative_slope)
        real_number(where, "negative_slope", self.negative_slope)

    def describe(self) -> str:
        return f"leaky_relu {self.negative_slope}"

    def forward(self, x: V, scope: Scope[V]) -> V:
        return F.leaky_relu(x, self.negative_slope)

    def __repr__(self) -> str:
        return f"leaky_relu({self.negative_slope!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Softmax(SameShape):
    """softmax (or log_softmax when `log`) along `axis`."""

    axis: int = -1
    log: bool = False

    def __post_init__(self) -> None:
        kind = "log_softmax" if self.log else "softmax"
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise ValueError(f"{call_text(kind, axis=self.axis)}: axis must be an int")

    def describe(self) -> str:
        return f"{'log_softmax' if self.log else 'softmax'} axis={self.axis}"

    def forward(self, x: V, scope: Scope[V]) -> V:
        if not -x.ndim <= self.axis < x.ndim:
            raise ShapeError(
                f"{scope.where(self)}: axis {self.axis} is out of range for an input of shape "
                f"{x.shape}"
            )
        return F.log_softmax(x, self.axis) if self.log else F.softmax(x, self.axis)

    def __repr__(self) -> str:
        return f"{'log_softmax' if self.log else 'softmax'}(axis={self.axis})"


def relu() -> Activation:
    """max(x, 0), elementwise (its derivative at 0 is taken as 0)."""
    return Activation("relu")


def leaky_relu(negative_slope: float = 0.01) -> LeakyReLU:
    """x where x > 0, else negative_slope * x; a non-finite slope raises ValueError."""
    return LeakyReLU(negative_slope)


def sigmoid() -> Activation:
    """1 / (1 + exp(-x)), elementwise."""
    return Activation("sigmoid")


def tanh() -> Activation:
    """tanh(x), elementwise."""
    return Activation("tanh")


def gelu() -> Activation:
    """x * Phi(x), the exact (erf) GELU, as PyTorch's default nn.GELU()."""
    return Activation("gelu")


def silu() -> Activation:
    """x * sigmoid(x), elementwise."""
    return Activation("silu")


def softmax(axis: int = -1) -> Softmax:
    """softmax along `axis` (the last by default)."""
    return Softmax(axis, log=False)


def log_softmax(axis: int = -1) -> Softmax:
    """log(softmax(x)) along `axis`, computed stably by its own op."""
    return Softmax(axis, log=True)
