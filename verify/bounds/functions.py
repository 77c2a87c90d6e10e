"""Rigorous enclosures of the smooth functions IBP and CROWN bound: values and derivatives.

Values come from NumPy's libm (or `math.erf` / `math.erfc`) and are widened by an error
budget of `ULPS` spacings of the result, then one more step outward: this assumes the
libm functions used (exp, log, log1p, expm1, tanh, sin, cos, erf, erfc) are within 2 ulps
of the real value (glibc documents at most 2 for these in binary64 on x86_64 and
aarch64), and the budget of 8 also covers the up to three further roundings of the
composites (sigmoid = 1 / (1 + exp(-z)), softplus = max(z, 0) + log1p(exp(-|z|)),
silu = z sigmoid(z)). GELU's argument -z / sqrt(2) is itself rounded; since erfc's
relative condition number is about 2 y^2 at y, its budget grows by 4 y^2 ulps (see
`_gelu`). Correctly rounded operations (sqrt, 1/z, z*z) are widened by one step.

Derivative enclosures are computed from value enclosures with directed rounding (for
example tanh' = 1 - tanh^2 over the enclosure of tanh), so they need no budget of their
own. `tangent_point` only guides where CROWN puts a tangent: any answer is sound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..outward import dn, mul_dn, mul_up, up
from .problem import Array

__all__ = ["ULPS", "Smooth", "SMOOTH", "enclose", "widen", "RECIPROCAL",
           "gelu_enclosure", "silu_enclosure"]

ULPS = 8.0
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def widen(v: Array, ulps: float | Array) -> tuple[Array, Array]:
    """An interval around v that holds [v - ulps spacing(v), v + ulps spacing(v)] (over
    the reals); inf stays inf."""
    # With k = ceil(ulps) + 1, a whole number, k spacing(v) is exact, and so is v -+ k
    # spacing(v) (a multiple of spacing(v) in v's binade or a finer one) unless it moves
    # into the binade above, where it rounds by at most spacing(v): either way it lies
    # beyond v -+ ulps spacing(v), with no step outward (for whole ulps, mostly the bits
    # of the step outward from v -+ ulps spacing(v)).
    with np.errstate(invalid="ignore", over="ignore"):
        s = (np.ceil(ulps) + 1.0) * np.spacing(np.abs(v))
        lo, hi = v - s, v + s
    inf = np.isinf(v)
    if np.any(inf):  # an overflowed value is a finite real above the largest float
        big = np.finfo(np.float64).max
        lo = np.where(v == np.inf, big, np.where(v == -np.inf, -np.inf, lo))
        hi = np.where(v == -np.inf, -big, np.where(v == np.inf, np.inf, hi))
    return lo, hi


def _np(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
    def run(z: Array) -> Array:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            return np.asarray(fn(np.asarray(z, dtype=np.float64)), dtype=np.float64)
    return run


def _scalar(fn: Callable[[float], float]) -> Callable[[Array], Array]:
    vec = np.frompyfunc(fn, 1, 1)

    def run(z: Array) -> Array:
        return np.asarray(vec(np.asarray(z, dtype=np.float64)), dtype=np.float64)
    return run


@dataclass(frozen=True)
class Smooth:
    """A smooth function: approximate values, their budget, where it is convex/concave,
    a rigorous derivative enclosure, and (for S shapes) the tangent point of a slope."""

    name: str
    value: Callable[[Array], Array]
    ulps: float
    clip: tuple[float, float]
    # 'convex', 'concave', or 's' (convex for z <= 0, concave for z >= 0)
    curvature: str
    deriv: Callable[[Array, Array, Array], tuple[Array, Array]]
    tangent_point: Callable[[Array], Array] | None = None
    increasing: bool = True
    # 'valley' functions (gelu, silu): convex on [-c, c], concave outside, with
    # c_in <= c <= c_out floats; |f'| <= lipschitz; their own value enclosure
    inflection: tuple[float, float] = (0.0, 0.0)
    lipschitz: float = 0.0
    enclosure: Callable[[Array], tuple[Array, Array]] | None = None
    floor: float = -np.inf  # a lower bound of the global minimum (valley functions)


def enclose(f: Smooth, z: Array) -> tuple[Array, Array]:
    """Rigorous [lo, hi] of f(z) elementwise (z exact floats)."""
    if f.enclosure is not None:
        return f.enclosure(np.asarray(z, dtype=np.float64))
    v = f.value(z)
    lo, hi = widen(v, f.ulps) if f.ulps else (dn(v), up(v))
    lo_c, hi_c = f.clip
    return np.maximum(lo, lo_c), np.minimum(hi, hi_c)


def _tanh_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    # the square of the larger |end| rounded up is the larger rounded-up square (rounding
    # and the step are monotone): one product per bound
    m_lo, m_hi = np.abs(lo), np.abs(hi)
    big = mul_up(np.maximum(m_lo, m_hi), np.maximum(m_lo, m_hi))
    least = np.minimum(m_lo, m_hi)
    small = np.where((lo <= 0) & (hi >= 0), 0.0, mul_dn(least, least))
    return np.maximum(dn(1.0 - big), 0.0), up(1.0 - small)


def _sigmoid_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    return np.maximum(mul_dn(lo, dn(1.0 - hi)), 0.0), mul_up(hi, up(1.0 - lo))


def _tanh_tangent(a: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(np.arctanh(np.sqrt(np.clip(1.0 - a, 0.0, 1.0))), posinf=np.inf)


def _sigmoid_tangent(a: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        s = 0.5 * (1.0 + np.sqrt(np.clip(1.0 - 4.0 * a, 0.0, 1.0)))
        return np.nan_to_num(np.log(s / (1.0 - s)), posinf=np.inf)


def _erf_tangent(a: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(_TWO_OVER_SQRT_PI / np.maximum(a, 1e-300))
        return np.sqrt(np.maximum(r, 0.0))


def _sigmoid_value(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _softplus_value(z: Array) -> Array:
    return np.asarray(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))))


def _erf_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    sq_lo = np.where((z <= 0) & (z >= 0), 0.0, mul_dn(z, z))
    e_lo, _ = enclose(EXP, -mul_up(z, z))
    _, e_hi = enclose(EXP, -sq_lo)
    return mul_dn(e_lo, dn(_TWO_OVER_SQRT_PI)), mul_up(e_hi, up(_TWO_OVER_SQRT_PI))


EXP = Smooth("exp", _np(np.exp), ULPS, (0.0, np.inf), "convex",
             lambda z, lo, hi: (lo, hi))
SIGMOID = Smooth("sigmoid", _np(_sigmoid_value), ULPS, (0.0, 1.0), "s", _sigmoid_deriv,
                 _sigmoid_tangent)


def _softplus_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    return enclose(SIGMOID, z)


def _expm1_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    return dn(lo + 1.0), up(hi + 1.0)


def _log_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    with np.errstate(divide="ignore"):
        return dn(1.0 / z), up(1.0 / z)


def _log1p_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    with np.errstate(divide="ignore"):
        return dn(1.0 / up(1.0 + z)), up(1.0 / dn(1.0 + z))


def _sqrt_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    with np.errstate(divide="ignore"):
        return dn(0.5 / hi), up(0.5 / lo)


def _square_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    return 2.0 * z, 2.0 * z  # exact (a doubling)


def _reciprocal_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    with np.errstate(divide="ignore", over="ignore"):
        return -up(1.0 / dn(z * z)), -dn(1.0 / up(z * z))


SMOOTH: dict[str, Smooth] = {f.name: f for f in (
    Smooth("tanh", _np(np.tanh), ULPS, (-1.0, 1.0), "s", _tanh_deriv, _tanh_tangent),
    SIGMOID,
    Smooth("erf", _scalar(math.erf), ULPS, (-1.0, 1.0), "s", _erf_deriv, _erf_tangent),
    EXP,
    Smooth("softplus", _np(_softplus_value), ULPS, (0.0, np.inf), "convex", _softplus_deriv),
    Smooth("expm1", _np(np.expm1), ULPS, (-1.0, np.inf), "convex", _expm1_deriv),
    Smooth("log", _np(np.log), ULPS, (-np.inf, np.inf), "concave", _log_deriv),
    Smooth("log1p", _np(np.log1p), ULPS, (-np.inf, np.inf), "concave", _log1p_deriv),
    Smooth("sqrt", _np(np.sqrt), 0.0, (0.0, np.inf), "concave", _sqrt_deriv),
    Smooth("square", _np(np.square), 0.0, (0.0, np.inf), "convex", _square_deriv,
           increasing=False),
)}
# 1 / z for z > 0 (convex, decreasing): CROWN's relaxation of a division by a variable.
RECIPROCAL = Smooth("reciprocal", _np(lambda z: 1.0 / z), 0.0, (0.0, np.inf), "convex",
                    _reciprocal_deriv, increasing=False)


def _gelu_value(z: Array) -> Array:
    phi = np.frompyfunc(lambda t: 0.5 * math.erfc(-t * _INV_SQRT2), 1, 1)(z)
    return np.asarray(z * np.asarray(phi, dtype=np.float64))


def gelu_enclosure(z: Array) -> tuple[Array, Array]:
    """Rigorous [lo, hi] of z Phi(z) = z erfc(-z / sqrt 2) / 2. The rounded argument
    y = fl(-z / sqrt 2) is off by <= 2u |y|; for y > 0, erfc'(y) / erfc(y) <= 2y + 1.42,
    so erfc moves by a relative <= (4 y^2 + 2.84 y) u: the budget is ULPS + 4 y^2 + 4 y + 4
    spacings (the + 4 covers the final product and y <= 0, where erfc is in (1, 2))."""
    z = np.asarray(z, dtype=np.float64)
    v = _gelu_value(z)
    y = np.maximum(-z * _INV_SQRT2, 0.0)
    return widen(v, ULPS + 4.0 * y * y + 4.0 * y + 4.0)


def silu_enclosure(z: Array) -> tuple[Array, Array]:
    """Rigorous [lo, hi] of z sigmoid(z) (sigmoid's budget plus the product's rounding)."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore"):
        v = z * _sigmoid_value(z)
    return widen(v, ULPS + 2.0)


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi_cdf_enclosure(z: Array) -> tuple[Array, Array]:
    """Phi(z) = erfc(-z / sqrt 2) / 2, with gelu's argument budget (see gelu_enclosure)."""
    v = np.asarray(np.frompyfunc(lambda t: 0.5 * math.erfc(-t * _INV_SQRT2), 1, 1)(z),
                   dtype=np.float64)
    y = np.maximum(-z * _INV_SQRT2, 0.0)
    return widen(v, ULPS + 4.0 * y * y + 4.0 * y + 4.0)


