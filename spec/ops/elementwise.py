"""Elementwise ops: arithmetic with broadcasting, activations, comparisons, selection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

from .. import functional as F
from ..fields.base import Array, Field
from ..shapes import Shape, broadcast_shapes
from ..value import Value
from .registry import (
    Attrs,
    OpDef,
    Props,
    VjpPart,
    VjpRule,
    apply,
    register,
    vjp_from_parts,
)

Grads = tuple[Value | None, ...]


def same_shape(shapes: tuple[Shape, ...], attrs: Attrs) -> Shape:
    """Shape rule of unary elementwise ops."""
    return shapes[0]


def broadcast_rule(tag: str) -> Callable[[tuple[Shape, ...], Attrs], Shape]:
    """Shape rule of n-ary elementwise ops: NumPy broadcasting, errors name `tag`."""

    known: dict[tuple[Shape, ...], Shape] = {}  # shapes that broadcast, and to what

    def rule(shapes: tuple[Shape, ...], attrs: Attrs) -> Shape:
        if len(shapes) == 2:  # the common cases: equal shapes, or a scalar with a tensor
            a, b = shapes
            if a == b or not b:
                return a
            if not a:
                return b
        # A training loop broadcasts the same few shape pairs every step (x @ W.T + bias):
        # remember them. Only successes are kept, so errors are raised every time.
        out = known.get(shapes)
        if out is None:
            out = broadcast_shapes(tag, *shapes)
            if len(known) >= _SHAPE_CACHE_SIZE:
                known.clear()  # bounded: a program with ever new shapes stays small
            known[shapes] = out
        return out

    return rule


_SHAPE_CACHE_SIZE = 1024


def unary(tag: str, forward: Callable[[Field, Array], Array], vjp: VjpRule, doc: str,
          **props: Unpack[Props]) -> OpDef:
    """Register a unary elementwise op (`props`: the OpDef properties that hold)."""
    return register(OpDef(tag, 1, same_shape, lambda f, xs, at: forward(f, xs[0]), vjp,
                          doc=doc, kind="elementwise", **props))


def binary(
    tag: str, forward: Callable[[Field, Array, Array], Array], vjp_a: VjpPart,
    vjp_b: VjpPart, doc: str, **props: Unpack[Props],
) -> OpDef:
    """Register a binary elementwise op with broadcasting; `vjp_a` and `vjp_b` give the
    cotangents of a and b at the broadcast shape (summed down to each operand's shape)."""
    rule = broadcast_rule(tag)
    parts = (_unbroadcast_part(vjp_a, 0), _unbroadcast_part(vjp_b, 1))
    return register(OpDef(tag, 2, rule, lambda f, xs, at: forward(f, xs[0], xs[1]),
                          vjp_from_parts(parts), doc=doc, vjp_parts=parts,
                          kind="elementwise", **props))


# Property sets of the elementwise ops (see OpDef).
LINEAR: Props = {"rational": True, "linear": True, "piecewise_linear": True}
RATIONAL: Props = {"rational": True}
PWL: Props = {"rational": True, "piecewise_linear": True}
PWL_MONOTONE: Props = {"rational": True, "piecewise_linear": True, "monotone": True}


def _unbroadcast_part(part: VjpPart, i: int) -> VjpPart:
    def unbroadcast(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Value | None:
        gi = part(g, xs, y, at)
        shape = xs[i].shape
        if gi is None or gi.shape == shape:  # nothing broadcast (the common case)
            return gi
        if gi.shape[1:] == shape:  # one leading axis added (a bias): F.sum_to_shape's op
            return apply("sum", gi, axes=(0,), keepdims=False)
        return F.sum_to_shape(gi, shape)

    return unbroadcast


# -- arithmetic ---------------------------------------------------------------
binary("add", lambda f, a, b: f.add(a, b),
       lambda g, xs, y, at: g, lambda g, xs, y, at: g, "a + b",
       rational=True, linear=True, piecewise_linear=True, monotone=True)
binary("sub", lambda f, a, b: f.sub(a, b),
       lambda g, xs, y, at: g, lambda g, xs, y, at: -g, "a - b", **LINEAR)
binary("mul", lambda f, a, b: f.mul(a, b),
       lambda g, xs, y, at: g * xs[1], lambda g, xs, y, at: g * xs[0], "a * b", **RATIONAL)
binary("div", lambda f, a, b: f.div(a, b),
       lambda g, xs, y, at: g / xs[1], lambda g, xs, y, at: -(g * y) / xs[1], "a / b",
       **RATIONAL)
unary("neg", lambda f, a: f.neg(a), lambda g, xs, y, at: (-g,), "-a", **LINEAR)
unary("abs", lambda f, a: f.abs(a),
      lambda g, xs, y, at: (g * (F.step(xs[0]) - F.step(-xs[0])),),
      "|a|; derivative sign(a), 0 at 0", **PWL)
unary("square", lambda f, a: f.mul(a, a), lambda g, xs, y, at: (g * (xs[0] * 2),), "a * a",
      **RATIONAL)
unary("sqrt", lambda f, a: f.sqrt(a), lambda g, xs, y, at: (g / (y * 2),), "square root",
      monotone=True)

# -- transcendental functions -----------------------------------------------
unary("exp", lambda f, a: f.exp(a), lambda g, xs, y, at: (g * y,), "e ** a", monotone=True)
unary("log", lambda f, a: f.log(a), lambda g, xs, y, at: (g / xs[0],), "natural log",
      monotone=True)
unary("log1p", lambda f, a: f.log1p(a), lambda g, xs, y, at: (g / (xs[0] + 1),), "log(1 + a)",
      monotone=True)
unary("expm1", lambda f, a: f.expm1(a), lambda g, xs, y, at: (g * (y + 1),), "exp(a) - 1",
      monotone=True)
unary("tanh", lambda f, a: f.tanh(a), lambda g, xs, y, at: (g * (1 - F.square(y)),), "tanh",
      monotone=True)
unary("sigmoid", lambda f, a: f.sigmoid(a),
      lambda g, xs, y, at: (g * (y * (1 - y)),), "1 / (1 + exp(-a))", monotone=True)
unary("softplus", lambda f, a: f.softplus(a),
      lambda g, xs, y, at: (g * F.sigmoid(xs[0]),), "log(1 + exp(a))", monotone=True)
unary("sin", lambda f, a: f.sin(a), lambda g, xs, y, at: (g * F.cos(xs[0]),), "sine")
unary("cos", lambda f, a: f.cos(a), lambda g, xs, y, at: (-(g * F.sin(xs[0])),), "cosine")


def _normal_pdf(x: Value) -> Value:
    """exp(-x^2/2) / sqrt(2 pi), written with ops."""
    return F.exp(F.square(x) * -0.5) / F.sqrt(F.pi(x) * 2)


unary("erf", lambda f, a: f.erf(a),
      lambda g, xs, y, at: (g * (F.exp(-F.square(xs[0])) * 2 / F.sqrt(F.pi(xs[0]))),),
      "the error function", monotone=True)
unary("gelu", lambda f, a: f.gelu(a),
      lambda g, xs, y, at: (
          g * ((F.erf(xs[0] / F.sqrt(F.constant(xs[0], 2))) + 1) * 0.5
               + xs[0] * _normal_pdf(xs[0])),),
      "a * Phi(a), the exact GELU")
unary("silu", lambda f, a: f.mul(a, f.sigmoid(a)),
      lambda g, xs, y, at: (
          g * (F.sigmoid(xs[0]) * (1 + xs[0] * (1 - F.sigmoid(xs[0])))),),
      "a * sigmoid(a) (two roundings: sigmoid, then the product)")

# -- piecewise-linear activations ----------------------------------------------
unary("relu", lambda f, a: f.maximum(a, f.constant(0, like=a)),
      lambda g, xs, y, at: (g * F.step(xs[0]),), "max(a, 0); derivative 0 at 0",
      **PWL_MONOTONE)


def _leaky_forward(f: Field, xs: tuple[Array, ...], at: Attrs) -> Array:
    a = xs[0]
    return f.select(f.step(a), a, f.mul(a, f.constant(at["negative_slope"], like=a)))


def _leaky_vjp(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Grads:
    slope = F.constant(g, at["negative_slope"])
    return (g * F.where(F.step(xs[0]), F.ones_like(xs[0]), slope),)


# not `monotone`: a negative slope is allowed
register(OpDef("leaky_relu", 1, same_shape, _leaky_forward, _leaky_vjp,
               doc="a where a > 0, else negative_slope * a", kind="elementwise",
               attr_schema=(("negative_slope", "number"),), **PWL))

binary("maximum", lambda f, a, b: f.maximum(a, b),
       lambda g, xs, y, at: g - g * F.greater(xs[1], xs[0]),
       lambda g, xs, y, at: g * F.greater(xs[1], xs[0]),
       "elementwise max; ties send the gradient to the first operand", **PWL_MONOTONE)
binary("minimum", lambda f, a, b: f.minimum(a, b),
       lambda g, xs, y, at: g - g * F.greater(xs[0], xs[1]),
       lambda g, xs, y, at: g * F.greater(xs[0], xs[1]),
       "elementwise min; ties send the gradient to the first operand", **PWL_MONOTONE)

# -- comparisons and selection (piecewise constant) ------------------------------
register(OpDef("step", 1, same_shape, lambda f, xs, at: f.step(xs[0]),
               piecewise_constant=True, doc="1 where a > 0 else 0", kind="elementwise",
               rational=True, monotone=True))
register(OpDef("greater", 2, broadcast_rule("greater"),
               lambda f, xs, at: f.greater(xs[0], xs[1]),
               piecewise_constant=True, doc="1 where a > b else 0", kind="elementwise",
               rational=True))


def _where_vjp(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Grads:
    cond, a, b = xs
    zero = F.zeros_like(g)
    return (
        None,
        F.sum_to_shape(F.where(cond, g, zero), a.shape),
        F.sum_to_shape(F.where(cond, zero, g), b.shape),
    )


register(OpDef("where", 3, broadcast_rule("where"),
               lambda f, xs, at: f.select(xs[0], xs[1], xs[2]), _where_vjp,
               doc="a where cond is nonzero, else b", kind="elementwise", rational=True))
