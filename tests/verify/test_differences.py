"""Central differences: the derived tolerance covers the actual error of the difference
quotient (checked against closed-form derivatives), stays tight, and random directions
are exact in every field."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec import exact, float64
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify.gradients.differences import FLOAT64, central_differences, mp_arithmetic
from torchlean.verify.gradients.directions import RANDOM_DENOMINATOR_BITS, Directions
from torchlean.verify.gradients.mpfloat import MPFloatField
from torchlean.verify.gradients.trees import Leaf

MP = MPFloatField(100)


def mp_derivative(name: str, x: float) -> float:
    """The closed-form derivative, at 100 bits (its error is negligible here)."""
    m = MP.ctx
    v = m.mpf(x)
    table = {
        "exp(3x)": lambda: 3 * m.exp(3 * v),
        "sin(20x)": lambda: 20 * m.cos(20 * v),
        "x^5": lambda: 5 * v**4,
        "1/(1+x^2)": lambda: -2 * v / (1 + v * v) ** 2,
        "gelu": lambda: m.ncdf(v) + v * m.npdf(v),
    }
    return float(table[name]())


# The same functions through the op table, differenced in binary64.
OPS: dict[str, Callable[[Any], Any]] = {
    "exp(3x)": lambda t: F.exp(t * 3.0),
    "sin(20x)": lambda t: F.sin(t * 20.0),
    "x^5": lambda t: t**5,
    "1/(1+x^2)": lambda t: 1.0 / (t * t + 1.0),
    "gelu": F.gelu,
}


def evaluator(f: Callable[[Any], Any], field: Any) -> Callable[[Any], Any]:
    def evaluate(arrays: Any) -> Any:
        out = F.sum(f(Tensor(arrays[0], field)))
        return field.to_numpy(out.data).reshape(()).item()

    return evaluate


@settings(deadline=None, max_examples=25)
@given(name=st.sampled_from(sorted(OPS)), x=st.floats(-3, 3, allow_nan=False))
def test_tolerance_covers_the_actual_error(name: str, x: float) -> None:
    point = [np.array([x])]
    dirs = Directions.basis([Leaf("x", (1,), 0)])
    # analytic = NaN forces the Richardson estimate, so the full tolerance is computed.
    res = central_differences(evaluator(OPS[name], float64), point, dirs, FLOAT64, depth=4,
                              analytic=np.array([math.nan]), allowance=np.zeros(1),
                              analytic_abs=[np.zeros(1)])
    truth = mp_derivative(name, x)
    error = abs(float(res.derivative[0]) - truth)
    assert error <= res.tolerance[0], (name, x, error, res.tolerance[0])
    # ... and is not vacuous: h^2 |f'''| / 6 with h = 2^-18 and |f'''| <= 8000 (sin 20x)
    # is ~1e-8, so 1e-7 relative to the derivative's scale bounds every case, while a
    # wrong rule shows as an O(1) relative error.
    assert res.tolerance[0] <= 1e-7 * (1 + abs(truth))
    assert point[0][0] == x  # the perturbed entry is restored


def test_mpmath_differences_are_tight() -> None:
    point = [np.array([MP.ctx.mpf(0.7)], dtype=object)]
    dirs = Directions.basis([Leaf("x", (1,), 0)])
    res = central_differences(evaluator(OPS["gelu"], MP), point, dirs, mp_arithmetic(MP.ctx),
                              depth=4, analytic=np.array([math.nan]), allowance=np.zeros(1),
                              analytic_abs=[np.zeros(1)])
    truth = MP.ctx.ncdf(MP.ctx.mpf(0.7)) + MP.ctx.mpf(0.7) * MP.ctx.npdf(MP.ctx.mpf(0.7))
    # At 100 bits h = 2^-33: truncation h^2 |f'''| and rounding 4 * 2^-100 / h are both
    # ~1e-20, against ~1e-10 for binary64.
    assert abs(res.derivative[0] - truth) <= res.tolerance[0] <= 1e-18


def test_random_directions_are_exact_nonzero_dyadics() -> None:
    leaves = [Leaf("a", (2, 3), 0), Leaf("b", (4,), 0)]
    dirs = Directions.sample(leaves, 3, seed=7)
    assert dirs.count == 3 and dirs.random is not None
    for d in dirs.random:
        for u in d:
            scaled = u * 2**RANDOM_DENOMINATOR_BITS
            assert np.all(scaled == np.round(scaled)) and np.all(u != 0) and np.all(abs(u) <= 1)
    seeds = dirs.seeds(exact, range(3))
    first = seeds[0]
    assert first is not None
    assert first[0, 1, 2] == Fraction(float(dirs.random[0][0][1, 2]))  # exact, not rounded
    assert Directions.sample(leaves, 3, seed=7).random is not None
    again = Directions.sample(leaves, 3, seed=7).random
    assert again is not None and all(
        np.array_equal(p, q) for a, b in zip(dirs.random, again, strict=True)
        for p, q in zip(a, b, strict=True)
    )


def test_basis_names_every_entry_in_row_major_order() -> None:
    dirs = Directions.basis([Leaf("w", (2, 2), 0), Leaf("b", (), 0)])
    assert [dirs.name_of(j)[0] for j in range(dirs.count)] == [
        "w[0, 0]", "w[0, 1]", "w[1, 0]", "w[1, 1]", "b",
    ]
