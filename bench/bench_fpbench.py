"""verify.rounding on FPBench scalar expressions, against FPTaylor's figures and observation
(run: python bench/bench_fpbench.py [samples], default 2000).

Each expression is written once, with operators, and used three ways: traced into a graph
for `error_bound`, run on Python floats (IEEE binary64, the same operation tree) and on
Fractions (the real value). The bound is taken with u = 2^-53, i.e. for binary64
evaluation of that tree: the error model is the binary32 one with u changed, and its
binary32-specific parts (the underflow term 2^-150 below 2^-126, the binary32 overflow
threshold) only over-estimate for binary64. Inputs are the binary64 numbers of the box
(no rounding on entry), as in FPBench.

FPTaylor's figures are its absolute binary64 error bounds for these FPBench expressions
and boxes as recorded by a third-party run (github.com/lczielinski/egrammars,
benchmarks/reference_bounds.json, "abs_err"); FPTaylor is Solovyev et al., "Rigorous
Estimation of Floating-Point Round-off Errors with Symbolic Taylor Expansions" (FM 2015).
Prints, per expression: our bound, FPTaylor's, their ratio, the largest error observed at
the box's corners and random points, and bound / observed.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from torchlean.runtime.graph import trace
from torchlean.verify.rounding import error_bound

Box = dict[str, tuple[float, float]]


def rigidbody1(x1: Any, x2: Any, x3: Any) -> Any:
    return -(x1 * x2) - (2 * x2) * x3 - x1 - x3


def rigidbody2(x1: Any, x2: Any, x3: Any) -> Any:
    return (((2 * x1) * x2) * x3 + (3 * x3) * x3 - ((x2 * x1) * x2) * x3
            + (3 * x3) * x3) - x2


def himmilbeau(x1: Any, x2: Any) -> Any:
    return ((x1 * x1 + x2) - 11) * ((x1 * x1 + x2) - 11) \
        + ((x1 + x2 * x2) - 7) * ((x1 + x2 * x2) - 7)


def floudas3(x1: Any, x2: Any) -> Any:
    return ((-12) * x1 - 7 * x2) + x2 * x2


def martel_p6(a: Any, b: Any, c: Any, d: Any) -> Any:
    return (a + (b + (c + d))) * 2


def complex_square_real(re: Any, im: Any) -> Any:
    return re * re - im * im


def expand_square(x: Any) -> Any:
    return (x + 1) * (x + 1) - 1


def fastmath_dist4(d1: Any, d2: Any, d3: Any, d4: Any) -> Any:
    return ((d1 * d2 - d1 * d3) + d4 * d1) - d1 * d1


def matrixdeterminant(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, g: Any, h: Any,
                      i: Any) -> Any:
    return (((a * e) * i + (b * f) * g) + (c * d) * h) \
        - (((c * e) * g + (b * d) * i) + (a * f) * h)


def _box(names: str, lo: float, hi: float) -> Box:
    return {n: (lo, hi) for n in names.split()}


# (expression, box, FPTaylor's recorded binary64 absolute bound)
CASES: list[tuple[Callable[..., Any], Box, float]] = [
    (rigidbody1, _box("x1 x2 x3", -15, 15), 2.131629e-13),
    (rigidbody2, _box("x1 x2 x3", -15, 15), 2.271606e-11),
    (himmilbeau, _box("x1 x2", -5, 5), 5.897505e-13),
    (floudas3, {"x1": (0, 2), "x2": (0, 3)}, 1.154632e-14),
    (martel_p6, {"a": (-14, -13), "b": (-3, -2), "c": (3, 3.5), "d": (12.5, 13.5)},
     5.77316e-15),
    (complex_square_real, _box("re im", 1, 2), 6.661339e-16),
    (expand_square, {"x": (-1, 1)}, 1.110224e-15),
    (fastmath_dist4, _box("d1 d2 d3 d4", 1, 100), 6.48015e-12),
    (matrixdeterminant, _box("a b c d e f g h i", -10, 10), 1.563195e-12),
]


def observed(fn: Callable[..., Any], box: Box, samples: int, seed: int) -> float:
    """The largest |binary64 evaluation - real value| at the box's corners and random
    points (the real value exact over Fraction)."""
    rng = np.random.default_rng(seed)
    names = list(box)
    points = [list(c) for c in itertools.product(*(box[n] for n in names))][:512]
    lo = np.array([box[n][0] for n in names], dtype=np.float64)
    hi = np.array([box[n][1] for n in names], dtype=np.float64)
    points += (lo + (hi - lo) * rng.random((samples, len(names)))).tolist()
    worst = Fraction(0)
    for p in points:
        computed = fn(*(float(v) for v in p))
        exact = fn(*(Fraction(v) for v in p))
        worst = max(worst, abs(Fraction(computed) - exact))
    return float(worst)


def main(samples: int) -> None:
    print(f"{'expression':20s} {'ours':>10s} {'FPTaylor':>10s} {'ours/FPT':>9s} "
          f"{'observed':>10s} {'ours/obs':>9s} {'time':>7s}")
    for fn, box, fptaylor in CASES:
        graph = trace(fn, {n: () for n in box}, field="ieee32exec")
        arrays = {n: (np.float64(lo), np.float64(hi)) for n, (lo, hi) in box.items()}
        t = time.perf_counter()
        ours = error_bound(graph, {}, arrays, attribute=False, u=2.0**-53).bound
        dt = time.perf_counter() - t
        obs = observed(fn, box, samples, 0)
        print(f"{fn.__name__:20s} {ours:10.3e} {fptaylor:10.3e} {ours / fptaylor:9.2f} "
              f"{obs:10.3e} {ours / obs if obs else float('inf'):9.1f} {dt:6.3f}s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
