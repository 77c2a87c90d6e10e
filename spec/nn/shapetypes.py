"""Static shape types: what mypy knows about the shape of a layer's input and output.

`Vec[N]` is a tensor of shape (..., N), `Mat[M, N]` of shape (..., M, N), `Chw[C, H, W]`
of shape (..., C, H, W) and `Scalar` of shape (...,): the trailing (feature) dims are
typed, the leading batch dims stay generic. Dims are `Literal` ints where the model
writes literals and `int` where a size is only known at run time. These classes are
never instantiated; they exist for type annotations such as `Tensor[Vec[Literal[8]]]`.

The dim TypeVars are bound to `Literal[1] | int`: mypy infers a literal type for an
argument whose expected type is a TypeVar bounded by a Literal (or a union holding one),
so `linear(2, 8)` gets the type `Linear[Literal[2], Literal[8]]`; with `bound=int` it
would widen both to `int` and every check below would become vacuous.
"""

from __future__ import annotations

from typing import Generic, Literal, NoReturn, TypeVar

__all__ = ["Vec", "Mat", "Chw", "Scalar", "N", "M", "K", "Dim"]

Dim = Literal[1] | int  # the bound that keeps literal dims literal (see the module docstring)

# Dims of a constructor call (`linear(i, o)`, `reshape(m, n)`): literal where written so.
N = TypeVar("N", bound=Dim)
M = TypeVar("M", bound=Dim)
K = TypeVar("K", bound=Dim)

# Dims inside a shape type. Covariant, so a literal dim fits where a run-time `int` one
# is expected (Vec[Literal[8]] is a Vec[int]) and not the other way round.
_N = TypeVar("_N", bound=int, covariant=True)
_M = TypeVar("_M", bound=int, covariant=True)
_K = TypeVar("_K", bound=int, covariant=True)


class _ShapeType:
    """Base of the static shape types; only mypy ever sees these."""

    __slots__ = ()

    def __init__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is a static shape type, not a value")


class Scalar(_ShapeType):
    """Shape (...,): one number per example (labels, per-example losses, a reduced loss)."""

    __slots__ = ()


class Vec(_ShapeType, Generic[_N]):
    """Shape (..., N): a feature vector of N per example."""

    __slots__ = ()


class Mat(_ShapeType, Generic[_M, _N]):
    """Shape (..., M, N): an M x N matrix per example."""

    __slots__ = ()


class Chw(_ShapeType, Generic[_K, _M, _N]):
    """Shape (..., C, H, W): a C-channel H x W image per example."""

    __slots__ = ()
