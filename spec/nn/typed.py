"""Stating a concrete tensor's static shape type, checked at run time: `shaped(x, 2)`.

`shaped(x, 8)` is `x` typed `Tensor[Vec[Literal[8]]]` after checking that its last axis
has size 8 (ShapeError otherwise); `shaped(x, 3, 4)` gives a `Mat`, `shaped(x, c, h, w)`
a `Chw`, and `shaped(x)` a `Scalar` (any batch shape). An annotation
(`x: Tensor[Vec[Literal[8]]] = tl.tensor(...)`) states the same thing unchecked.
"""

from __future__ import annotations

from typing import Any, overload

from ..errors import ShapeError
from ..tensor import Tensor
from .shapetypes import Chw, K, M, Mat, N, Scalar, Vec

__all__ = ["shaped", "untyped"]


@overload
def shaped(x: Tensor, /) -> Tensor[Scalar]: ...
@overload
def shaped(x: Tensor, n: N, /) -> Tensor[Vec[N]]: ...
@overload
def shaped(x: Tensor, m: M, n: N, /) -> Tensor[Mat[M, N]]: ...
@overload
def shaped(x: Tensor, c: K, h: M, w: N, /) -> Tensor[Chw[K, M, N]]: ...
def shaped(x: Tensor, /, *dims: int) -> Tensor[Any]:
    """`x`, typed with the trailing dims `dims`, after checking them (ShapeError if not)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"shaped: expected a Tensor, got {type(x).__name__}")
    if len(dims) > x.ndim or tuple(x.shape[x.ndim - len(dims) :]) != dims:
        want = "(..., " + ", ".join(map(str, dims)) + ")"
        raise ShapeError(f"shaped: expected a tensor of shape {want}, got {x.shape}")
    return x


def untyped(x: Tensor[Any]) -> Tensor:
    """`x` with its static shape type dropped (after ops that changed the shape)."""
    return x
