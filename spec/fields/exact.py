"""`exact`: tensors of `fractions.Fraction`, computed without rounding.

Every rational op (+ − × ÷, max, matmul, sums, comparisons) is exact. Ops with no
rational value (exp, log, tanh, ...; sqrt of a non-square) raise `UnsupportedOperation`
naming the op and the field, whatever the inputs: a model either runs exactly or not at all.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .base import Array, Constant, SymbolicPi
from .objectarray import ObjectArrayField, elementwise

__all__ = ["ExactField", "exact", "to_fraction"]


def to_fraction(value: object) -> Fraction:
    """The exact rational value of an int, finite float, Fraction or NumPy number."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"exact: booleans are not numbers here, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"exact: {f!r} has no rational value")
        return Fraction(f)
    raise TypeError(f"exact: cannot convert {type(value).__name__} {value!r} to a Fraction")


def _exact_sqrt(q: Fraction) -> Fraction:
    if q < 0:
        raise ValueError(f"sqrt: negative argument {q} in field 'exact'")
    rn, rd = math.isqrt(q.numerator), math.isqrt(q.denominator)
    if rn * rn != q.numerator or rd * rd != q.denominator:
        raise UnsupportedSqrt(q)
    return Fraction(rn, rd)


class UnsupportedSqrt(Exception):
    """Internal: sqrt of a rational that is not a square."""

    def __init__(self, q: Fraction) -> None:
        self.q = q


class ExactField(ObjectArrayField):
    """Exact rational arithmetic over object arrays of `Fraction`."""

    name = "exact"

    def scalar(self, value: object) -> Fraction:
        return to_fraction(value)

    def constant(self, value: Constant, like: Array | None = None) -> Array:
        if isinstance(value, SymbolicPi):
            raise self.unsupported("pi", "pi is irrational")
        return super().constant(value)

    def div(self, a: Array, b: Array) -> Array:
        try:
            return super().div(a, b)
        except ZeroDivisionError:
            raise ZeroDivisionError("div: division by zero in field 'exact'") from None

    def abs(self, a: Array) -> Array:
        return np.asarray(np.abs(a), dtype=object)

    def max2(self, x: Any, y: Any) -> Any:
        return x if x >= y else y

    def min2(self, x: Any, y: Any) -> Any:
        return x if x <= y else y

    def sqrt(self, a: Array) -> Array:
        try:
            return elementwise(_exact_sqrt, 1)(a)
        except UnsupportedSqrt as e:
            raise self.unsupported("sqrt", f"sqrt({e.q}) is irrational") from None

    def step(self, a: Array) -> Array:
        return elementwise(lambda x: Fraction(1 if x > 0 else 0), 1)(a)

    def greater(self, a: Array, b: Array) -> Array:
        return elementwise(lambda x, y: Fraction(1 if x > y else 0), 2)(a, b)

    def select(self, cond: Array, a: Array, b: Array) -> Array:
        c, a, b = np.broadcast_arrays(cond, a, b)
        return np.asarray(np.where(c != 0, a, b), dtype=object)


exact = ExactField()
