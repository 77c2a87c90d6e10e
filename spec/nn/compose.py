"""Composition: `sequential(...)`, `a >> b` and `residual(block)`.

`sequential(l0, ..., ln)` has one overload per length up to 16 layers, each chaining the
shape types (`Fits0[T0, T1], Fits1[T1, T2], ...`: a Layer, or a shape-preserving layer at
that position, see `positions`), so mypy rejects neighbours whose shapes differ; longer
chains fall back to an unchecked `Sequential[Any, Any]` (compose them from checked
sub-blocks instead). A chain of shape-preserving layers only is itself
shape-preserving (`SameShape`).

Parameter names follow PyTorch's state_dict: children of a sequential are "0", "1", ...;
the block inside a residual is "block" (so "2.block.0.weight"). `a >> b` splices
sequentials on either side (so `(a >> b) >> c` and `a >> (b >> c)` are the same
three-layer model with names "0", "1", "2"); `sequential(a, sequential(b, c))` keeps the
nesting it spells ("1.0.weight").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ..errors import ShapeError
from ..value import Value
from .layer import (
    Layer,
    LayerLike,
    Module,
    SameSequential,
    SameShape,
    Scope,
    Sequential,
    chain,
    run_child,
    splice,
)
from .positions import (
    Fits0,
    Fits1,
    Fits2,
    Fits3,
    Fits4,
    Fits5,
    Fits6,
    Fits7,
    Fits8,
    Fits9,
    Fits10,
    Fits11,
    Fits12,
    Fits13,
    Fits14,
    Fits15,
)

__all__ = [
    "Sequential", "SameSequential", "Residual", "SameResidual", "sequential", "residual",
    "chain", "splice",
]

V = TypeVar("V", bound=Value)
S = TypeVar("S")
In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)
T0 = TypeVar("T0")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")
T7 = TypeVar("T7")
T8 = TypeVar("T8")
T9 = TypeVar("T9")
T10 = TypeVar("T10")
T11 = TypeVar("T11")
T12 = TypeVar("T12")
T13 = TypeVar("T13")
T14 = TypeVar("T14")
T15 = TypeVar("T15")
T16 = TypeVar("T16")


@overload
def sequential(l0: SameShape, /, *rest: SameShape) -> SameShape: ...  # type: ignore[overload-overlap]
@overload
def sequential(l0: Fits0[T0, T1], /) -> Sequential[T0, T1]: ...
@overload
def sequential(l0: Fits0[T0, T1], l1: Fits1[T1, T2], /) -> Sequential[T0, T2]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], /,
) -> Sequential[T0, T3]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], /,
) -> Sequential[T0, T4]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    /,
) -> Sequential[T0, T5]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], /,
) -> Sequential[T0, T6]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], /,
) -> Sequential[T0, T7]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], /,
) -> Sequential[T0, T8]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], /,
) -> Sequential[T0, T9]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    /,
) -> Sequential[T0, T10]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    l10: Fits10[T10, T11], /,
) -> Sequential[T0, T11]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    l10: Fits10[T10, T11], l11: Fits11[T11, T12], /,
) -> Sequential[T0, T12]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    l10: Fits10[T10, T11], l11: Fits11[T11, T12], l12: Fits12[T12, T13], /,
) -> Sequential[T0, T13]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    l10: Fits10[T10, T11], l11: Fits11[T11, T12], l12: Fits12[T12, T13], l13: Fits13[T13, T14], /,
) -> Sequential[T0, T14]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    l10: Fits10[T10, T11], l11: Fits11[T11, T12], l12: Fits12[T12, T13], l13: Fits13[T13, T14],
    l14: Fits14[T14, T15], /,
) -> Sequential[T0, T15]: ...
@overload
def sequential(
    l0: Fits0[T0, T1], l1: Fits1[T1, T2], l2: Fits2[T2, T3], l3: Fits3[T3, T4], l4: Fits4[T4, T5],
    l5: Fits5[T5, T6], l6: Fits6[T6, T7], l7: Fits7[T7, T8], l8: Fits8[T8, T9], l9: Fits9[T9, T10],
    l10: Fits10[T10, T11], l11: Fits11[T11, T12], l12: Fits12[T12, T13], l13: Fits13[T13, T14],
    l14: Fits14[T14, T15], l15: Fits15[T15, T16], /,
) -> Sequential[T0, T16]: ...
@overload
def sequential(
    l0: LayerLike[Any, Any], l1: LayerLike[Any, Any], l2: LayerLike[Any, Any],
    l3: LayerLike[Any, Any], l4: LayerLike[Any, Any], l5: LayerLike[Any, Any],
    l6: LayerLike[Any, Any], l7: LayerLike[Any, Any], l8: LayerLike[Any, Any],
    l9: LayerLike[Any, Any], l10: LayerLike[Any, Any], l11: LayerLike[Any, Any],
    l12: LayerLike[Any, Any], l13: LayerLike[Any, Any], l14: LayerLike[Any, Any],
    l15: LayerLike[Any, Any], l16: LayerLike[Any, Any],
    /,
    *rest: LayerLike[Any, Any],
) -> Sequential[Any, Any]: ...
def sequential(*layers: Any) -> Any:
    """The layers applied in order (PyTorch's nn.Sequential); mypy checks each neighbour pair.

    Children are named "0", "1", ...; sizes known at construction are checked here too
    (ShapeError naming both layers), the rest when the model runs.
    """
    return chain(*layers)


def _residual_check(block: object) -> Module:
    if not isinstance(block, Module):
        raise TypeError(f"residual: block must be a layer, got {type(block).__name__} {block!r}")
    need = block.input_width()
    out = block.output_width(need)
    if need is not None and out is not None and need != out:
        raise ShapeError(
            f"residual: the block ({block.describe()}) maps (..., {need}) to (..., {out}); "
            "a residual block must keep the shape"
        )
    return block


def _residual_forward(layer: Module, block: Module, x: V, scope: Scope[V]) -> V:
    y = run_child(block, x, scope, "block")
    if y.shape != x.shape:
        raise ShapeError(
            f"{scope.where(layer)}: the block maps {x.shape} to {y.shape}; "
            "a residual block must keep the shape"
        )
    return x + y


@dataclass(frozen=True, slots=True, repr=False)
class Residual(Layer[S, S]):
    """x + block(x); the block's parameters are named "block.<name>"."""

    block: Module

    def __post_init__(self) -> None:
        _residual_check(self.block)

    def describe(self) -> str:
        return "residual"

    def children(self) -> tuple[tuple[str, Module], ...]:
        return (("block", self.block),)

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _residual_forward(self, self.block, x, scope)

    def input_width(self) -> int | None:
        return self.block.input_width()

    def __repr__(self) -> str:
        return f"residual({self.block!r})"


@dataclass(frozen=True, slots=True, repr=False)
class SameResidual(SameShape):
    """x + block(x) around a shape-preserving block."""

    block: Module

    def __post_init__(self) -> None:
        _residual_check(self.block)

    def describe(self) -> str:
        return "residual"

    def children(self) -> tuple[tuple[str, Module], ...]:
        return (("block", self.block),)

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _residual_forward(self, self.block, x, scope)

    def __repr__(self) -> str:
        return f"residual({self.block!r})"


@overload
def residual(block: SameShape) -> SameShape: ...  # type: ignore[overload-overlap]
@overload
def residual(block: LayerLike[S, S]) -> Residual[S]: ...
def residual(block: Any) -> Any:
    """x + block(x) (a skip connection); mypy and the run-time check that the block keeps
    the shape. The block's parameters are named "block.<name>" ("2.block.0.weight")."""
    if isinstance(block, SameShape):
        return SameResidual(_residual_check(block))
    return Residual(_residual_check(block))
