"""Time the ieee32exec kernels against native NumPy float32 (run: python bench/bench_ieee32.py).

Prints, for exp and tanh on 10**6 float32 values and for a 128x784 @ 784x256 matmul, the
best-of-N wall time of `binary32` and of plain NumPy float32, and their ratio. Goals:
<= 5x for the elementwise functions, <= 40x for the matmul.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from torchlean.spec.fields import binary32


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up (allocations, lazy imports)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def row(name: str, ours: float, native: float) -> None:
    print(f"{name:<34} {ours * 1e3:9.3f} ms {native * 1e3:9.3f} ms {ours / native:7.1f}x")


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-10, 10, 10**6).astype(np.float32)
    a = rng.standard_normal((128, 784)).astype(np.float32)
    b = rng.standard_normal((784, 256)).astype(np.float32)
    print(f"{'':<34} {'binary32':>12} {'native f32':>12} {'ratio':>8}")
    row("exp, 1e6 values", best_of(lambda: binary32.exp(x), 30), best_of(lambda: np.exp(x), 30))
    row("tanh, 1e6 values", best_of(lambda: binary32.tanh(x), 30), best_of(lambda: np.tanh(x), 30))
    row(
        "matmul 128x784 @ 784x256",
        best_of(lambda: binary32.matmul_left_fold(a, b), 10),
        best_of(lambda: a @ b, 30),
    )


if __name__ == "__main__":
    main()
