"""The error model of `verify.rounding`: the constants of binary32, per-node bounds
(`Bound`: a real-value enclosure and an error bound), what a rule needs to know about
its node (`Ctx`), and rigorous magnitudes and function images in binary64.

fl(a op b) = (a op b)(1 + d) + h, |d| <= u = 2^-24, with the underflow term |h| <= 2^-150
where the result may be subnormal; docs/verify-rounding.md has the derivations. Every
figure here is computed with outward rounding (verify/outward.py), so it is an upper
(or, for a lower end, a lower) bound of the exact quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from mpmath import libmp
from mpmath.ctx_iv import MPIntervalContext

from ...spec.errors import TorchLeanError
from ..outward import gamma_up, up_nonneg_inplace
from ..outward import next_up as _up

__all__ = [
    "MODES", "METHODS", "ENCLOSURES", "U32", "ETA", "SUBNORMAL", "OVERFLOW", "ULP_BUDGET",
    "RoundingBoundError", "Bound", "Ctx", "absmax", "absmin", "half_ulp", "gamma",
    "up_nonneg_inplace", "BELOW_OVERFLOW",
    "may_be_subnormal",
    "image", "iv", "iv_lo", "iv_hi", "IV_CTX", "Mode", "Arr", "Mask", "Index",
    "GELU_SLOPE", "TWO_OVER_SQRT_PI",
]


Mode = Literal["ieee32exec", "float32_any_order"]
MODES: tuple[str, ...] = ("ieee32exec", "float32_any_order")
METHODS: tuple[str, ...] = ("affine", "elementwise")
ENCLOSURES: tuple[str, ...] = ("zonotope", "interval")
U32 = 2.0**-24
ETA = 2.0**-150  # half the binary32 subnormal spacing 2^-149
SUBNORMAL = 2.0**-126  # smallest normal binary32
OVERFLOW = 2.0**128 - 2.0**103  # exact results at least this large round to infinity
# up(v) >= OVERFLOW iff v >= BELOW_OVERFLOW (up is monotone and up(BELOW_OVERFLOW) =
# OVERFLOW; NaN compares false either way): the overflow test without the step
BELOW_OVERFLOW = float(np.nextafter(OVERFLOW, -np.inf))
ULP_BUDGET = 4  # assumed vendor-libm accuracy in float32_any_order mode (stated, not proven)
# sup |gelu'| = Phi(sqrt 2) + sqrt 2 phi(sqrt 2) ~ 1.12899 (gelu'' = phi (2 - x^2) vanishes
# at +-sqrt 2); 1.13 is an upper bound. 2/sqrt(pi) = 1.1283791670955126... rounded up.
GELU_SLOPE = 1.13
TWO_OVER_SQRT_PI = 1.1283791670955130

Arr = np.ndarray[Any, np.dtype[np.float64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]
Index = np.ndarray[Any, np.dtype[np.int64]]
T = TypeVar("T", bound=np.dtype[Any])
IV_CTX: Any = MPIntervalContext()
IV_CTX.prec = 64


class RoundingBoundError(TorchLeanError, ValueError):
    """No sound bound exists under the error model (overflow possible, bad box, division
    by a possibly-zero value, NaN parameters); the message names the node or input."""


# -- magnitudes of enclosures (outward rounding: verify/outward.py) --------------------
def absmax(lo: Arr, hi: Arr) -> Arr:
    """The largest |x| over [lo, hi]."""
    return np.maximum(np.abs(lo), np.abs(hi))


def absmin(lo: Arr, hi: Arr) -> Arr:
    """The smallest |x| over [lo, hi]."""
    return np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))


_NORMAL64 = 2.0**-1022  # the smallest normal binary64
_EXPONENT = np.int64(0x7FF0000000000000)  # a binary64's exponent bits


def half_ulp(m: Any, u: float) -> Arr:
    """u * 2^floor(log2 m): the largest rounding error of a round-to-nearest result whose
    exact value has magnitude <= m and is normal (an exponent of m, not m itself: up to 2x
    below u*m). Exact in binary64 (a power of two times u)."""
    mm = np.asarray(m, dtype=np.float64)
    if mm.size >= 64 and bool(np.all(mm >= _NORMAL64)):
        # every m normal or +inf: 2^floor(log2 m) is m with its fraction bits cleared
        # (+inf stays +inf), scaled by u: the same figure as below, bit for bit
        return np.asarray((mm.view(np.int64) & _EXPONENT).view(np.float64) * u)
    _, ex = np.frexp(mm)  # mm = f 2^ex with f in [1/2, 1): floor(log2 mm) = ex - 1
    out = np.ldexp(np.full_like(mm, u), ex - 1)
    return np.asarray(np.where(np.isfinite(mm), np.where(mm > 0, out, 0.0), np.inf))


def gamma(m: Any, u: float) -> Arr:
    """An upper bound of gamma_m = m u / (1 - m u) (elementwise over m)."""
    mu = np.asarray(m, dtype=np.float64) * u
    if np.any(mu >= 0.5):
        raise RoundingBoundError(f"fold of {np.max(m)} terms: m*u = {np.max(mu)} >= 1/2")
    return gamma_up(m, u)


@dataclass
class Bound:
    """One node's real-value enclosure [lo, hi] and error bound e (float64 arrays)."""

    lo: Arr
    hi: Arr
    e: Arr
    local: Arr | None = None
    """Where a rule bounded it apart (a matmul's split fold): the node's own rounding on
    any computed arguments within the arguments' e of the real ones; e includes it."""

    @property
    def mag(self) -> Arr:
        return absmax(self.lo, self.hi)


