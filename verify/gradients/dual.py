"""`DualField`: forward-mode dual numbers as a scalar field over a base field.

A value of `DualField(base)` is a `Dual`: a primal array of the base field and a tangent
carrying K directions at once (see `tangents`). Every `Field` primitive is implemented
with its own derivative rule (d exp a = exp a da, d(ab) = a db + b da, ...), so every op
of the table runs on duals unchanged through its forward rule, and the tangent of the
result is the directional derivative of the op's real function: a derivative computed
independently of the op table's VJP rules, which is what gradient checks compare against.

Conventions where the derivative does not exist, chosen to agree with the VJP rules away
from exact ties: the step, comparison, one-hot and argmax primitives have zero tangent;
`maximum`/`minimum` pass the tangent of the first operand on a tie; a max reduction
passes the tangent of its first maximum; `abs` has tangent sign(a) da (0 at 0). Every
primitive evaluation that meets an exact tie (or, over intervals, a comparison the
intervals cannot decide) is counted in `kinks`: there the function may not be
differentiable and the two modes may legitimately disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ...spec.fields.base import PI, Array, Constant, Field, SliceSpec
from ...spec.shapes import Shape
from .tangents import TangentOps

__all__ = ["Dual", "DualField", "certainly_nonzero"]


class Dual:
    """A primal base-field array and its tangents `(K,) + shape` (None: zero)."""

    __slots__ = ("primal", "tangent")

    def __init__(self, primal: Array, tangent: Array | None) -> None:
        self.primal = primal
        self.tangent = tangent

    def __repr__(self) -> str:
        return f"Dual({self.primal!r}, {self.tangent!r})"


def certainly_nonzero(field: Field, a: Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where `a` is nonzero for sure (an interval must exclude 0)."""
    host = field.to_numpy(a)
    if host.dtype != object:
        return np.asarray(host != 0)

    def test(x: Any) -> bool:
        if hasattr(x, "_mpi_"):
            return bool(x.a > 0 or x.b < 0)
        return bool(x != 0)

    return np.asarray(np.vectorize(test, otypes=[bool])(host), dtype=bool).reshape(host.shape)


