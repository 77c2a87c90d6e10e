"""`Value`: the base of every tensor-like thing ops can be applied to.

A concrete spec tensor, an eager tensor on a tape and a symbolic IR value are all
Values: each says how to apply an op record (`_apply`) and how to lift a constant
(`_lift`), the `Operand` protocol the op registry reads; the arithmetic operators and
methods below are shared and go through the op table (`primitives`), so a VJP rule
written with them works in every context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Self

from . import primitives as F
from .operand import Operand
from .shapes import size_of

if TYPE_CHECKING:
    from typing_extensions import TypeVar  # PEP 696 defaults (typing has them from 3.13)

    # The static shape type of a value (`Vec[Literal[8]]`, see torchlean.spec.nn): a phantom
    # that only mypy sees. Its default is Any, so a bare `Value`/`Tensor` is untyped and
    # fits everywhere; it is invariant, so two typed values agree only when equal.
    ShapeT = TypeVar("ShapeT", default=Any)
else:
    from typing import TypeVar

    ShapeT = TypeVar("ShapeT")

__all__ = ["Value", "ShapeT"]

Other = Any  # a Value of the same kind, or a plain number


class Value(Operand, Generic[ShapeT]):
    """A tensor-shaped value in some evaluation context (concrete, taped or symbolic).

    `Value[S]` also carries a static shape type S for mypy only (nothing at run time).
    """

    __slots__ = ()
    # Make NumPy defer to our reflected operators (ndarray * Value -> Value.__rmul__).
    __array_ufunc__ = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return size_of(self.shape)

    def __bool__(self) -> bool:
        raise TypeError(
            "a tensor has no truth value: branching on data cannot be traced or verified; "
            "use functional.where / maximum, or .item() on a concrete tensor"
        )

    # -- arithmetic ---------------------------------------------------------
    def __add__(self, other: Other) -> Self:
        return F.add(self, other)

    def __radd__(self, other: Other) -> Self:
        return F.add(self._lift(other), self)

    def __sub__(self, other: Other) -> Self:
        return F.sub(self, other)

    def __rsub__(self, other: Other) -> Self:
        return F.sub(self._lift(other), self)

    def __mul__(self, other: Other) -> Self:
        return F.mul(self, other)

    def __rmul__(self, other: Other) -> Self:
        return F.mul(self._lift(other), self)

    def __truediv__(self, other: Other) -> Self:
        return F.div(self, other)

    def __rtruediv__(self, other: Other) -> Self:
        return F.div(self._lift(other), self)

    def __neg__(self) -> Self:
        return F.neg(self)

    def __matmul__(self, other: Self) -> Self:
        return F.matmul(self, other)

    def __pow__(self, exponent: int) -> Self:
        return F.power(self, exponent)

    def __getitem__(self, index: Any) -> Self:
        return F.getitem(self, index)

    # -- methods ------------------------------------------------------------
    def reshape(self, *shape: int | tuple[int, ...]) -> Self:
        dims = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return F.reshape(self, dims)  # type: ignore[arg-type]

    def transpose(self, *axes: int) -> Self:
        return F.transpose(self, axes or None)

    @property
    def T(self) -> Self:
        return F.transpose(self, None)

    @property
    def mT(self) -> Self:
        return F.swap_last(self)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Self:
        return F.sum(self, axis, keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Self:
        return F.mean(self, axis, keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Self:
        return F.max(self, axis, keepdims)