@dataclass(frozen=True)
class Ctx:
    """What the rules need: the mode, the unit roundoff, and whether this node rounds."""

    mode: str
    u: float
    rounds: bool
    where: str

    def rho(self, m: Arr, may_sub: Arr) -> Arr:
        """Rounding error of one correctly rounded result of magnitude <= m."""
        if not self.rounds:
            return np.zeros_like(m)
        # half_ulp is +0, positive or +inf (a new array): up steps its bits in place
        h = up_nonneg_inplace(half_ulp(m, self.u))
        if not np.any(may_sub):  # (adding 0.0 changes nothing)
            return up_nonneg_inplace(h)
        return up_nonneg_inplace(h + np.where(may_sub, ETA, 0.0))

    def rho_fn(self, m: Arr, may_sub: Arr) -> Arr:
        """Rounding error of a function value: correctly rounded, or ULP_BUDGET ulps."""
        if self.mode == "ieee32exec" or not self.rounds:
            return self.rho(m, may_sub)
        # ulp(y) <= 2u|y| for normal y, and 2^-149 on the subnormal grid.
        return _up(ULP_BUDGET * _up(_up(2 * self.u * m) + 2.0**-149))


def may_be_subnormal(lo: Arr, hi: Arr, slack: Arr) -> Arr:
    """Where a value in [lo, hi] give or take `slack` may be below the smallest normal."""
    # down(v) < SUBNORMAL iff v <= SUBNORMAL (v <= S: down(v) < v; v > S: v >= up(S), so
    # down(v) >= S; NaN fails both, -inf passes both): the test without the step
    return np.asarray(absmin(lo, hi) - slack <= SUBNORMAL)


def iv(lo: float, hi: float) -> Any:
    """The mpmath interval [lo, hi] (64 bits)."""
    return IV_CTX.mpf([lo, hi])


def iv_lo(x: Any) -> float:
    """The lower end of an mpmath interval, rounded down to binary64."""
    return float(libmp.to_float(x._mpi_[0], rnd=libmp.round_floor))


def iv_hi(x: Any) -> float:
    """The upper end of an mpmath interval, rounded up to binary64."""
    return float(libmp.to_float(x._mpi_[1], rnd=libmp.round_ceiling))


def image(fn: Callable[[Any, Any], Any], lo: Arr, hi: Arr) -> tuple[Arr, Arr]:
    """Elementwise enclosures of fn([lo, hi]) for an interval function of interval_math."""
    olo, ohi = np.empty_like(lo), np.empty_like(hi)
    for i in np.ndindex(lo.shape):
        y = fn(IV_CTX, iv(float(lo[i]), float(hi[i])))
        olo[i], ohi[i] = iv_lo(y), iv_hi(y)
    return olo, ohi