class DualField(Field):
    """Dual numbers over `base`: each primitive carries its derivative rule."""

    def __init__(self, base: Field) -> None:
        self.base = base
        self.t = TangentOps(base)
        self.name = f"dual[{base.name}]"
        self.kinks: Counter[str] = Counter()

    # -- helpers --------------------------------------------------------------------
    def _shape(self, a: Array) -> Shape:
        return self.base.shape_of(a)

    def _const(self, value: Constant) -> Array:
        return self.base.constant(value)

    def _tie(self, op: str, a: Array, b: Array) -> None:
        """Count the places where a and b are (or may be) equal: kinks of `op`."""
        gt = certainly_nonzero(self.base, self.base.greater(a, b))
        lt = certainly_nonzero(self.base, self.base.greater(b, a))
        ties = int(np.count_nonzero(~(gt | lt)))
        if ties:
            self.kinks[op] += ties

    def _unary(self, a: Dual, value: Array, slope: Array) -> Dual:
        """Result of an elementwise function with derivative `slope` at a."""
        return Dual(value, self.t.scale(a.tangent, slope, self._shape(value)))

    # -- conversion --------------------------------------------------------------------
    def asarray(self, data: object) -> Dual:
        return Dual(self.base.asarray(data), None)

    def constant(self, value: Constant, like: Array | None = None) -> Dual:
        return Dual(self.base.constant(value), None)

    def shape_of(self, a: Dual) -> Shape:
        return self.base.shape_of(a.primal)

    def to_numpy(self, a: Dual) -> np.ndarray[Any, Any]:
        return self.base.to_numpy(a.primal)

    # -- arithmetic ----------------------------------------------------------------------
    def add(self, a: Dual, b: Dual) -> Dual:
        y = self.base.add(a.primal, b.primal)
        return Dual(y, self.t.add(a.tangent, b.tangent, self._shape(y)))

    def sub(self, a: Dual, b: Dual) -> Dual:
        y = self.base.sub(a.primal, b.primal)
        return Dual(y, self.t.sub(a.tangent, b.tangent, self._shape(y)))

    def mul(self, a: Dual, b: Dual) -> Dual:
        y = self.base.mul(a.primal, b.primal)
        s = self._shape(y)
        ta = self.t.scale(a.tangent, b.primal, s)
        tb = self.t.scale(b.tangent, a.primal, s)
        return Dual(y, self.t.add(ta, tb, s))

    def div(self, a: Dual, b: Dual) -> Dual:
        # d(a/b) = (da - (a/b) db) / b
        y = self.base.div(a.primal, b.primal)
        s = self._shape(y)
        num = self.t.sub(a.tangent, self.t.scale(b.tangent, y, s), s)
        return Dual(y, self.t.divide(num, b.primal, s))

    def neg(self, a: Dual) -> Dual:
        return Dual(self.base.neg(a.primal), self.t.neg(a.tangent))

    def abs(self, a: Dual) -> Dual:
        zero = self._const(0)
        self._tie("abs", a.primal, zero)
        sign = self.base.sub(self.base.step(a.primal), self.base.step(self.base.neg(a.primal)))
        return self._unary(a, self.base.abs(a.primal), sign)

    def _pick(self, op: str, a: Dual, b: Dual, y: Array, b_wins: Array) -> Dual:
        self._tie(op, a.primal, b.primal)
        return Dual(y, self.t.select(b_wins, b.tangent, a.tangent, self._shape(y)))

    def maximum(self, a: Dual, b: Dual) -> Dual:
        y = self.base.maximum(a.primal, b.primal)
        return self._pick("maximum", a, b, y, self.base.greater(b.primal, a.primal))

    def minimum(self, a: Dual, b: Dual) -> Dual:
        y = self.base.minimum(a.primal, b.primal)
        return self._pick("minimum", a, b, y, self.base.greater(a.primal, b.primal))

    def sqrt(self, a: Dual) -> Dual:
        y = self.base.sqrt(a.primal)
        return Dual(y, self.t.divide(a.tangent, self.base.mul(y, self._const(2)), self._shape(y)))

    # -- transcendental functions ----------------------------------------------------------
    def exp(self, a: Dual) -> Dual:
        y = self.base.exp(a.primal)
        return self._unary(a, y, y)

    def log(self, a: Dual) -> Dual:
        y = self.base.log(a.primal)
        return Dual(y, self.t.divide(a.tangent, a.primal, self._shape(y)))

    def log1p(self, a: Dual) -> Dual:
        y = self.base.log1p(a.primal)
        one_plus = self.base.add(self._const(1), a.primal)
        return Dual(y, self.t.divide(a.tangent, one_plus, self._shape(y)))

    def expm1(self, a: Dual) -> Dual:
        y = self.base.expm1(a.primal)
        return self._unary(a, y, self.base.add(y, self._const(1)))

    def tanh(self, a: Dual) -> Dual:
        y = self.base.tanh(a.primal)
        return self._unary(a, y, self.base.sub(self._const(1), self.base.mul(y, y)))

    def sigmoid(self, a: Dual) -> Dual:
        y = self.base.sigmoid(a.primal)
        return self._unary(a, y, self.base.mul(y, self.base.sub(self._const(1), y)))

    def softplus(self, a: Dual) -> Dual:
        return self._unary(a, self.base.softplus(a.primal), self.base.sigmoid(a.primal))

    def _two_over_sqrt_pi(self) -> Array:
        return self.base.div(self._const(2), self.base.sqrt(self._const(PI)))

    def erf(self, a: Dual) -> Dual:
        # d erf(a) = 2/sqrt(pi) exp(-a^2) da
        x = a.primal
        gauss = self.base.exp(self.base.neg(self.base.mul(x, x)))
        return self._unary(a, self.base.erf(x), self.base.mul(gauss, self._two_over_sqrt_pi()))

    def gelu(self, a: Dual) -> Dual:
        # gelu(a) = a Phi(a): d gelu = (Phi(a) + a phi(a)) da,
        # Phi(a) = (1 + erf(a / sqrt 2)) / 2, phi(a) = exp(-a^2 / 2) / sqrt(2 pi).
        b, x = self.base, a.primal
        half, two = self._const(Fraction(1, 2)), self._const(2)
        cdf = b.mul(b.add(self._const(1), b.erf(b.div(x, b.sqrt(two)))), half)
        pdf = b.div(b.exp(b.neg(b.mul(b.mul(x, x), half))), b.sqrt(b.mul(two, self._const(PI))))
        return self._unary(a, b.gelu(x), b.add(cdf, b.mul(x, pdf)))

    def sin(self, a: Dual) -> Dual:
        return self._unary(a, self.base.sin(a.primal), self.base.cos(a.primal))

    def cos(self, a: Dual) -> Dual:
        return self._unary(a, self.base.cos(a.primal), self.base.neg(self.base.sin(a.primal)))

    # -- piecewise-constant primitives: zero tangent -----------------------------------------
    def step(self, a: Dual) -> Dual:
        self._tie("step", a.primal, self._const(0))
        return Dual(self.base.step(a.primal), None)

    def greater(self, a: Dual, b: Dual) -> Dual:
        self._tie("greater", a.primal, b.primal)
        return Dual(self.base.greater(a.primal, b.primal), None)

    def select(self, cond: Dual, a: Dual, b: Dual) -> Dual:
        y = self.base.select(cond.primal, a.primal, b.primal)
        return Dual(y, self.t.select(cond.primal, a.tangent, b.tangent, self._shape(y)))

    def one_hot(self, labels: Dual, num_classes: int) -> Dual:
        return Dual(self.base.one_hot(labels.primal, num_classes), None)

    def argmax_mask(self, a: Dual, axes: tuple[int, ...]) -> Dual:
        mask = self.base.argmax_mask(a.primal, axes)
        self._max_ties(a.primal, axes)
        return Dual(mask, None)

    def _max_ties(self, x: Array, axes: tuple[int, ...]) -> None:
        """Count groups whose maximum is (or may be) attained more than once."""
        b = self.base
        top = b.max(x, axes, True)
        # x <= top everywhere, so "not top > x" marks the entries that may equal the max.
        below = certainly_nonzero(b, b.greater(top, x))
        at_top = np.broadcast_to(~below, b.shape_of(x))
        ties = int(np.count_nonzero(np.sum(at_top, axis=axes) > 1))
        if ties:
            self.kinks["max"] += ties

    # -- reductions and contractions -----------------------------------------------------------
    def sum(self, a: Dual, axes: tuple[int, ...], keepdims: bool) -> Dual:
        return Dual(self.base.sum(a.primal, axes, keepdims), self.t.sum(a.tangent, axes, keepdims))

    def max(self, a: Dual, axes: tuple[int, ...], keepdims: bool) -> Dual:
        y = self.base.max(a.primal, axes, keepdims)
        if a.tangent is None:
            return Dual(y, None)
        self._max_ties(a.primal, axes)
        mask = self.base.argmax_mask(a.primal, axes)
        picked = self.t.scale(a.tangent, mask, self._shape(a.primal))
        return Dual(y, self.t.sum(picked, axes, keepdims))

    def matmul(self, a: Dual, b: Dual) -> Dual:
        y = self.base.matmul(a.primal, b.primal)
        s = self._shape(y)
        left = self.t.matmul_left(a.tangent, b.primal, s)
        right = self.t.matmul_right(a.primal, b.tangent, s)
        return Dual(y, self.t.add(left, right, s))

    # -- structure ------------------------------------------------------------------------
    def reshape(self, a: Dual, shape: Shape) -> Dual:
        return Dual(self.base.reshape(a.primal, shape), self.t.reshape(a.tangent, shape))

    def permute(self, a: Dual, axes: tuple[int, ...]) -> Dual:
        return Dual(self.base.permute(a.primal, axes), self.t.permute(a.tangent, axes))

    def broadcast_to(self, a: Dual, shape: Shape) -> Dual:
        return Dual(self.base.broadcast_to(a.primal, shape), self.t.broadcast_to(a.tangent, shape))

    def concat(self, arrays: Sequence[Dual], axis: int) -> Dual:
        y = self.base.concat([d.primal for d in arrays], axis)
        shapes = [self._shape(d.primal) for d in arrays]
        return Dual(y, self.t.concat([d.tangent for d in arrays], shapes, axis))

    def slice(self, a: Dual, spec: SliceSpec) -> Dual:
        return Dual(self.base.slice(a.primal, spec), self.t.slice(a.tangent, spec))

    def unslice(self, a: Dual, shape: Shape, spec: SliceSpec) -> Dual:
        y = self.base.unslice(a.primal, shape, spec)
        return Dual(y, self.t.unslice(a.tangent, shape, spec))
