"""`interval`: object arrays of mpmath intervals at a chosen precision.

Each field instance owns its own mpmath interval context, so fields of different
precisions coexist. Every primitive returns an enclosure of the exact real result over
all reals in its operands (see `interval_math` for the functions mpmath lacks). A
comparison that the intervals cannot decide gives the hull [0, 1], and `select` on such
a condition gives the hull of both branches.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from mpmath.ctx_iv import MPIntervalContext
from mpmath.libmp import to_rational

from . import interval_math as im
from .base import PI, Array, Constant, fold_axes_last, unfold_axes_last
from .exact import to_fraction
from .objectarray import ObjectArrayField, elementwise

__all__ = ["IntervalField", "interval"]

_UNARY = (
    "exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "erf", "gelu", "sin", "cos",
)


class IntervalField(ObjectArrayField):
    """Rigorous interval arithmetic with `prec` bits per endpoint."""

    def __init__(self, prec: int = 113) -> None:
        if prec < 53:
            raise ValueError(f"interval: prec must be >= 53 bits, got {prec}")
        self.prec = prec
        self.ctx: Any = MPIntervalContext()
        self.ctx.prec = prec
        self.name = "interval" if prec == 113 else f"interval{prec}"
        for fn in _UNARY:
            setattr(self, fn, self._unary(getattr(im, fn)))

    def _unary(self, fn: Any) -> Any:
        run = elementwise(lambda x: fn(self.ctx, x), 1)
        return lambda a: run(a)

    def scalar(self, value: object) -> Any:
        if isinstance(value, self.ctx.mpf):
            return value
        if value is PI:
            return im.pi(self.ctx)
        if isinstance(value, (float, np.floating)):
            return im.from_float(self.ctx, float(value))
        return im.from_fraction(self.ctx, to_fraction(value))

    def constant(self, value: Constant, like: Array | None = None) -> Array:
        out = np.empty((), dtype=object)
        out[()] = self.scalar(value)
        return out

    def abs(self, a: Array) -> Array:
        return elementwise(lambda x: im.abs(self.ctx, x), 1)(a)

    def sqrt(self, a: Array) -> Array:
        return elementwise(lambda x: im.sqrt(self.ctx, x), 1)(a)

    def max2(self, x: Any, y: Any) -> Any:
        return im.maximum(self.ctx, x, y)

    def min2(self, x: Any, y: Any) -> Any:
        return im.minimum(self.ctx, x, y)

    def step(self, a: Array) -> Array:
        return elementwise(lambda x: im.step(self.ctx, x), 1)(a)

    def greater(self, a: Array, b: Array) -> Array:
        return elementwise(lambda x, y: im.greater(self.ctx, x, y), 2)(a, b)

    def select(self, cond: Array, a: Array, b: Array) -> Array:
        def pick(c: Any, x: Any, y: Any) -> Any:
            if c.a > 0 or c.b < 0:  # certainly nonzero
                return x
            if c.a == 0 and c.b == 0:
                return y
            return im.hull(x, y)

        return elementwise(pick, 3)(cond, a, b)

    def label_values(self, labels: Array) -> np.ndarray[Any, Any]:
        def point(x: Any) -> Fraction:
            if x.a != x.b:
                raise ValueError(f"one_hot: label {x} is not a point interval")
            return mpf_to_fraction(x.a)

        return elementwise(point, 1)(labels)

    def argmax_mask(self, a: Array, axes: tuple[int, ...]) -> Array:
        # An enclosure of the first-maximum mask over every real point of the intervals:
        # 1 where the element is the first maximum for all of them, 0 where it is for
        # none, and the hull [0, 1] where that depends on the point (as `select` does for
        # an undecided condition).
        folded = fold_axes_last(np.asarray(a, dtype=object), axes)
        flat = folded.reshape(-1, folded.shape[-1])
        out = np.empty(flat.shape, dtype=object)
        one, zero = self.scalar(1), self.zero
        either = im.hull(zero, one)
        for g, row in enumerate(flat):
            for i in range(len(row)):
                if _first_max_always(row, i):
                    out[g, i] = one
                elif _first_max_sometimes(row, i):
                    out[g, i] = either
                else:
                    out[g, i] = zero
        return unfold_axes_last(out.reshape(folded.shape), a.shape, axes)


def _first_max_always(row: np.ndarray[Any, Any], i: int) -> bool:
    """Element i beats the upper ends of all before it strictly and all after it weakly."""
    x = row[i]
    return all(y.b < x.a for y in row[:i]) and all(y.b <= x.a for y in row[i + 1:])


def _first_max_sometimes(row: np.ndarray[Any, Any], i: int) -> bool:
    """Some point of the intervals makes element i the first maximum."""
    x = row[i]
    return all(y.a < x.b for y in row[:i]) and all(y.a <= x.b for y in row[i + 1:])


def mpf_to_fraction(m: Any) -> Fraction:
    """The exact rational value of a finite mpmath number (an mpf or a point interval)."""
    raw = m._mpi_[0] if hasattr(m, "_mpi_") else m._mpf_
    p, q = to_rational(raw)
    return Fraction(int(p), int(q))


interval = IntervalField()
