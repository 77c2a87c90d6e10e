"""Central differences with a step per entry and a tolerance derived from the step.

For a direction d and step h, D(h) = (f(x + h d) - f(x - h d)) / 2h has two errors
(Taylor; e.g. Nocedal & Wright, *Numerical Optimization*, 2nd ed., §8.1):

- truncation: D(h) - f'(x; d) = h^2 f'''(x; d) / 6 + O(h^4). f''' is unknown, so it is
  estimated by Richardson's comparison of two steps: D(2h) - D(h) = 3 h^2 f''' / 6 +
  O(h^4), hence T = |D(2h) - D(h)| / 3;
- rounding: each evaluation of f carries an error of at most gamma_L * S (L the rounding
  depth of f, see `allowance`; S = the largest magnitude of any intermediate value of f
  at x, or of f at the evaluation points: f may be a small difference of large terms,
  whose rounding errors are relative to the terms), so the
  quotient carries at most R = 2 gamma_L S / (2h') where 2h' is the exact distance between
  the two evaluation points (the rounded perturbed inputs, measured exactly). Along a
  random direction the perturbed inputs themselves round: add
  I = u sum_i |g_i| (|x_i| + h |u_i|) / h (u the unit roundoff, g the analytic gradient
  standing in for the true one).

The tolerance of an entry is E = 2 (T + R + I): the factor 2 covers the neglected O(h^4)
and O(u) terms of these first-order estimates. The step is h_i = t max(1, |x_i|) with
t = 2^-round(p/3) for p-bit arithmetic (2^-18 in binary64, near cbrt(u), which balances
h^2 against u / h); along a random direction u the step is h = t max(1, max_i |x_i|).
T costs two more evaluations, so it is computed only for entries that do not already
pass with T = 0 (T >= 0 can only widen the tolerance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .allowance import gamma
from .directions import Directions

__all__ = ["Arithmetic", "FLOAT64", "mp_arithmetic", "Differences", "central_differences"]

Evaluate = Callable[[Sequence[np.ndarray[Any, Any]]], Any]


@dataclass(frozen=True)
class Arithmetic:
    """The number type finite differences run in: its unit roundoff and step base."""

    name: str
    unit_roundoff: float
    step: Any  # t, a power of two in the number type
    exact_difference: Callable[[Any, Any], Any]  # b - a without rounding error that matters


def _float_difference(b: Any, a: Any) -> float:
    return float(Fraction(float(b)) - Fraction(float(a)))  # one rounding, of the result


FLOAT64 = Arithmetic("binary64", 2.0**-53, 2.0**-18, _float_difference)


def mp_arithmetic(ctx: Any) -> Arithmetic:
    """Finite differences at the precision of an mpmath context."""
    prec = int(ctx.prec)
    return Arithmetic(
        f"mpmath {prec} bits", 2.0**-prec, ctx.ldexp(1, -round(prec / 3)), lambda b, a: b - a
    )


@dataclass(frozen=True)
class Differences:
    """Per direction: the central difference and its tolerance E (before any allowance
    for the analytic side); `evaluations` counts calls of f."""

    derivative: np.ndarray[Any, Any]
    tolerance: np.ndarray[Any, np.dtype[np.float64]]
    evaluations: int
    truncation_estimated: int


def _fabs(v: Any) -> float:
    return float(abs(v))


def _abs_floats(a: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """|a| as binary64, for float and object (mpmath) arrays of any rank."""
    if a.dtype != object:
        return np.abs(np.asarray(a, dtype=np.float64))
    return np.array([_fabs(v) for v in a.reshape(-1)], dtype=np.float64).reshape(a.shape)


class _Probe:
    """Evaluations of f at x +- step * direction for one direction."""

    def quotient(self, step: Any) -> tuple[Any, float]:
        """(D(step), the largest |f| at the two points)."""
        raise NotImplementedError

    def half_width(self, step: Any) -> float:
        """Half the exact distance between the two evaluation points."""
        raise NotImplementedError


class _BasisProbe(_Probe):
    """Along one entry: the entry is perturbed in place and restored."""

    def __init__(self, evaluate: Evaluate, point: list[np.ndarray[Any, Any]],
                 flat: np.ndarray[Any, Any], i: int, arith: Arithmetic) -> None:
        self.evaluate, self.point, self.flat, self.i, self.arith = evaluate, point, flat, i, arith
        self.x = flat[i]

    def quotient(self, step: Any) -> tuple[Any, float]:
        flat, i, x = self.flat, self.i, self.x
        try:
            flat[i] = x + step
            fp, xp = self.evaluate(self.point), flat[i]
            flat[i] = x - step
            fm, xm = self.evaluate(self.point), flat[i]
        finally:
            flat[i] = x
        return (fp - fm) / self.arith.exact_difference(xp, xm), max(_fabs(fp), _fabs(fm))

    def half_width(self, step: Any) -> float:
        return float(self.arith.exact_difference(self.x + step, self.x - step)) / 2


class _DirectionProbe(_Probe):
    """Along a direction over all entries: perturbed copies of the point."""

    def __init__(self, evaluate: Evaluate, point: list[np.ndarray[Any, Any]],
                 direction: Sequence[np.ndarray[Any, Any]]) -> None:
        self.evaluate, self.point, self.direction = evaluate, point, direction

    def quotient(self, step: Any) -> tuple[Any, float]:
        pairs = list(zip(self.point, self.direction, strict=True))
        fp = self.evaluate([x + step * d for x, d in pairs])
        fm = self.evaluate([x - step * d for x, d in pairs])
        return (fp - fm) / (2 * step), max(_fabs(fp), _fabs(fm))

    def half_width(self, step: Any) -> float:
        return float(step)


def _input_rounding(unit: float, step: float, analytic_abs: Sequence[np.ndarray[Any, Any]],
                    point: Sequence[np.ndarray[Any, Any]],
                    direction: Sequence[np.ndarray[Any, Any]]) -> float:
    """I = u sum_i |g_i| (|x_i| + h |u_i|) / h."""
    total = 0.0
    for g, x, d in zip(analytic_abs, point, direction, strict=True):
        mag = _abs_floats(x) + step * _abs_floats(d)
        total += float(np.sum(_abs_floats(g) * mag))
    return unit * total / step


def central_differences(
    evaluate: Evaluate,
    point: list[np.ndarray[Any, Any]],
    directions: Directions,
    arith: Arithmetic,
    depth: int,
    analytic: np.ndarray[Any, Any],
    allowance: np.ndarray[Any, Any],
    analytic_abs: Sequence[np.ndarray[Any, Any]],
    value_scale: float = 0.0,
) -> Differences:
    """Central differences of f at `point` (writable host arrays, perturbed in place and
    restored) along `directions`; `analytic` and `allowance` (per direction) decide
    where the truncation estimate is needed; `value_scale` is the largest intermediate
    magnitude of f at the point (see `allowance.rounding_scale`)."""
    if not all(p.flags.c_contiguous and p.flags.writeable for p in point):
        raise ValueError("central differences perturb C-contiguous, writable leaf arrays")
    g_l = gamma(depth, arith.unit_roundoff)
    f_scale = max(_fabs(evaluate(point)), value_scale)
    n = directions.count
    deriv = np.empty(n, dtype=object)
    tol = np.empty(n)
    calls, richardson = 1, 0
    t = arith.step
    flats = [p.reshape(-1) for p in point]  # views, so writes reach the evaluated tensors
    max_scale = max([1.0] + [float(np.max(_abs_floats(p))) for p in point if p.size])
    for j in range(n):
        probe: _Probe
        if directions.random is None:
            li, i = directions.locate(j)
            probe = _BasisProbe(evaluate, point, flats[li], i, arith)
            x = flats[li][i]
            h = t * (abs(x) if abs(x) > 1 else 1)
            input_term = 0.0
        else:
            probe = _DirectionProbe(evaluate, point, directions.random[j])
            h = t * max_scale
            input_term = _input_rounding(arith.unit_roundoff, float(h), analytic_abs, point,
                                         directions.random[j])
        d1, s1 = probe.quotient(h)
        calls += 2
        scale = max(f_scale, s1)
        rounding = g_l * scale / probe.half_width(h) + 2 * arith.unit_roundoff * _fabs(d1)
        # The gap in the difference's own number type, so high precision is not rounded away.
        gap = _fabs(analytic[j] - d1) if math.isfinite(float(d1)) else math.inf
        truncation = 0.0
        if not gap <= 2 * (rounding + input_term) + float(allowance[j]):
            d2, s2 = probe.quotient(2 * h)
            calls += 2
            richardson += 1
            truncation = _fabs(d2 - d1) / 3
            rounding = max(rounding, g_l * max(scale, s2) / probe.half_width(h))
        deriv[j] = d1
        tol[j] = 2 * (truncation + rounding + input_term)
    if deriv.size and all(isinstance(v, (float, np.floating)) for v in deriv):
        deriv = deriv.astype(np.float64)
    return Differences(deriv, tol, calls, richardson)
