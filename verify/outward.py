"""Outward-rounded binary64 arithmetic shared by the rounding-error analyses: a step
outward after each correctly rounded NumPy operation turns its result into a bound."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["U64", "TINY64", "up", "dn", "gamma_up"]

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
