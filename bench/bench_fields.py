"""The cost of the object-array fields: a 32 x 32 matmul over `interval` and `exact`.

    python bench/bench_fields.py

Prints nanoseconds per multiply-add (32^3 of them per matmul), next to the same
matmul in native float64 for scale. (The ieee32exec figures are in bench_ieee32.py.)
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

import torchlean as tl
from torchlean.spec import functional as F

N = 32


def per_madd(dtype: str, repeats: int) -> float:
    """Best seconds per multiply-add of an N x N matmul in `dtype`."""
    rng = np.random.default_rng(0)
    vals = rng.integers(-1000, 1000, (2, N, N))
    a = tl.tensor([[Fraction(int(v), 997) for v in row] for row in vals[0]], dtype)
    b = tl.tensor([[Fraction(int(v), 991) for v in row] for row in vals[1]], dtype)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        F.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return best / N**3


def main() -> None:
    """Print the table."""
    for dtype, repeats in (("float", 200), ("exact", 3), ("interval", 3)):
        print(f"{dtype:>9}: {per_madd(dtype, repeats) * 1e9:10.2f} ns per multiply-add")


if __name__ == "__main__":
    main()
