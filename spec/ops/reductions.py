"""Reductions over axes, and the max-subtracted softmax family."""

from __future__ import annotations

from .. import functional as F
from ..errors import ShapeError
from ..fields.base import Array, Field
from ..shapes import Shape, reduced_shape, size_of
from ..value import Value
from .registry import Attrs, OpDef, register

Grads = tuple[Value | None, ...]


def _checked_axes(tag: str, shape: Shape, axes: tuple[int, ...]) -> tuple[int, ...]:
    if any(not 0 <= a < len(shape) for a in axes) or list(axes) != sorted(set(axes)):
        raise ShapeError(f"{tag}: axes {axes} invalid for shape {shape}")
    return axes


def _reduce_shape(tag: str):  # type: ignore[no-untyped-def]
    def rule(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
        axes = _checked_axes(tag, shapes[0], at["axes"])
        return reduced_shape(shapes[0], axes, at["keepdims"])

    return rule


def _expand(g: Value, x: Value, at: Attrs) -> Value:
    """Broadcast a reduction's cotangent back to the input's shape."""
    kept = reduced_shape(x.shape, at["axes"], True)
    return F.broadcast_to(F.reshape(g, kept), x.shape)


def _count(x_shape: Shape, axes: tuple[int, ...]) -> int:
    return size_of(tuple(x_shape[a] for a in axes))


def _has_empty_group(x_shape: Shape, axes: tuple[int, ...]) -> bool:
    """Some group to reduce exists and has no element (so it has no maximum)."""
    kept = tuple(d for i, d in enumerate(x_shape) if i not in axes)
    return _count(x_shape, axes) == 0 and size_of(kept) > 0


def _mean_forward(f: Field, xs: tuple[Array, ...], at: Attrs) -> Array:
    n = _count(f.shape_of(xs[0]), at["axes"])
    return f.div(f.sum(xs[0], at["axes"], at["keepdims"]), f.constant(n, like=xs[0]))


def _max_forward(f: Field, xs: tuple[Array, ...], at: Attrs) -> Array:
    shape = f.shape_of(xs[0])
    if _has_empty_group(shape, at["axes"]):
        raise ShapeError(f"max: empty reduction over axes {at['axes']} of {shape}")
    if size_of(shape) == 0:  # no groups at all: an empty result
        return f.sum(xs[0], at["axes"], at["keepdims"])
    return f.max(xs[0], at["axes"], at["keepdims"])


_REDUCE = (("axes", "ints"), ("keepdims", "bool"))

register(OpDef(
    "sum", 1, _reduce_shape("sum"),
    lambda f, xs, at: f.sum(xs[0], at["axes"], at["keepdims"]),
    lambda g, xs, y, at: (_expand(g, xs[0], at),),
    doc="sum over axes (a zero-seeded left fold in ieee32exec)",
    kind="reduction", attr_schema=_REDUCE, rational=True, linear=True, piecewise_linear=True,
    monotone=True,
))
register(OpDef(
    "mean", 1, _reduce_shape("mean"), _mean_forward,
    lambda g, xs, y, at: (_expand(g, xs[0], at) / _count(xs[0].shape, at["axes"]),),
    doc="sum over axes divided by the element count",
    kind="reduction", attr_schema=_REDUCE, rational=True, linear=True, piecewise_linear=True,
    monotone=True,
))
register(OpDef(
    "max", 1, _reduce_shape("max"), _max_forward,
    lambda g, xs, y, at: (_expand(g, xs[0], at) * F.argmax_mask(xs[0], at["axes"]),),
    doc="max over axes; gradient to the first maximum in row-major order",
    kind="reduction", attr_schema=_REDUCE, rational=True, piecewise_linear=True, monotone=True,
))
def _argmax_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    axes = _checked_axes("argmax_mask", shapes[0], at["axes"])
    if _has_empty_group(shapes[0], axes):
        raise ShapeError(f"argmax_mask: empty reduction over axes {axes} of {shapes[0]}")
    return shapes[0]


register(OpDef(
    "argmax_mask", 1, _argmax_shape,
    lambda f, xs, at: f.argmax_mask(xs[0], at["axes"]),
    piecewise_constant=True,
    doc="0/1 mask of the first maximum of each group",
    kind="axiswise", attr_schema=(("axes", "ints"),), rational=True,
))


def _axis_rule(tag: str):  # type: ignore[no-untyped-def]
    def rule(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
        _checked_axes(tag, shapes[0], (at["axis"],))
        if shapes[0][at["axis"]] == 0:  # no maximum to subtract, no distribution to form
            raise ShapeError(f"{tag}: axis {at['axis']} of shape {shapes[0]} is empty")
        return shapes[0]

    return rule


def _softmax_forward(f: Field, xs: tuple[Array, ...], at: Attrs) -> Array:
    ax = (at["axis"],)
    e = f.exp(f.sub(xs[0], f.max(xs[0], ax, True)))
    return f.div(e, f.sum(e, ax, True))


def _log_softmax_forward(f: Field, xs: tuple[Array, ...], at: Attrs) -> Array:
    ax = (at["axis"],)
    shifted = f.sub(xs[0], f.max(xs[0], ax, True))
    return f.sub(shifted, f.log(f.sum(f.exp(shifted), ax, True)))


def _softmax_vjp(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Grads:
    return (y * (g - F.sum(g * y, at["axis"], keepdims=True)),)


def _log_softmax_vjp(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Grads:
    return (g - F.exp(y) * F.sum(g, at["axis"], keepdims=True),)


register(OpDef("softmax", 1, _axis_rule("softmax"), _softmax_forward, _softmax_vjp,
               doc="exp(a - max) / sum(exp(a - max)) along axis", kind="axiswise",
               attr_schema=(("axis", "int"),)))
register(OpDef("log_softmax", 1, _axis_rule("log_softmax"), _log_softmax_forward,
               _log_softmax_vjp, doc="a - max - log(sum(exp(a - max))) along axis",
               kind="axiswise", attr_schema=(("axis", "int"),)))
