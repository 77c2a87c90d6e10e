"""`ieee32exec`: IEEE-754 binary32 with one fixed semantics, bit-identical everywhere.

+ − × ÷ sqrt fma and the transcendentals are correctly rounded to nearest-even; sums,
dot products and matmuls are zero-seeded left folds in index order with separate
multiply and add; every NaN result is the canonical quiet NaN 0x7FC00000. The kernels
live in `binary32`; this module adapts them to the `Field` interface. Inputs given as
binary64 floats or Fractions are rounded to the nearest binary32 (ties to even).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from . import binary32 as b32
from .base import Array, ArrayField, Constant, SymbolicPi, check_integral_labels, first_max_mask

__all__ = ["Ieee32ExecField", "ieee32exec", "fraction_to_float32"]

F32 = np.float32
# Reals of at least this magnitude round to infinity: 2^128 - 2^103 is the midpoint between
# the largest binary32 and 2^128, and a tie there goes to the even neighbour, infinity.
_OVERFLOW = Fraction(2) ** 128 - Fraction(2) ** 103


def fraction_to_float32(q: Fraction) -> np.float32:
    """The binary32 nearest to the rational `q`, ties to even (overflow gives ±inf)."""
    if abs(q) >= _OVERFLOW:  # rounds to infinity (ties at the threshold go away from zero)
        return F32(np.inf) if q > 0 else F32(-np.inf)
    with np.errstate(over="ignore"):  # near the top the guess may round up to inf
        return _nearest(q, np.float32(float(q)))  # the guess is within one ulp


def _nearest(q: Fraction, guess: np.float32) -> np.float32:
    if not np.isfinite(guess):
        guess = np.float32(np.copysign(np.finfo(np.float32).max, float(q)))
    best = guess
    for cand in (np.nextafter(guess, F32(-np.inf)), np.nextafter(guess, F32(np.inf))):
        if not np.isfinite(cand):
            continue
        d_best, d_cand = abs(Fraction(float(best)) - q), abs(Fraction(float(cand)) - q)
        even = int(cand.view(np.uint32)) % 2 == 0
        if d_cand < d_best or (d_cand == d_best and even):
            best = cand
    return F32(best)


class Ieee32ExecField(ArrayField):
    """The reproducible binary32 field; values are NumPy float32 arrays."""

    name = "ieee32exec"

    def asarray(self, data: object) -> Array:
        if isinstance(data, Fraction):
            return np.asarray(fraction_to_float32(data))
        raw = np.asarray(data)
        if raw.dtype == object:
            out = [fraction_to_float32(Fraction(x)) for x in raw.reshape(-1)]
            return np.asarray(out, dtype=F32).reshape(raw.shape)
        with np.errstate(over="ignore"):  # beyond the binary32 range rounds to ±inf
            return b32.canonical_nan(np.asarray(raw, dtype=F32))

    def constant(self, value: Constant, like: Array | None = None) -> Array:
        if isinstance(value, SymbolicPi):
            return np.asarray(F32(np.pi))  # binary64 pi rounds to the binary32 nearest pi
        if isinstance(value, float):  # one rounding of the binary64 value; keeps -0, inf, NaN
            with np.errstate(over="ignore"):
                return b32.canonical_nan(np.asarray(value, dtype=F32))
        return np.asarray(fraction_to_float32(Fraction(value)))

    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]:
        return np.asarray(a, dtype=F32)

    def add(self, a: Array, b: Array) -> Array:
        return b32.add(a, b)

    def sub(self, a: Array, b: Array) -> Array:
        return b32.sub(a, b)

    def mul(self, a: Array, b: Array) -> Array:
        return b32.mul(a, b)

    def div(self, a: Array, b: Array) -> Array:
        return b32.div(a, b)

    def neg(self, a: Array) -> Array:
        return b32.neg(a)

    def abs(self, a: Array) -> Array:
        return b32.abs(a)

    def maximum(self, a: Array, b: Array) -> Array:
        return b32.maximum(a, b)

    def minimum(self, a: Array, b: Array) -> Array:
        return b32.minimum(a, b)

    def sqrt(self, a: Array) -> Array:
        return b32.sqrt(a)

    def exp(self, a: Array) -> Array:
        return b32.exp(a)

    def log(self, a: Array) -> Array:
        return b32.log(a)

    def log1p(self, a: Array) -> Array:
        return b32.log1p(a)

    def expm1(self, a: Array) -> Array:
        return b32.expm1(a)

    def tanh(self, a: Array) -> Array:
        return b32.tanh(a)

    def sigmoid(self, a: Array) -> Array:
        return b32.sigmoid(a)

    def softplus(self, a: Array) -> Array:
        return b32.softplus(a)

    def erf(self, a: Array) -> Array:
        return b32.erf(a)

    def gelu(self, a: Array) -> Array:
        return b32.gelu(a)

    def sin(self, a: Array) -> Array:
        return b32.sin(a)

    def cos(self, a: Array) -> Array:
        return b32.cos(a)

    def step(self, a: Array) -> Array:
        return np.asarray(a > 0, dtype=F32)  # NaN compares false: step(NaN) = 0

    def greater(self, a: Array, b: Array) -> Array:
        return np.asarray(np.greater(a, b), dtype=F32)

    def select(self, cond: Array, a: Array, b: Array) -> Array:
        return np.asarray(np.where(cond != 0, a, b), dtype=F32)

    def one_hot(self, labels: Array, num_classes: int) -> Array:
        idx = check_integral_labels(np.asarray(labels), num_classes)
        return np.asarray(idx[..., None] == np.arange(num_classes), dtype=F32)

    def argmax_mask(self, a: Array, axes: tuple[int, ...]) -> Array:
        return np.asarray(first_max_mask(np.asarray(a), axes), dtype=F32)

    def sum(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        return b32.sum_left_fold(a, axes, keepdims)

    def max(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        return b32.max_reduce(a, axes, keepdims)

    def matmul(self, a: Array, b: Array) -> Array:
        return b32.matmul_left_fold(a, b)


ieee32exec = Ieee32ExecField()
