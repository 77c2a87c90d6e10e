"""`MPFloatField`: object arrays of mpmath `mpf` numbers at a chosen binary precision.

The high-precision evaluation behind the `mpmath` gradient check: every primitive is
mpmath's own function at `prec` bits (arithmetic and sqrt correctly rounded, the
transcendentals accurate to about one unit in the last place). Not an enclosure: a
tool for making rounding error negligible (2^-prec relative per operation), not for
proofs; the `interval` field is the rigorous one.

Outside a function's real domain (log of a negative number, sqrt of a negative) the
result is NaN, as in IEEE arithmetic, never a complex number.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from mpmath.ctx_mp import MPContext

from ...spec.fields.base import PI, Array, Constant
from ...spec.fields.exact import to_fraction
from ...spec.fields.objectarray import ObjectArrayField, elementwise

__all__ = ["MPFloatField"]


class MPFloatField(ObjectArrayField):
    """Floating point with `prec` significand bits, evaluated by mpmath."""

    def __init__(self, prec: int = 200) -> None:
        if prec < 53:
            raise ValueError(f"mpfloat: prec must be >= 53 bits, got {prec}")
        self.prec = prec
        self.ctx: Any = MPContext()
        self.ctx.prec = prec
        self.name = f"mpfloat{prec}"
        ctx = self.ctx
        nan = ctx.nan
        self._exp = elementwise(ctx.exp, 1)
        self._log = elementwise(lambda x: ctx.log(x) if x >= 0 else nan, 1)
        self._log1p = elementwise(lambda x: ctx.log1p(x) if x >= -1 else nan, 1)
        self._expm1 = elementwise(ctx.expm1, 1)
        self._tanh = elementwise(ctx.tanh, 1)
        self._sigmoid = elementwise(lambda x: 1 / (1 + ctx.exp(-x)), 1)
        # log(1 + e^x) without overflow: x + log1p(e^-x) for x > 0.
        self._softplus = elementwise(
            lambda x: ctx.log1p(ctx.exp(x)) if x <= 0 else x + ctx.log1p(ctx.exp(-x)), 1
        )
        self._erf = elementwise(ctx.erf, 1)
        self._gelu = elementwise(lambda x: x * ctx.ncdf(x), 1)
        self._sin = elementwise(ctx.sin, 1)
        self._cos = elementwise(ctx.cos, 1)
        self._sqrt = elementwise(lambda x: ctx.sqrt(x) if x >= 0 else nan, 1)

    def scalar(self, value: object) -> Any:
        ctx = self.ctx
        if isinstance(value, ctx.mpf):
            return value
        if value is PI:
            return +ctx.pi
        if isinstance(value, (float, np.floating)):
            return ctx.mpf(float(value))  # exact: every double has <= 53 bits
        q = value if isinstance(value, Fraction) else to_fraction(value)
        return ctx.mpf(q.numerator) / q.denominator

    def constant(self, value: Constant, like: Array | None = None) -> Array:
        out = np.empty((), dtype=object)
        out[()] = self.scalar(value)
        return out

    def abs(self, a: Array) -> Array:
        return np.asarray(np.abs(a), dtype=object)

    def max2(self, x: Any, y: Any) -> Any:
        return x if x >= y else y

    def min2(self, x: Any, y: Any) -> Any:
        return x if x <= y else y

    def sqrt(self, a: Array) -> Array:
        return self._sqrt(a)

    def exp(self, a: Array) -> Array:
        return self._exp(a)

    def log(self, a: Array) -> Array:
        return self._log(a)

    def log1p(self, a: Array) -> Array:
        return self._log1p(a)

    def expm1(self, a: Array) -> Array:
        return self._expm1(a)

    def tanh(self, a: Array) -> Array:
        return self._tanh(a)

    def sigmoid(self, a: Array) -> Array:
        return self._sigmoid(a)

    def softplus(self, a: Array) -> Array:
        return self._softplus(a)

    def erf(self, a: Array) -> Array:
        return self._erf(a)

    def gelu(self, a: Array) -> Array:
        return self._gelu(a)

    def sin(self, a: Array) -> Array:
        return self._sin(a)

    def cos(self, a: Array) -> Array:
        return self._cos(a)

    def step(self, a: Array) -> Array:
        one, zero = self.scalar(1), self.zero
        return elementwise(lambda x: one if x > 0 else zero, 1)(a)

    def greater(self, a: Array, b: Array) -> Array:
        one, zero = self.scalar(1), self.zero
        return elementwise(lambda x, y: one if x > y else zero, 2)(a, b)

    def select(self, cond: Array, a: Array, b: Array) -> Array:
        c, a, b = np.broadcast_arrays(cond, a, b)
        return np.asarray(np.where(c != 0, a, b), dtype=object)
