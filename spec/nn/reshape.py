"""`flatten()` and `reshape(*shape)`: change the per-example shape, keeping axis 0 (the
batch axis), as PyTorch's nn.Flatten() and nn.Unflatten(1, shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from .. import functional as F
from ..errors import ShapeError
from ..shapes import Shape, size_of
from ..value import Value
from .checks import positive_int
from .layer import Layer, Scope
from .shapetypes import Chw, K, M, Mat, N, Vec

__all__ = ["Flatten", "Reshape", "flatten", "reshape"]

V = TypeVar("V", bound=Value)
Out = TypeVar("Out", covariant=True)


@dataclass(frozen=True, slots=True, repr=False)
class Flatten(Layer[Any, Vec[Any]]):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def describe(self) -> str:
        return "flatten"

    def forward(self, x: V, scope: Scope[V]) -> V:
        if x.ndim < 2:
            raise ShapeError(
                f"{scope.where(self)}: expected input (batch, ...) of rank >= 2, got {x.shape}"
            )
        return F.reshape(x, (x.shape[0], size_of(x.shape[1:])))

    def output_width(self, width: int | None) -> int | None:
        return None

    def __repr__(self) -> str:
        return "flatten()"


@dataclass(frozen=True, slots=True, repr=False)
class Reshape(Layer[Any, Out], Generic[Out]):
    """(batch, ...) -> (batch, *shape), with the same number of elements per example."""

    shape: Shape

    def __post_init__(self) -> None:
        where = f"reshape{self.shape!r}"
        if not isinstance(self.shape, tuple) or not self.shape:
            raise ValueError(f"{where}: needs at least one dim")
        for i, d in enumerate(self.shape):
            positive_int(where, f"dim {i}", d)

    def describe(self) -> str:
        return f"reshape {self.shape}"

    def forward(self, x: V, scope: Scope[V]) -> V:
        if x.ndim < 1 or size_of(x.shape[1:]) != size_of(self.shape):
            raise ShapeError(
                f"{scope.where(self)}: cannot reshape an input {x.shape} to (batch, "
                f"{', '.join(map(str, self.shape))}): {size_of(self.shape)} elements per "
                "example needed"
            )
        return F.reshape(x, (x.shape[0], *self.shape))

    def output_width(self, width: int | None) -> int | None:
        return self.shape[-1]

    def __repr__(self) -> str:
        return f"reshape({', '.join(map(str, self.shape))})"


def flatten() -> Flatten:
    """Flatten every axis after the batch axis: (batch, ...) -> (batch, n) (nn.Flatten()).

    Static type `Layer[Any, Vec[Any]]`: the flattened size is not known to mypy.
    """
    return Flatten()


@overload
def reshape(n: N, /) -> Reshape[Vec[N]]: ...
@overload
def reshape(m: M, n: N, /) -> Reshape[Mat[M, N]]: ...
@overload
def reshape(c: K, h: M, w: N, /) -> Reshape[Chw[K, M, N]]: ...
@overload
def reshape(*shape: int) -> Reshape[Any]: ...
def reshape(*shape: int) -> Reshape[Any]:
    """Reshape each example: (batch, ...) -> (batch, *shape) (nn.Unflatten(1, shape)).

    Dims are positive ints (ValueError otherwise); the static output type is Vec, Mat or
    Chw of the given dims for one, two or three dims.
    """
    return Reshape(tuple(shape))
