"""Outward-rounded binary64 arithmetic shared by the sound analyses (rounding-error
bounds, IBP/CROWN, zonotopes): a step outward after each correctly rounded NumPy
operation turns its result into a bound, and Higham's gamma_n bounds a float64 sum."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..spec.errors import UnsupportedOperation

__all__ = ["U64", "TINY64", "TINY_NORMAL", "up", "dn", "gamma_up", "gamma64", "sum_up",
           "mul_up", "mul_dn", "magnitude", "next_up", "next_down", "up_nonneg_inplace"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
U64 = 2.0**-53  # binary64's unit roundoff
TINY64 = 2.0**-1074  # binary64's subnormal spacing: the error of an underflowing result
TINY_NORMAL = 2.0**-1021  # a generous per-term allowance for subnormal results of a sum


def up(x: Any) -> Arr:
    """The next binary64 number above x (elementwise): an upper bound of the exact value
    whose round-to-nearest result x is. (np.nextafter's result, bit for bit; on large
    arrays by the faster bit step of `next_up`.) Other dtypes step in their own format, as
    np.nextafter does, before conversion to binary64."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        return _step(x, np.inf)
    return np.asarray(np.nextafter(x, np.inf), dtype=np.float64)


def dn(x: Any) -> Arr:
    """The next binary64 number below x (elementwise): a lower bound likewise."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        return _step(x, -np.inf)
    return np.asarray(np.nextafter(x, -np.inf), dtype=np.float64)


def gamma_up(m: Any, u: float) -> Arr:
    """An upper bound of Higham's gamma_m = m u / (1 - m u) (elementwise over m; valid for
    m u < 1)."""
    mu = np.asarray(m, dtype=np.float64) * u  # exact: u is a power of two, m < 2^53
    return up(mu / dn(1.0 - mu))


def gamma64(n: int) -> float:
    """Higham's gamma_n for binary64 (n u / (1 - n u), u = 2^-53), times 1.01: the extra
    percent also covers the few roundings of the cheap magnitude bound it multiplies.
    Sums longer than 0.01 / u terms are refused."""
    nu = n * U64
    if nu >= 0.01:
        raise UnsupportedOperation("matmul", "float", f"dot products of length {n} are too long")
    return 1.01 * nu / (1.0 - nu)


def sum_up(x: Arr, axis: Any) -> Arr:
    """An upper bound of the exact sum of the NONNEGATIVE `x` over `axis`."""
    n = int(np.prod([x.shape[a] for a in np.atleast_1d(axis)])) if x.ndim else 1
    s = np.sum(x, axis=axis)
    return up(s * (1.0 + gamma64(max(n, 1))) + n * TINY_NORMAL)


def mul_dn(a: Any, b: Any) -> Arr:
    """A lower bound of the exact product a * b (elementwise)."""
    return dn(np.multiply(a, b))


def mul_up(a: Any, b: Any) -> Arr:
    """An upper bound of the exact product a * b (elementwise)."""
    return up(np.multiply(a, b))


def magnitude(lo: Arr, hi: Arr) -> Arr:
    """max |x| over the interval [lo, hi] (elementwise, exact)."""
    return np.maximum(np.abs(lo), np.abs(hi))


_STEP_MIN = 2048  # smaller arrays: np.nextafter is faster (its per-call cost is lower)


def _step(x: Any, toward: float) -> Arr:
    xs = np.asarray(x, dtype=np.float64)
    if xs.size < _STEP_MIN:
        return np.asarray(np.nextafter(xs, toward), dtype=np.float64)
    bits = xs.view(np.int64)
    # a finite nonzero number's neighbour is the next bit pattern in magnitude: +1 away
    # from 0, -1 towards it (sign-magnitude layout); (bits >> 63) | 1 is sign(x) as +-1.
    # In place, one temporary: large temporaries cost page faults
    out = bits >> 63
    out |= 1
    if toward > 0:
        out += bits
    else:
        np.subtract(bits, out, out=out)
    res = out.view(np.float64)
    # The bit step is np.nextafter's result except for a zero stepped across 0 (+0 down,
    # -0 up), an infinity stepped outward, and NaN: the first two give NaN here, and a NaN
    # or infinite input makes the input's sum non-finite, so one sum of each finds them all
    # (a large finite sum may overflow too: those arrays just take the slow path); those
    # elements then take np.nextafter. Plain reductions, not a BLAS dot product: a
    # threaded dot of 25600 entries took 9 ms on a loaded machine.
    with np.errstate(invalid="ignore", over="ignore"):
        check = np.add.reduce(xs, axis=None) + np.add.reduce(res, axis=None)
    if not np.isfinite(check):
        special = ~(np.isfinite(xs) & (xs != 0))
        res[special] = np.nextafter(xs[special], toward)
    return res.reshape(xs.shape)


def next_up(x: Any) -> Arr:
    """The same as `up` (np.nextafter(x, inf), bit for bit), several times faster on large
    arrays."""
    return _step(x, np.inf)


def next_down(x: Any) -> Arr:
    """The same as `dn` (np.nextafter(x, -inf), bit for bit), faster on large arrays."""
    return _step(x, -np.inf)


def up_nonneg_inplace(x: Arr) -> Arr:
    """x <- up(x) (np.nextafter(x, inf), bit for bit) for an x with no negative element
    and no -0.0 (a sum or product of magnitudes, say; the caller's precondition): there
    a finite element's next binary64 is its bit pattern plus one, so one sum to find a
    NaN or infinity and one integer addition replace the general step. Returns x (a new
    array for a scalar or 0-d x, which is not changed)."""
    if not isinstance(x, np.ndarray) or x.ndim == 0 or x.dtype != np.float64:
        return np.asarray(np.nextafter(x, np.inf), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = bool(np.isfinite(np.add.reduce(x, axis=None)))
    if finite:
        x.view(np.int64)[...] += 1
    else:  # (an infinity or NaN: the general step; also a sum that merely overflowed)
        np.nextafter(x, np.inf, out=x)
    return x
