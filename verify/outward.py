"""Outward-rounded binary64 arithmetic shared by the rounding-error analyses: a step
outward after each correctly rounded NumPy operation turns its result into a bound."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["U64", "TINY64", "up", "dn", "next_up", "next_down", "gamma_up"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
U64 = 2.0**-53  # binary64's unit roundoff
TINY64 = 2.0**-1074  # binary64's subnormal spacing: the error of an underflowing result


def up(x: Any) -> Arr:
    """The next binary64 number above x (elementwise): an upper bound of the exact value
    whose round-to-nearest result x is."""
    return np.asarray(np.nextafter(x, np.inf), dtype=np.float64)


def dn(x: Any) -> Arr:
    """The next binary64 number below x (elementwise): a lower bound likewise."""
    return np.asarray(np.nextafter(x, -np.inf), dtype=np.float64)


def gamma_up(m: Any, u: float) -> Arr:
    """An upper bound of Higham's gamma_m = m u / (1 - m u) (elementwise over m; valid for
    m u < 1)."""
    mu = np.asarray(m, dtype=np.float64) * u  # exact: u is a power of two, m < 2^53
    return up(mu / dn(1.0 - mu))


_STEP_MIN = 64  # smaller arrays: np.nextafter's per-call cost is the lower one


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
    # zeros, infinities and NaN (min or max is then NaN or infinite): np.nextafter itself
    if not (np.isfinite(xs.min()) and np.isfinite(xs.max()) and np.count_nonzero(xs) == xs.size):
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