def _gelu_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    """gelu'(z) = Phi(z) + z phi(z), phi(z) = exp(-z^2 / 2) / sqrt(2 pi)."""
    c_lo, c_hi = _phi_cdf_enclosure(z)
    e_lo, _ = enclose(EXP, -0.5 * mul_up(z, z))
    _, e_hi = enclose(EXP, -0.5 * mul_dn(z, z))
    p_lo, p_hi = mul_dn(e_lo, dn(_INV_SQRT_2PI)), mul_up(e_hi, up(_INV_SQRT_2PI))
    zp_lo = np.where(z >= 0, mul_dn(z, p_lo), mul_dn(z, p_hi))
    zp_hi = np.where(z >= 0, mul_up(z, p_hi), mul_up(z, p_lo))
    return dn(c_lo + zp_lo), up(c_hi + zp_hi)


def _silu_deriv(z: Array, lo: Array, hi: Array) -> tuple[Array, Array]:
    """silu'(z) = s (1 + z (1 - s)), s = sigmoid(z), over s's enclosure."""
    s_lo, s_hi = enclose(SIGMOID, z)
    r_lo, r_hi = dn(1.0 - s_hi), up(1.0 - s_lo)
    zr_lo = np.where(z >= 0, mul_dn(z, r_lo), mul_dn(z, r_hi))
    zr_hi = np.where(z >= 0, mul_up(z, r_hi), mul_up(z, r_lo))
    q_lo, q_hi = dn(1.0 + zr_lo), up(1.0 + zr_hi)
    cands_lo = [mul_dn(a, b) for a in (s_lo, s_hi) for b in (q_lo, q_hi)]
    cands_hi = [mul_up(a, b) for a in (s_lo, s_hi) for b in (q_lo, q_hi)]
    return np.minimum.reduce(cands_lo), np.maximum.reduce(cands_hi)


# gelu'' = phi (2 - z^2): convex on [-sqrt 2, sqrt 2]; silu'' = 0 at |z| = 2.39935728...
# (mpmath); the pairs bracket each c by adjacent floats. |gelu'| <= 1.13, |silu'| <= 1.1.
SMOOTH["gelu"] = Smooth("gelu", _gelu_value, 0.0, (-np.inf, np.inf), "valley", _gelu_deriv,
                        increasing=False, inflection=(1.414213562373095, 1.4142135623730951),
                        lipschitz=1.2, enclosure=gelu_enclosure, floor=-0.16997121)
SMOOTH["silu"] = Smooth("silu", _np(lambda z: z * _sigmoid_value(z)), 0.0, (-np.inf, np.inf),
                        "valley", _silu_deriv, increasing=False,
                        inflection=(2.399357280515467, 2.399357280515468), lipschitz=1.2,
                        enclosure=silu_enclosure, floor=-0.27846455)
