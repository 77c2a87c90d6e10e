"""Seeded random draws that are identical on every machine and NumPy version.

Every draw (a parameter's initial values, a dropout mask) comes from its own PCG64 stream,
seeded by `SeedSequence([seed, crc32(name), domain])`: a pure function of the user's seed
or key, the parameter name or layer path, and what the draw is for. Uniform doubles are
made from the raw 64-bit outputs as (bits >> 11) * 2**-53, so only PCG64 and SeedSequence
(whose streams NumPy keeps stable, NEP 19) are involved, not `Generator` methods.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ..shapes import Shape, size_of

__all__ = ["INIT", "DROPOUT", "uniform01", "check_seed"]

INIT = 0  # domain tag: initial parameter values
DROPOUT = 1  # domain tag: dropout keep-masks


def check_seed(value: object, what: str) -> int:
    """`value` as a seed: a non-negative int (bools rejected), else ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative int, got {value!r}")
    return int(value)


def uniform01(seed: int, name: str, domain: int, shape: Shape) -> np.ndarray[Any, Any]:
    """Doubles uniform on [0, 1) of `shape`, from the stream of (seed, name, domain)."""
    words = [seed, zlib.crc32(name.encode("utf-8")), domain]
    bits = np.random.PCG64(np.random.SeedSequence(words)).random_raw(size_of(shape))
    return ((bits >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(shape)
