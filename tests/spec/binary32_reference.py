"""The tests' own model of binary32: exact rationals and a rounding written from scratch.

Nothing here uses NumPy's float arithmetic or casts: values are decoded from and encoded
to bit patterns with integer arithmetic, so the kernels under test are checked against
an independent implementation of IEEE-754 round-to-nearest-even.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

SIGN_BIT = 0x80000000
EXP_MASK = 0x7F800000
FRAC_MASK = 0x007FFFFF
POS_INF = 0x7F800000
NEG_INF = 0xFF800000
CANONICAL_NAN = 0x7FC00000
TWO = Fraction(2)


def bits_of(x: object) -> int:
    """The bit pattern of a float32 value (scalar or 0-d array)."""
    return int(np.asarray(x, dtype=np.float32).view(np.uint32))


def from_bits(b: int) -> np.float32:
    """The float32 with bit pattern b."""
    return np.float32(np.array(b, dtype=np.uint32).view(np.float32)[()])


def array_from_bits(bits: list[int]) -> np.ndarray:
    """A float32 array with the given bit patterns."""
    return np.array(bits, dtype=np.uint32).view(np.float32)


def is_nan(b: int) -> bool:
    return (b & EXP_MASK) == EXP_MASK and (b & FRAC_MASK) != 0


def is_inf(b: int) -> bool:
    return (b & ~SIGN_BIT) == POS_INF


def is_zero(b: int) -> bool:
    return (b & ~SIGN_BIT) == 0


def sign_of(b: int) -> bool:
    """True for a set sign bit (negative numbers, -0, -inf)."""
    return bool(b & SIGN_BIT)


def bits_to_fraction(b: int) -> Fraction:
    """The exact rational value of a finite binary32 bit pattern (zeros give 0)."""
    assert not is_nan(b) and not is_inf(b), hex(b)
    biased = (b & EXP_MASK) >> 23
    frac = b & FRAC_MASK
    if biased == 0:  # subnormal: 0.frac * 2**-126
        mag = Fraction(frac) * TWO**-149
    else:  # normal: 1.frac * 2**(biased-127)
        mag = Fraction(frac + (1 << 23)) * TWO ** (biased - 127 - 23)
    return -mag if sign_of(b) else mag


def _floor_log2(a: Fraction) -> int:
    """The integer e with 2**e <= a < 2**(e+1), for a > 0."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while TWO**e > a:
        e -= 1
    while TWO ** (e + 1) <= a:
        e += 1
    return e


def round_fraction_to_binary32(q: Fraction, negative: bool = False) -> int:
    """Round q to binary32, nearest with ties to even; return the bit pattern.

    Subnormals are rounded on their 2**-149 grid; magnitudes that round to 2**128 or
    beyond become infinities (that is, |q| >= 2**128 - 2**103). When q is zero (or rounds
    to zero) the sign comes from q's sign, or from `negative` when q == 0 exactly.
    """
    if q == 0:
        return SIGN_BIT if negative else 0
    sign = SIGN_BIT if q < 0 else 0
    a = -q if q < 0 else q
    quantum = max(_floor_log2(a) - 23, -149)  # exponent of one ulp at a's binade
    scaled = a / TWO**quantum
    n = scaled.numerator // scaled.denominator
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    if n == 1 << 24:  # rounded up into the next binade
        n, quantum = 1 << 23, quantum + 1
    if n < 1 << 23:  # subnormal (or zero): quantum is -149
        return sign | n
    biased = quantum + 23 + 127
    if biased >= 255:
        return sign | POS_INF
    return sign | (biased << 23) | (n - (1 << 23))


def round_fraction_interval(lo: Fraction, hi: Fraction) -> int | None:
    """The common rounding of every value in [lo, hi] (same sign), or None if they differ."""
    a, b = round_fraction_to_binary32(lo), round_fraction_to_binary32(hi)
    return a if a == b else None
