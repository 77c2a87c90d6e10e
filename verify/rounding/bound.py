"""Sound bounds on the binary32-vs-real error of a model: `error_bound`, `error_bound_at`.

For every node of a graph IR this module propagates a rigorous enclosure [lo, hi] of the
REAL value over an input box, and an upper bound e on |fl(node) - real(node)|, where fl is
the binary32 execution and real the real-number semantics of the same graph with the same
binary32 parameters. The error model (docs/verify-rounding.md has the derivations):

- fl(a op b) = (a op b)(1 + d) + h, |d| <= u = 2^-24. The underflow term |h| <= 2^-150
  (half the subnormal spacing) is added only for *, /, the functions and the rounding of
  inputs/constants, and only where the result may be below 2^-126: a sum or difference of
  binary32 numbers that is subnormal is exact (both operands are multiples of 2^-149), and
  sqrt of a nonzero binary32 is at least 2^-74.5, never subnormal.
- left folds (sum, mean, matmul entries): Higham's gamma_m = m u / (1 - m u) per term
  (Accuracy and Stability of Numerical Algorithms, 2nd ed., sections 3.1 and 4.2). In
  `ieee32exec` the zero-seeded left fold of n terms applies m = n - k + 1 additions to
  term k >= 2 and n - 1 to term 1 (plus one for a matmul's product); in
  `float32_any_order` every term gets gamma_n (any order, any blocking, FMA or not).
- functions: one correct rounding of f(computed input), plus Lipschitz propagation with a
  rigorous bound of |f'| over the enclosure widened by the input error; in
  `float32_any_order` the vendor libm is assumed within `ULP_BUDGET` ulps.

All bounds are computed in binary64 with every operation rounded outward (np.nextafter
after each correctly rounded NumPy op), and function images through
`spec.fields.interval_math`, so a bound is an upper bound of the exact quantity, never an
approximation. Values that could reach the binary32 overflow threshold are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, TypeVar

import numpy as np
from mpmath import libmp
from mpmath.ctx_iv import MPIntervalContext

from ...runtime.graph import Graph, interpret, trace
from ...runtime.graph.interpreter import literal_array
from ...spec.errors import TorchLeanError, UnsupportedOperation
from ...spec.fields import get_field
from ...spec.fields import interval_math as im
from ...spec.fields.base import PI
from ...spec.fields.interval import mpf_to_fraction
from ...spec.ops import apply
from ...spec.tensor import Tensor
from ..bounds import zonotope as zono
from ..outward import TINY64, U64, gamma_up
from ..outward import dn as _dn
from ..outward import up as _up

__all__ = [
    "METHODS",
    "ENCLOSURES",
    "MODES",
    "ULP_BUDGET",
    "RoundingBoundError",
    "RoundingReport",
    "error_bound",
    "error_bound_at",
    "observed_error",
    "as_graph",
]

Mode = Literal["ieee32exec", "float32_any_order"]
MODES: tuple[str, ...] = ("ieee32exec", "float32_any_order")
METHODS: tuple[str, ...] = ("affine", "elementwise")
ENCLOSURES: tuple[str, ...] = ("zonotope", "interval")
U32 = 2.0**-24
ETA = 2.0**-150  # half the binary32 subnormal spacing 2^-149
SUBNORMAL = 2.0**-126  # smallest normal binary32
OVERFLOW = 2.0**128 - 2.0**103  # exact results at least this large round to infinity
ULP_BUDGET = 4  # assumed vendor-libm accuracy in float32_any_order mode (stated, not proven)
# sup |gelu'| = Phi(sqrt 2) + sqrt 2 phi(sqrt 2) ~ 1.12899 (gelu'' = phi (2 - x^2) vanishes
# at +-sqrt 2); 1.13 is an upper bound. 2/sqrt(pi) = 1.1283791670955126... rounded up.
GELU_SLOPE = 1.13
TWO_OVER_SQRT_PI = 1.1283791670955130

Arr = np.ndarray[Any, np.dtype[np.float64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]
Index = np.ndarray[Any, np.dtype[np.int64]]
T = TypeVar("T", bound=np.dtype[Any])
_CTX: Any = MPIntervalContext()
_CTX.prec = 64


class RoundingBoundError(TorchLeanError, ValueError):
    """No sound bound exists under the error model (overflow possible, bad box, division
    by a possibly-zero value, NaN parameters); the message names the node or input."""


# -- magnitudes of enclosures (outward rounding: verify/outward.py) --------------------
def _mag(lo: Arr, hi: Arr) -> Arr:
    return np.maximum(np.abs(lo), np.abs(hi))


def _mig(lo: Arr, hi: Arr) -> Arr:
    return np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))


def half_ulp(m: Any, u: float) -> Arr:
    """u * 2^floor(log2 m): the largest rounding error of a round-to-nearest result whose
    exact value has magnitude <= m and is normal (an exponent of m, not m itself: up to 2x
    below u*m). Exact in binary64 (a power of two times u)."""
    mm = np.asarray(m, dtype=np.float64)
    _, ex = np.frexp(mm)  # mm = f 2^ex with f in [1/2, 1): floor(log2 mm) = ex - 1
    out = np.ldexp(np.full_like(mm, u), ex - 1)
    return np.asarray(np.where(np.isfinite(mm), np.where(mm > 0, out, 0.0), np.inf))


def gamma(m: Any, u: float) -> Arr:
    """An upper bound of gamma_m = m u / (1 - m u) (elementwise over m)."""
    mu = np.asarray(m, dtype=np.float64) * u
    if np.any(mu >= 0.5):
        raise RoundingBoundError(f"fold of {np.max(m)} terms: m*u = {np.max(mu)} >= 1/2")
    return gamma_up(m, u)


@dataclass
class Bound:
    """One node's real-value enclosure [lo, hi] and error bound e (float64 arrays)."""

    lo: Arr
    hi: Arr
    e: Arr

    @property
    def mag(self) -> Arr:
        return _mag(self.lo, self.hi)


@dataclass(frozen=True)
class Ctx:
    """What the rules need: the mode, the unit roundoff, and whether this node rounds."""

    mode: str
    u: float
    rounds: bool
    where: str

    def rho(self, m: Arr, may_sub: Arr) -> Arr:
        """Rounding error of one correctly rounded result of magnitude <= m."""
        if not self.rounds:
            return np.zeros_like(m)
        return _up(_up(half_ulp(m, self.u)) + np.where(may_sub, ETA, 0.0))

    def rho_fn(self, m: Arr, may_sub: Arr) -> Arr:
        """Rounding error of a function value: correctly rounded, or ULP_BUDGET ulps."""
        if self.mode == "ieee32exec" or not self.rounds:
            return self.rho(m, may_sub)
        # ulp(y) <= 2u|y| for normal y, and 2^-149 on the subnormal grid.
        return _up(ULP_BUDGET * _up(_up(2 * self.u * m) + 2.0**-149))


def _may_sub(lo: Arr, hi: Arr, slack: Arr) -> Arr:
    return np.asarray(_dn(_mig(lo, hi) - slack) < SUBNORMAL)


# -- rules -----------------------------------------------------------------------------
def _exact_zero(a: Bound) -> Mask:
    """Elements known to be exactly 0 in both the real and the computed model."""
    return np.asarray((a.lo == 0) & (a.hi == 0) & (a.e == 0))


def _exact_pow2(a: Bound) -> Mask:
    """Elements that are one exact power of two (or 0) in both models: multiplying by
    them is exact in binary32 unless the product is subnormal (the eta term stays)."""
    mant, _ = np.frexp(a.lo)
    return np.asarray((a.lo == a.hi) & (a.e == 0) & ((a.lo == 0) | (np.abs(mant) == 0.5)))


def _add(a: Bound, b: Bound, c: Ctx, sign: int = 1) -> Bound:
    if sign > 0:
        lo, hi = _dn(a.lo + b.lo), _up(a.hi + b.hi)
    else:
        lo, hi = _dn(a.lo - b.hi), _up(a.hi - b.lo)
    ep = _up(a.e + b.e)
    # No underflow term: a subnormal sum of binary32 numbers is exact; so is x + 0.
    r = half_ulp(_up(_mag(lo, hi) + ep), c.u) if c.rounds else np.zeros_like(ep)
    r = np.where(_exact_zero(a) | _exact_zero(b), 0.0, r)
    return Bound(lo, hi, _up(ep + r))


def _mul_enclosure(alo: Arr, ahi: Arr, blo: Arr, bhi: Arr) -> tuple[Arr, Arr]:
    cands = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    return _dn(np.minimum.reduce(cands)), _up(np.maximum.reduce(cands))


def _mul(a: Bound, b: Bound, c: Ctx) -> Bound:
    lo, hi = _mul_enclosure(a.lo, a.hi, b.lo, b.hi)
    ep = _up(_up(_up(a.mag * b.e) + _up(b.mag * a.e)) + _up(a.e * b.e))
    may_sub = _may_sub(lo, hi, ep)
    r = c.rho(_up(_mag(lo, hi) + ep), may_sub)
    if c.rounds:  # times an exact power of two: only an underflow can round
        r = np.where(_exact_pow2(a) | _exact_pow2(b), np.where(may_sub, ETA, 0.0), r)
    return Bound(lo, hi, _up(ep + r))


def _div(a: Bound, b: Bound, c: Ctx, floor: float | None = None) -> Bound:
    """a / b; `floor` is a known lower bound of both the real and the computed divisor."""
    wlo, whi = _dn(b.lo - b.e), _up(b.hi + b.e)
    if floor is not None:
        wlo = np.maximum(wlo, floor)
    if np.any((wlo <= 0) & (whi >= 0)):
        raise RoundingBoundError(f"{c.where}: the divisor (with its error) may be 0")
    qlo = np.minimum.reduce([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])
    qhi = np.maximum.reduce([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])
    lo, hi = _dn(qlo), _up(qhi)
    # a^/b^ - a/b = alpha/b^ - (a/b) beta/b^
    ep = _up(_up(a.e + _up(_mag(lo, hi) * b.e)) / _dn(_mig(wlo, whi)))
    r = c.rho(_up(_mag(lo, hi) + ep), _may_sub(lo, hi, ep))
    return Bound(lo, hi, _up(ep + r))


def _lipschitz(a: Bound, lo: Arr, hi: Arr, slope: Arr, c: Ctx) -> Bound:
    ep = _up(slope * a.e)
    r = c.rho_fn(_up(_mag(lo, hi) + ep), _may_sub(lo, hi, ep))
    return Bound(lo, hi, _up(ep + r))


def _iv(lo: float, hi: float) -> Any:
    return _CTX.mpf([lo, hi])


def _lo(x: Any) -> float:
    return float(libmp.to_float(x._mpi_[0], rnd=libmp.round_floor))


def _hi(x: Any) -> float:
    return float(libmp.to_float(x._mpi_[1], rnd=libmp.round_ceiling))


def _image(fn: Callable[[Any, Any], Any], lo: Arr, hi: Arr) -> tuple[Arr, Arr]:
    olo, ohi = np.empty_like(lo), np.empty_like(hi)
    for i in np.ndindex(lo.shape):
        y = fn(_CTX, _iv(float(lo[i]), float(hi[i])))
        olo[i], ohi[i] = _lo(y), _hi(y)
    return olo, ohi


def _slope(name: str, wlo: Arr, whi: Arr, where: str) -> Arr:
    """A rigorous upper bound of |f'| over [wlo, whi], elementwise."""
    m = _mig(wlo, whi)
    if name in ("exp", "expm1"):
        return _image(im.exp, whi, whi)[1]
    if name == "log":
        if np.any(wlo <= 0):
            raise RoundingBoundError(f"{where}: log of a value that may be <= 0")
        return _up(1.0 / wlo)
    if name == "log1p":
        if np.any(wlo <= -1):
            raise RoundingBoundError(f"{where}: log1p of a value that may be <= -1")
        return _up(1.0 / _dn(1.0 + wlo))
    if name == "tanh":  # 1 - tanh(t)^2, largest at the t nearest 0
        t = _image(im.tanh, m, m)[0]
        return _up(1.0 - _dn(t * t))
    if name == "sigmoid":  # s(t) s(-t), largest at the t nearest 0
        return _up(_image(im.sigmoid, m, m)[1] * _image(im.sigmoid, -m, -m)[1])
    if name == "softplus":
        return np.minimum(1.0, _image(im.sigmoid, whi, whi)[1])
    if name == "erf":  # 2/sqrt(pi) exp(-t^2)
        return _up(TWO_OVER_SQRT_PI * _image(im.exp, -_dn(m * m), -_dn(m * m))[1])
    if name == "gelu":
        return np.full_like(wlo, GELU_SLOPE)
    if name in ("sin", "cos"):
        return np.ones_like(wlo)
    raise AssertionError(name)


_FUNCTIONS = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "erf", "gelu",
              "sin", "cos")


def _function(name: str, a: Bound, c: Ctx) -> Bound:
    wlo, whi = _dn(a.lo - a.e), _up(a.hi + a.e)
    slope = _slope(name, wlo, whi, c.where)
    lo, hi = _image(getattr(im, name), a.lo, a.hi)
    return _lipschitz(a, lo, hi, slope, c)


def _sqrt(a: Bound, c: Ctx) -> Bound:
    if np.any(_dn(a.lo - a.e) < 0):
        raise RoundingBoundError(f"{c.where}: sqrt of a value that may be negative")
    lo, hi = _dn(np.sqrt(a.lo)), _up(np.sqrt(a.hi))
    # |sqrt x - sqrt y| <= min(|x - y| / (2 sqrt(min)), sqrt |x - y|)
    wmin = _dn(np.sqrt(_dn(a.lo - a.e)))
    with np.errstate(divide="ignore"):
        lip = np.where(wmin > 0, _up(a.e / _dn(2 * wmin)), np.inf)
    ep = np.minimum(lip, _up(np.sqrt(a.e)))
    r = half_ulp(_up(hi + ep), c.u) if c.rounds else np.zeros_like(ep)  # never subnormal
    return Bound(lo, hi, _up(ep + r))


def _fold_up(x: Arr) -> Arr:
    """An upper bound of the sum over the last axis of nonnegative x."""
    acc = np.zeros(x.shape[:-1])
    for k in range(x.shape[-1]):
        acc = _up(acc + x[..., k])
    return acc


def _fold_dn(x: Arr) -> Arr:
    acc = np.zeros(x.shape[:-1])
    for k in range(x.shape[-1]):
        acc = _dn(acc + x[..., k])
    return acc


def _fold(tlo: Arr, thi: Arr, te: Arr, c: Ctx, products: bool, eta_terms: int,
          smag: Arr | None = None, exact: Mask | None = None) -> Bound:
    """The fold over the last axis of terms with enclosures [tlo, thi] and propagated
    errors te (a matmul's terms are exact products of computed operands: their own
    rounding is added here). `smag`, when given, bounds |real partial sum k| (from the
    zonotope pass) more tightly than the sum of the term enclosures; `exact` marks
    products with an exact power-of-two factor (only an underflow rounds them)."""
    n = tlo.shape[-1]
    lo, hi = _fold_dn(tlo), _fold_up(thi)
    tmag = _mag(tlo, thi)
    if c.mode == "ieee32exec" or not c.rounds:
        return _left_fold(tlo, thi, te, tmag, c, products, smag, exact)
    # any order, any blocking, FMA or not: every term passes through at most n roundings
    # (n - 1 additions and its product, or n - 1 FMAs), so gamma_n covers it (Higham 3.1).
    ep = _fold_up(te)
    total = _up(_fold_up(tmag) + ep)
    g = gamma(n if products else max(n - 1, 0), c.u)[()]
    local = _up(g * total)
    if eta_terms:  # every product or FMA may be subnormal: n eta each, amplified
        local = _up(local + _up(eta_terms * n * ETA * _up(1.0 + gamma(n, c.u)[()])))
    if np.any(_up(total * _up(1 + g)) >= OVERFLOW):
        raise RoundingBoundError(f"{c.where}: a partial sum may overflow binary32")
    return Bound(lo, hi, _up(ep + local))


def _left_fold(tlo: Arr, thi: Arr, te: Arr, tmag: Arr, c: Ctx, products: bool,
               smag: Arr | None = None, exact: Mask | None = None) -> Bound:
    """ieee32exec's zero-seeded left fold, bounded step by step with the add rule on
    enclosures of the partial sums: E_k = E_(k-1) + t_k + u (|S_k| + E_(k-1) + t_k),
    where t_k is term k's error (propagated, plus its product's rounding). 0 + p_1 is
    exact. This is Higham's running-error bound (section 3.1) evaluated on enclosures;
    it is never larger than the position-dependent gamma bound."""
    n = tlo.shape[-1]
    slo = np.zeros(tlo.shape[:-1])
    shi = np.zeros(tlo.shape[:-1])
    err = np.zeros(tlo.shape[:-1])
    for k in range(n):
        tk = te[..., k]
        if products and c.rounds:
            mk = _up(tmag[..., k] + tk)
            may_sub = _may_sub(tlo[..., k], thi[..., k], tk)
            rho = c.rho(mk, may_sub)
            if exact is not None:
                rho = np.where(exact[..., k], np.where(may_sub, ETA, 0.0), rho)
            tk = _up(tk + rho)
        slo, shi = _dn(slo + tlo[..., k]), _up(shi + thi[..., k])
        if k == 0 or not c.rounds:
            err = _up(err + tk)
        else:
            step = _up(err + tk)
            mag = _mag(slo, shi) if smag is None else np.minimum(_mag(slo, shi), smag[..., k])
            err = _up(step + half_ulp(_up(mag + step), c.u))
        if np.any(_up(_mag(slo, shi) + err) >= OVERFLOW):
            raise RoundingBoundError(f"{c.where}: a partial sum may overflow binary32")
    return Bound(slo, shi, err)


def _matmul(a: Bound, b: Bound, c: Ctx, smag: Arr | None = None) -> Bound:
    # terms [..., M, N, K] = a[..., M, 1, K] * b[..., 1, N, K]
    def terms(x: np.ndarray[Any, T], y: np.ndarray[Any, T]) -> tuple[np.ndarray[Any, T],
                                                                     np.ndarray[Any, T]]:
        return x[..., :, None, :], np.swapaxes(y, -1, -2)[..., None, :, :]

    alo, blo = terms(a.lo, b.lo)
    ahi, bhi = terms(a.hi, b.hi)
    ae, be = terms(a.e, b.e)
    amag, bmag = terms(a.mag, b.mag)
    tlo, thi = _mul_enclosure(alo, ahi, blo, bhi)
    te = _up(_up(_up(amag * be) + _up(bmag * ae)) + _up(ae * be))
    if np.any(_up(_mag(tlo, thi) + te) >= OVERFLOW):
        raise RoundingBoundError(f"{c.where}: a product may overflow binary32")
    eta_terms = 1 if c.mode == "ieee32exec" else 2  # products (and FMAs) may be subnormal
    pa, pb = terms(_exact_pow2(a), _exact_pow2(b))
    return _fold(tlo, thi, te, c, products=True, eta_terms=eta_terms, smag=smag,
                 exact=np.broadcast_to(pa | pb, tlo.shape))


def _to_last(x: Arr, axes: tuple[int, ...], keepdims: bool) -> Arr:
    """Reduced axes moved last (in order) and flattened: row-major fold order."""
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    kept = moved.shape[: x.ndim - len(axes)]
    flat = moved.reshape(kept + (-1,))
    return flat


def _restore(x: Arr, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Arr:
    if not keepdims:
        return x
    return x.reshape(tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _sum(a: Bound, axes: tuple[int, ...], keepdims: bool, c: Ctx) -> Bound:
    parts = [_to_last(v, axes, keepdims) for v in (a.lo, a.hi, a.e)]
    out = _fold(parts[0], parts[1], parts[2], c, products=False, eta_terms=0)
    return Bound(*(_restore(v, a.lo.shape, axes, keepdims) for v in (out.lo, out.hi, out.e)))


def _max(a: Bound, axes: tuple[int, ...], keepdims: bool) -> Bound:
    # max is 1-Lipschitz in the sup norm and never rounds
    return Bound(np.max(a.lo, axis=axes, keepdims=keepdims),
                 np.max(a.hi, axis=axes, keepdims=keepdims),
                 np.max(a.e, axis=axes, keepdims=keepdims))


def _const(value: Any, shape: tuple[int, ...]) -> Bound:
    """A number: real = its exact value, computed = its nearest binary32."""
    if value is PI:
        p = im.pi(_CTX)
        lo, hi = _lo(p), _hi(p)
        v = float(np.float32(get_field("ieee32exec").constant(PI)))
    else:
        q = Fraction(value)
        f = float(q)
        lo, hi = (f, f) if Fraction(f) == q else (float(_dn(f)), float(_up(f)))
        v = float(np.float32(get_field("ieee32exec").constant(value)))
    e = float(_up(max(abs(v - lo), abs(v - hi)))) if (lo, hi) != (v, v) else 0.0
    full = np.full(shape, 1.0)
    return Bound(full * lo, full * hi, full * e)


def _softmax(a: Bound, axis: int, c: Ctx, log: bool) -> Bound:
    m = _max(a, (axis,), True)
    s = _add(a, m, c, sign=-1)
    t = _function("exp", s, c)
    tot = _sum(t, (axis,), True, c)
    if log:
        return _add(s, _function("log", tot, c), c, sign=-1)
    # The sum holds exp(max - max) = exp(+0) = 1 exactly (correctly rounded, and exact in
    # every libm), and rounding to nearest never takes a sum of non-negative terms below
    # its largest term, in any order: real and computed sums are both >= 1.
    tot = Bound(np.maximum(tot.lo, 1.0), np.maximum(tot.hi, 1.0), tot.e)
    out = _div(t, tot, c, floor=1.0)
    # the real softmax lies in [0, 1]: keep the enclosure there
    return Bound(np.maximum(out.lo, 0.0), np.minimum(out.hi, 1.0), out.e)


_STRUCTURAL = ("transpose", "reshape", "broadcast_to", "slice", "concat", "unslice")
_F64 = get_field("float")


def _structural(op: str, args: Sequence[Bound], attrs: dict[str, Any]) -> Bound:
    def run(pick: Callable[[Bound], Arr]) -> Arr:
        ts = [Tensor(pick(b), _F64) for b in args]
        return np.asarray(apply(op, ts[0], *ts[1:], **attrs).data, dtype=np.float64)

    return Bound(run(lambda b: b.lo), run(lambda b: b.hi), run(lambda b: b.e))


def _rule(op: str, args: list[Bound], attrs: dict[str, Any], c: Ctx,
          smag: Arr | None = None) -> Bound:
    if op in _STRUCTURAL:
        return _structural(op, args, attrs)
    if op in ("add", "sub"):
        return _add(args[0], args[1], c, 1 if op == "add" else -1)
    if op == "mul":
        return _mul(args[0], args[1], c)
    if op == "square":
        return _mul(args[0], args[0], c)
    if op == "div":
        return _div(args[0], args[1], c)
    if op == "neg":
        a = args[0]
        return Bound(-a.hi, -a.lo, a.e)
    if op == "abs":
        a = args[0]
        return Bound(_mig(a.lo, a.hi), a.mag, a.e)
    if op == "relu":
        a = args[0]
        return Bound(np.maximum(a.lo, 0.0), np.maximum(a.hi, 0.0), a.e)
    if op in ("maximum", "minimum"):
        a, b = args
        pick = np.maximum if op == "maximum" else np.minimum
        return Bound(pick(a.lo, b.lo), pick(a.hi, b.hi), np.maximum(a.e, b.e))
    if op == "leaky_relu":
        return _leaky(args[0], float(attrs["negative_slope"]), c)
    if op == "sqrt":
        return _sqrt(args[0], c)
    if op in _FUNCTIONS:
        return _function(op, args[0], c)
    if op == "silu":
        return _mul(args[0], _function("sigmoid", args[0], c), c)
    if op == "matmul":
        return _matmul(args[0], args[1], c, smag)
    if op == "sum":
        return _sum(args[0], tuple(attrs["axes"]), bool(attrs["keepdims"]), c)
    if op == "mean":
        return _mean(args[0], tuple(attrs["axes"]), bool(attrs["keepdims"]), c)
    if op == "max":
        return _max(args[0], tuple(attrs["axes"]), bool(attrs["keepdims"]))
    if op in ("softmax", "log_softmax"):
        return _softmax(args[0], int(attrs["axis"]), c, op == "log_softmax")
    raise UnsupportedOperation(op, "rounding", f"{c.where}: no rounding-error rule for {op!r}")


def _leaky(a: Bound, slope: float, c: Ctx) -> Bound:
    s = _const(slope, ())
    if s.e.item() != 0:
        raise UnsupportedOperation("leaky_relu", "rounding", "slope is not a binary32")
    scaled = _mul(a, Bound(s.lo, s.hi, s.e), c)
    lo = np.minimum(np.where(a.lo > 0, a.lo, scaled.lo), np.minimum(scaled.lo, a.lo))
    hi = np.maximum(np.maximum(a.hi, scaled.hi), np.where(a.hi < 0, scaled.hi, a.hi))
    # leaky is max(1, |s|)-Lipschitz; the product's rounding is in scaled.e
    return Bound(lo, hi, np.maximum(_up(max(1.0, abs(slope)) * a.e), scaled.e))


def _mean(a: Bound, axes: tuple[int, ...], keepdims: bool, c: Ctx) -> Bound:
    n = int(np.prod([a.lo.shape[i] for i in axes]))
    if n > 2**24:
        raise UnsupportedOperation("mean", "rounding", f"{c.where}: count {n} not a binary32")
    s = _sum(a, axes, keepdims, c)
    return _div(s, _const(n, ()), c)


# -- graphs ------------------------------------------------------------------------------
def as_graph(model_or_graph: Any, input_shape: Sequence[int] | None = None) -> Graph:
    """The graph of a `Graph` (itself) or of a built nn model's eval-mode forward
    (parameters as graph params, one input "x" of `input_shape`)."""
    if isinstance(model_or_graph, Graph):
        return model_or_graph
    params = getattr(model_or_graph, "params", None)
    if params is None or not hasattr(model_or_graph, "forward"):
        raise TypeError(f"expected a Graph or a built nn model, got {type(model_or_graph)}")
    if input_shape is None:
        raise ValueError("tracing a model needs the input shape (from the box)")
    net = model_or_graph
    return trace(lambda p, x: net.forward(p, x)[0], {"x": tuple(input_shape)},
                 {k: v.shape for k, v in params.items()}, field="ieee32exec")


def _as_f64(value: Any) -> Arr:
    if isinstance(value, Tensor):
        value = value.numpy()
    return np.asarray(value, dtype=np.float64)


def _params32(graph: Graph, params: Mapping[str, Any]) -> dict[str, Arr]:
    out = {}
    for n in graph.params:
        if n.name not in params:
            raise KeyError(f"parameter {n.name!r} missing")
        raw = _as_f64(params[n.name])
        if not np.all(np.isfinite(raw)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(raw))[0])
            raise RoundingBoundError(f"parameter {n.name!r} is not finite at {bad}")
        # the executed model uses the binary32 values; the real model uses the same ones
        out[n.name] = np.asarray(raw.astype(np.float32), dtype=np.float64)
    return out


def _boxes(graph: Graph, box: Any) -> dict[str, tuple[Arr, Arr]]:
    inputs = graph.inputs
    if isinstance(box, Mapping):
        pairs = dict(box)
    else:
        if len(inputs) != 1:
            raise ValueError(f"the graph has inputs {[n.name for n in inputs]}: pass a "
                             "mapping name -> (lower, upper)")
        pairs = {inputs[0].name: box}
    out = {}
    for n in inputs:
        lo, hi = (_as_f64(v) for v in pairs[n.name])
        if lo.shape != n.shape or hi.shape != n.shape:
            raise ValueError(f"input {n.name!r}: box shapes {lo.shape}, {hi.shape}, the graph "
                             f"expects {n.shape}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise RoundingBoundError(f"input {n.name!r}: the box has a non-finite endpoint")
        if np.any(lo > hi):
            bad = tuple(int(i) for i in np.argwhere(lo > hi)[0])
            raise RoundingBoundError(f"input {n.name!r}: lower {lo[bad]} > upper {hi[bad]} "
                                     f"at index {bad}")
        out[n.name] = (lo, hi)
    return out


@dataclass
class _Real:
    """The zonotope pass over the real values (verify/zonotope.py), run once with the
    first propagation: per node an enclosure to intersect with the interval rules', and
    per ieee32exec matmul bounds of its real partial sums."""

    hulls: list[tuple[Arr, Arr]] = field(default_factory=list)
    smag: dict[int, Arr] = field(default_factory=dict)
    zonos: list[zono.Zono | None] = field(default_factory=list)
    syms: zono.Symbols = field(default_factory=zono.Symbols)


def _partial_sums(a: zono.Zono | None, b: zono.Zono | None) -> Arr | None:
    """Bounds of |real partial sum k| of a 2-D a @ b, in the matmul terms' layout."""
    if a is None or b is None or a.c.ndim != 2 or b.c.ndim != 2:
        return None
    if b.is_point and not a.is_point:
        return zono.matmul_partial_sums(a, b.c)
    if a.is_point and not b.is_point:  # (W @ X)^T = X^T @ W^T, the same fold order
        xt = zono.Zono(b.c.T, np.swapaxes(b.g, 0, 1), b.r.T)
        return np.swapaxes(zono.matmul_partial_sums(xt, a.c.T), 0, 1)
    return None


def _real_step(real: _Real, n: Any, args: list[Bound], mode: str) -> tuple[zono.Zono | None,
                                                                          Arr | None]:
    """The node's zonotope when a linear rule gives one, and its partial-sum bounds."""
    zs = [real.zonos[i] for i in n.args]
    shape = tuple(n.shape)
    idx = _gather_index(n.op, [a.lo.shape for a in args], n.attr_dict) \
        if n.op in _STRUCTURAL else None
    z = zono.step(n.op, zs, n.attr_dict, shape, [(a.lo, a.hi) for a in args], real.syms, idx)
    smag = _partial_sums(zs[0], zs[1]) if n.op == "matmul" and mode == "ieee32exec" else None
    return z, smag


def _propagate(graph: Graph, params: dict[str, Arr], boxes: dict[str, tuple[Arr, Arr]],
               mode: str, u: float, inputs_are_float32: bool,
               only: int | None = None, real: _Real | None = None) -> list[Bound]:
    """Bounds for every node; `only` = the single node allowed to round (attribution).
    `real` is the zonotope pass: filled in when empty, reused when given filled."""
    env: list[Bound] = []
    first = real is not None and not real.hulls
    for n in graph.nodes:
        c = Ctx(mode, u, only is None or only == n.id, f"node %{n.id} ({n.op})")
        z: zono.Zono | None = None
        if n.op == "param":
            p = params[n.name]
            b = Bound(p, p.copy(), np.zeros_like(p))
            z = zono.point(p)
        elif n.op == "input":
            lo, hi = boxes[n.name]
            if inputs_are_float32 or not c.rounds:
                b = Bound(lo, hi, np.zeros_like(lo))
            else:  # rounding binary64 inputs to binary32 on entry
                b = Bound(lo, hi, c.rho(_mag(lo, hi), _may_sub(lo, hi, np.zeros_like(lo))))
        elif n.op == "const":
            b = _const(n.attr("value"), ())
            if not c.rounds:
                b.e = np.zeros_like(b.e)
        elif n.op == "literal":
            v = _as_f64(literal_array(graph.field_def, n, None))
            v32 = np.asarray(v.astype(np.float32), dtype=np.float64)
            e = _up(np.abs(v32 - v)) if c.rounds else np.zeros_like(v)
            b = Bound(v, v.copy(), np.where(v32 == v, 0.0, e))
        else:
            args = [env[i] for i in n.args]
            smag = None
            if first and real is not None:
                z, smag = _real_step(real, n, args, mode)
                if smag is not None:
                    real.smag[n.id] = smag
            elif real is not None:
                smag = real.smag.get(n.id)
            b = _rule(n.op, args, n.attr_dict, c, smag)
        if real is not None:
            if first:
                if z is None:  # no linear rule: start afresh from the interval
                    z = zono.from_interval(b.lo, b.hi, real.syms, fresh=n.op != "literal")
                real.zonos.append(z)
                real.hulls.append(zono.hull(z) if z is not None else (b.lo, b.hi))
            zlo, zhi = real.hulls[n.id]
            b = Bound(np.maximum(b.lo, zlo), np.minimum(b.hi, zhi), b.e)
            if np.any(b.lo > b.hi):  # two sound enclosures of one real value cannot miss
                raise AssertionError(f"node %{n.id} ({n.op}): disjoint real enclosures")
        if np.any(_up(b.mag + b.e) >= OVERFLOW) or np.any(np.isnan(b.e)):
            raise RoundingBoundError(f"node %{n.id} ({n.op}): a value may reach the binary32 "
                                     "overflow threshold 2^128 - 2^103 inside the box")
        env.append(b)
    if real is not None:
        real.zonos = []  # only the hulls and partial sums are reused
    return env


# -- affine (first-order) propagation ------------------------------------------------------
# Each node's error is carried as sum_k c_k eps_k over symbols |eps_k| <= 1, grouped in
# blocks: block j holds the symbols created at node j (one per element of node j), stored
# as coefficients of shape node.shape + (size of node j,). A symbol stands for whatever
# value (error / its bound) takes at the given input: no independence is assumed, so the
# bound sum |c_k| is sound whatever the symbols' correlations; sharing a symbol between
# paths only lets signed coefficients (W @ C) cancel where the same error meets itself.
# Everything not linear in earlier symbols (local roundings, second-order and
# linearisation terms, the binary64 error of computing coefficients) goes into a fresh
# diagonal block of the node, with a rigorous elementwise magnitude.
AFFINE_MAX_SIZE = 4096  # larger nodes: method="affine" falls back to "elementwise"
Blocks = dict[int, Arr]


def _lin(blocks: Blocks, shape: tuple[int, ...]) -> Arr:
    """An upper bound of sum |c| per element over all blocks."""
    tot = np.zeros(shape)
    for cf in blocks.values():
        k = cf.shape[-1]
        s = np.sum(np.abs(cf), axis=-1)
        # any-order float sum of k nonnegatives: s_true <= s (1 + 2 gamma_k), no underflow
        tot = _up(tot + _up(s * _up(1.0 + 4.0 * k * U64)))
    return tot


def _nsym(blocks: Blocks) -> int:
    return sum(cf.shape[-1] for cf in blocks.values())


def _slop(lin_computed: Arr, nsym: int) -> Arr:
    """sum |d| over the symbols, d the binary64 error of coefficients computed by one
    correctly rounded op each (|d| <= U64 |c| <= 2 U64 |c~|, plus underflow)."""
    return _up(_up(2.0 * U64 * lin_computed) + nsym * TINY64)


class _TooLarge(Exception):
    """A fresh block would need more than AFFINE_MAX_SIZE symbols."""


def _fresh(nid: int, mag: Arr) -> Blocks:
    if not np.any(mag > 0):
        return {}
    size = mag.size
    if size > AFFINE_MAX_SIZE:
        raise _TooLarge(nid)
    cf = np.zeros((size, size))
    cf[np.arange(size), np.arange(size)] = mag.ravel()
    return {nid: cf.reshape(mag.shape + (size,))}


def _bcast(cf: Arr, shape: tuple[int, ...]) -> Arr:
    lead = cf.ndim - 1
    cf = cf.reshape((1,) * (len(shape) - lead) + cf.shape)
    return np.broadcast_to(cf, shape + cf.shape[-1:])


def _combine(terms: Sequence[tuple[Arr | float, Blocks]], shape: tuple[int, ...]) -> Blocks:
    """sum_i s_i * blocks_i (s_i scalars or arrays broadcasting to shape)."""
    out: Blocks = {}
    for s, blocks in terms:
        sv = np.asarray(s, dtype=np.float64)
        sv = sv.reshape((1,) * (len(shape) - sv.ndim) + sv.shape)[..., None]
        for j, cf in blocks.items():
            v = _bcast(cf, shape) * sv
            out[j] = out[j] + v if j in out else np.array(v)
    return out


def _merge(a: Blocks, b: Blocks) -> Blocks:
    out = dict(a)
    for j, cf in b.items():
        out[j] = out[j] + cf if j in out else cf
    return out


@dataclass
class Form:
    """A node in the affine pass: the real enclosure, the error bound in force (the
    smaller of the elementwise and the affine one, both sound) and the symbol blocks."""

    lo: Arr
    hi: Arr
    e: Arr
    blocks: Blocks

    @property
    def widened(self) -> Bound:
        """An enclosure of the real and the computed value, with no error of its own."""
        exact = self.e == 0  # keep exact values exact (a weight stays a point)
        return Bound(np.where(exact, self.lo, _dn(self.lo - self.e)),
                     np.where(exact, self.hi, _up(self.hi + self.e)), np.zeros_like(self.e))

    @property
    def exact_point(self) -> bool:
        return not self.blocks and bool(np.all(self.lo == self.hi)) and \
            not np.any(self.e > 0)


def _mid_rad(lo: Arr, hi: Arr) -> tuple[Arr, Arr]:
    mid = lo + (hi - lo) / 2  # any value works: rad is an upper bound of |x - mid|
    mid = np.where(np.isfinite(mid), mid, 0.0)
    return mid, np.maximum(_up(hi - mid), _up(mid - lo))


def _affine_rule(op: str, nid: int, args: list[Form], attrs: dict[str, Any], c: Ctx,
                 shape: tuple[int, ...], smag: Arr | None = None) -> Blocks:
    """The node's blocks: the propagated first-order part plus a fresh block for the rest.
    `smag` bounds a matmul's real partial sums (see _Real)."""
    def local(smag: Arr | None = None) -> Arr:  # the op's rounding on the computed arguments
        return _rule(op, [a.widened for a in args], attrs, c, smag).e

    if op in _STRUCTURAL:
        return _gather(op, args, attrs, shape)
    if op in ("add", "sub"):
        a, b = args
        out = _combine([(1.0, a.blocks), (1.0 if op == "add" else -1.0, b.blocks)], shape)
        return _merge(out, _fresh(nid, _up(local() + _slop(_lin(out, shape), _nsym(out)))))
    if op == "neg":
        return {j: -cf for j, cf in args[0].blocks.items()}
    if op in ("mul", "square"):
        a, b = (args[0], args[0]) if op == "square" else (args[0], args[1])
        am, ar = _mid_rad(a.lo, a.hi)
        bm, br = _mid_rad(b.lo, b.hi)
        out = _combine([(bm, a.blocks), (am, b.blocks)], shape)
        # a^ b^ - a b = am E_b + bm E_a + (a - am) E_b + (b - bm) E_a + E_a E_b
        rest = _up(_up(_up(ar * b.e) + _up(br * a.e)) + _up(a.e * b.e))
        rest = _up(rest + _slop(_lin(out, shape), _nsym(out)))
        return _merge(out, _fresh(nid, _up(local() + np.broadcast_to(rest, shape))))
    if op == "div" and args[1].exact_point:
        a, b = args
        out = _combine([(1.0 / b.lo, a.blocks)], shape)  # 1/b rounded: in the slop below
        slop = _up(2.0 * _slop(_lin(out, shape), _nsym(out)))
        return _merge(out, _fresh(nid, _up(local() + slop)))
    if op == "sum":
        return _affine_sum(nid, args[0], tuple(attrs["axes"]), bool(attrs["keepdims"]), shape,
                           local())
    if op == "matmul" and (args[0].exact_point or args[1].exact_point):
        wide = None if smag is None else _widened_partial_sums(smag, args[0], args[1])
        return _affine_matmul(nid, args, c, shape, local(wide))
    if op == "relu":
        a = args[0]
        w = a.widened
        active, inactive = w.lo >= 0, w.hi <= 0
        # relu(z^) - relu(z) = lam (z^ - z), lam in [0, 1] = 1/2 + [-1/2, 1/2]
        fac = np.where(active, 1.0, np.where(inactive, 0.0, 0.5))
        out = _combine([(fac, a.blocks)], shape)
        return _merge(out, _fresh(nid, np.where(active | inactive, 0.0, _up(a.e / 2))))
    if op == "abs":
        a = args[0]
        w = a.widened
        sign = np.where(w.lo >= 0, 1.0, np.where(w.hi <= 0, -1.0, 0.0))
        out = _combine([(sign, a.blocks)], shape)
        return _merge(out, _fresh(nid, np.where(sign == 0, a.e, 0.0)))
    # anything else: the elementwise rule on the arguments' bounds, as one fresh block
    return _fresh(nid, _rule(op, [Bound(a.lo, a.hi, a.e) for a in args], attrs, c).e)


def _affine_matmul(nid: int, args: list[Form], c: Ctx, shape: tuple[int, ...],
                   local: Arr) -> Blocks:
    a, b = args
    out: Blocks = {}
    if a.exact_point:  # W @ X: coefficients [..., K, N, s]
        w, kdim = a.lo, a.lo.shape[-1]
        for j, cf in b.blocks.items():
            out[j] = np.einsum("...mk,...kns->...mns", w, cf)
        absw, lin_in = np.abs(w), _lin(b.blocks, b.lo.shape)
        slop_lin = _up(np.matmul(absw, lin_in) * _up(1.0 + 4.0 * kdim * U64))
    else:  # X @ W
        w, kdim = b.lo, b.lo.shape[-2]
        for j, cf in a.blocks.items():
            out[j] = np.einsum("...mks,...kn->...mns", cf, w)
        absw, lin_in = np.abs(w), _lin(a.blocks, a.lo.shape)
        slop_lin = _up(np.matmul(lin_in, absw) * _up(1.0 + 4.0 * kdim * U64))
    out = {j: np.broadcast_to(cf, shape + cf.shape[-1:]) for j, cf in out.items()}
    # binary64 matmul of coefficients: |d| <= gamma_K |W| |C| (Higham 3.5), summed over s;
    # the second factor bounds the binary64 evaluation of |W| lin itself
    slop = _up(_up(gamma(kdim + 2, U64) * slop_lin) + kdim * _nsym(out) * TINY64)
    return _merge(out, _fresh(nid, _up(local + slop)))


def _affine_sum(nid: int, a: Form, axes: tuple[int, ...], keepdims: bool,
                shape: tuple[int, ...], local: Arr) -> Blocks:
    out = {j: np.sum(cf, axis=axes, keepdims=keepdims).reshape(shape + cf.shape[-1:])
           for j, cf in a.blocks.items()}
    m = int(np.prod([a.lo.shape[i] for i in axes]))
    lin_in = np.sum(_lin(a.blocks, a.lo.shape), axis=axes, keepdims=keepdims).reshape(shape)
    # binary64 sums of m coefficients: |d| <= gamma_m sum |c| (any order, Higham 4.2)
    slop = _up(_up(gamma(m + 2, U64) * _up(lin_in * _up(1.0 + 4.0 * m * U64)))
               + m * _nsym(out) * TINY64)
    return _merge(out, _fresh(nid, _up(local + slop)))


def _gather_index(op: str, shapes: Sequence[tuple[int, ...]], attrs: dict[str, Any]) -> Index:
    """For a structural op: which element of the arguments laid end to end (1-based; 0
    marks a zero the op fills in) each output element is, found by running the op on
    element numbers."""
    ids: list[Tensor] = []
    offset = 1
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        ids.append(Tensor(np.arange(offset, offset + size, dtype=np.float64).reshape(shape),
                          _F64))
        offset += size
    return np.asarray(apply(op, ids[0], *ids[1:], **attrs).data, dtype=np.int64).ravel()


def _gather(op: str, args: list[Form], attrs: dict[str, Any], shape: tuple[int, ...]) -> Blocks:
    """A structural op moves coefficients like values: gather the coefficient rows."""
    idx = _gather_index(op, [a.lo.shape for a in args], attrs)
    total = 1 + sum(a.lo.size for a in args)
    out: Blocks = {}
    for j in {j for a in args for j in a.blocks}:
        k = next(a.blocks[j].shape[-1] for a in args if j in a.blocks)
        table = np.zeros((total, k))
        start = 1
        for a in args:
            if j in a.blocks:
                table[start:start + a.lo.size] = a.blocks[j].reshape(a.lo.size, k)
            start += a.lo.size
        out[j] = table[idx].reshape(shape + (k,))
    return out


def _widened_partial_sums(smag: Arr, a: Form, b: Form) -> Arr:
    """Partial-sum bounds of the computed arguments' product: the real ones plus
    sum_{i<=k} |w_i| e_i, the arguments' errors carried along (2-D a @ b, one a point)."""
    if b.exact_point:  # X @ W: [M, N, K] += cumsum_k |W[k, n]| e[m, k]
        terms = np.abs(b.lo).T[None, :, :] * a.e[:, None, :]
    else:  # W @ X: [M, N, K] += cumsum_k |W[m, k]| e[k, n]
        terms = np.abs(a.lo)[:, None, :] * b.e.T[None, :, :]
    kdim = terms.shape[-1]
    extra = _up(np.cumsum(terms, axis=-1) * _up(1.0 + 4.0 * (kdim + 1) * U64))
    return _up(smag + extra)


def _propagate_affine(graph: Graph, env: list[Bound], mode: str, u: float,
                      smag: Mapping[int, Arr] | None = None) -> list[Form]:
    """The affine pass over the elementwise pass's enclosures `env` (and matmul
    partial-sum bounds `smag`, by node)."""
    forms: list[Form] = []
    for n in graph.nodes:
        el = env[n.id]
        c = Ctx(mode, u, True, f"node %{n.id} ({n.op})")
        if n.op in ("param", "input", "const", "literal"):
            blocks = _fresh(n.id, el.e)  # the leaf's own rounding (or none)
        else:
            blocks = _affine_rule(n.op, n.id, [forms[i] for i in n.args], n.attr_dict, c,
                                  tuple(n.shape), (smag or {}).get(n.id))
        e = np.minimum(_lin(blocks, tuple(n.shape)), el.e)
        forms.append(Form(el.lo, el.hi, e, blocks))
    return forms


# -- report --------------------------------------------------------------------------------
@dataclass
class RoundingReport:
    """Per-output error bounds (float64 arrays, each an upper bound of the exact bound),
    the real-value enclosures, the node contributing most, and sampled observations."""

    mode: str
    u: float
    bounds: dict[str, Arr]
    enclosures: dict[str, tuple[Arr, Arr]]
    method: str = "affine"
    contributions: dict[str, float] = field(default_factory=dict)
    observed: dict[str, Arr] = field(default_factory=dict)
    samples: int = 0

    @property
    def bound(self) -> float:
        """The largest bound over all output elements."""
        return max(float(np.max(b, initial=0.0)) for b in self.bounds.values())

    @property
    def max_observed(self) -> float:
        return max((float(np.max(o, initial=0.0)) for o in self.observed.values()), default=0.0)

    @property
    def ratio(self) -> float:
        """bound / max observed error (inf when nothing was observed)."""
        obs = self.max_observed
        return self.bound / obs if obs > 0 else math.inf

    @property
    def top_node(self) -> tuple[str, float] | None:
        """The node whose own roundings alone cause the largest output bound."""
        if not self.contributions:
            return None
        return max(self.contributions.items(), key=lambda kv: kv[1])

    def __str__(self) -> str:
        lines = [f"rounding bound ({self.mode}, {self.method}, "
                 f"u = 2^{int(math.log2(self.u))}): "
                 f"max {self.bound:.3e}"]
        for name, b in self.bounds.items():
            lines.append(f"  {name}: max {float(np.max(b, initial=0.0)):.3e}")
        if self.top_node:
            lines.append(f"  largest contribution: {self.top_node[0]} ({self.top_node[1]:.3e})")
        if self.samples:
            lines.append(f"  observed over {self.samples} samples: {self.max_observed:.3e} "
                         f"(bound / observed = {self.ratio:.3g})")
        return "\n".join(lines)


def error_bound(model_or_graph: Any, params: Mapping[str, Any] | None, box: Any,
                dtype: str = "ieee32exec", *, inputs_are_float32: bool = True,
                samples: int = 0, seed: int = 0, attribute: bool = True,
                u: float = U32, method: str = "affine",
                enclosure: str = "zonotope") -> RoundingReport:
    """Bounds on |fl(f(x)) - f(x)| for every x in the box, per output element.

    `box` is (lower, upper) for a one-input graph or a mapping input name -> (lower, upper).
    `dtype` is "ieee32exec" (fixed left folds, correctly rounded functions) or
    "float32_any_order" (any summation order and FMA, ULP_BUDGET-ulp functions).
    With `inputs_are_float32` the inputs are the binary32 numbers in the box (endpoints
    must be binary32); otherwise any reals in the box, rounded to binary32 on entry.
    `samples` > 0 also runs ieee32exec at that many points (endpoints, midpoint, random)
    against the real value. `u` is binary32's 2^-24; another value models rounding to
    that unit with binary32's underflow and overflow thresholds kept (so u = 2^-53 gives a
    conservative binary64 bound, as bench/bench_fpbench.py uses; the tests use 2^-25).
    `method` "affine" (default) carries first-order error terms with signs through the
    graph (errors passing through W @ may cancel); "elementwise" propagates magnitudes
    only. Both are sound; the report's bound is the smaller of the two per element
    for "affine". A graph where a node with rounding errors has over AFFINE_MAX_SIZE
    elements falls back to "elementwise" (report.method says which was used).
    `enclosure` "zonotope" (default) encloses the real values with zonotopes (linear
    layers exact, DeepZ ReLUs) intersected with the interval rules, and bounds each
    ieee32exec matmul's partial sums through them; "interval" uses the interval rules alone.
    The report's `contributions` are, for "affine", the part of the bound carried by each
    node's own symbols (a node that gets no linear rule also carries the errors it received);
    for "elementwise", the bound with only that node rounding.
    """
    if dtype not in MODES:
        raise ValueError(f"dtype must be one of {MODES}, got {dtype!r}")
    if enclosure not in ENCLOSURES:
        raise ValueError(f"enclosure must be one of {ENCLOSURES}, got {enclosure!r}")
    first = box if not isinstance(box, Mapping) else next(iter(box.values()))
    graph = as_graph(model_or_graph, _as_f64(first[0]).shape)
    if params is None:
        params = getattr(model_or_graph, "params", {})
    p32 = _params32(graph, params)
    boxes = _boxes(graph, box)
    if inputs_are_float32:
        for name, (lo, hi) in boxes.items():
            for v in (lo, hi):
                if np.any(v.astype(np.float32).astype(np.float64) != v):
                    raise RoundingBoundError(
                        f"input {name!r}: box endpoints are not binary32 values; round them "
                        "or pass inputs_are_float32=False")
    real = _Real() if enclosure == "zonotope" else None
    env = _propagate(graph, p32, boxes, dtype, u, inputs_are_float32, real=real)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    forms = None
    if method == "affine":
        try:
            forms = _propagate_affine(graph, env, dtype, u, real.smag if real else None)
        except _TooLarge:  # dense coefficient blocks would not fit: the stated fallback
            method = "elementwise"
    report = RoundingReport(
        dtype, u,
        {name: (forms[i].e if forms else env[i].e) for name, i in graph.outputs},
        {name: (env[i].lo, env[i].hi) for name, i in graph.outputs},
        method=method,
    )
    if attribute and forms:
        for j in sorted({j for _, i in graph.outputs for j in forms[i].blocks}):
            worst = max(float(np.max(_lin({j: forms[i].blocks[j]}, tuple(graph.nodes[i].shape)),
                                      initial=0.0))
                        for _, i in graph.outputs if j in forms[i].blocks)
            # capped: the bound is min(affine, elementwise), a block alone is at most it
            report.contributions[f"%{j} ({graph.nodes[j].op})"] = min(worst, report.bound)
    elif attribute:
        for n in graph.nodes:
            if n.op in ("param",) or n.op in _STRUCTURAL:
                continue
            alone = _propagate(graph, p32, boxes, dtype, u, inputs_are_float32, only=n.id,
                               real=real)
            worst = max(float(np.max(alone[i].e, initial=0.0)) for _, i in graph.outputs)
            if worst > 1e-300:  # skip exact leaves (an _up of 0 is the least subnormal)
                report.contributions[f"%{n.id} ({n.op})"] = worst
    if samples:
        pts = _sample_points(boxes, samples, seed, inputs_are_float32)
        report.observed = observed_error(graph, p32, pts)
        report.samples = len(pts)
    return report


def error_bound_at(model_or_graph: Any, params: Mapping[str, Any] | None, x: Any,
                   dtype: str = "ieee32exec", **kwargs: Any) -> RoundingReport:
    """`error_bound` over the one-point box {x} (a mapping name -> x for several inputs)."""
    box = ({k: (v, v) for k, v in x.items()} if isinstance(x, Mapping) else (x, x))
    return error_bound(model_or_graph, params, box, dtype, **kwargs)


# -- observation -------------------------------------------------------------------------------
_RATIONAL = frozenset(("add", "sub", "mul", "div", "neg", "abs", "relu", "maximum", "minimum",
                       "max", "sum", "mean", "matmul", "square", "leaky_relu", "param", "input",
                       "const", "literal") + _STRUCTURAL)


def _sample_points(boxes: dict[str, tuple[Arr, Arr]], n: int, seed: int,
                   as32: bool) -> list[dict[str, Arr]]:
    rng = np.random.default_rng(seed)
    pts: list[dict[str, Arr]] = []
    for k in range(n):
        pt = {}
        for name, (lo, hi) in boxes.items():
            v = lo if k == 0 else hi if k == 1 else (lo + hi) / 2 if k == 2 else \
                lo + (hi - lo) * rng.random(lo.shape)
            if as32:
                v = np.clip(v.astype(np.float32).astype(np.float64), lo, hi)
            pt[name] = np.asarray(v, dtype=np.float64)
        pts.append(pt)
    return pts


def observed_error(graph: Graph, params: Mapping[str, Any],
                   points: Sequence[Mapping[str, Any]]) -> dict[str, Arr]:
    """The largest |ieee32exec - real| per output element over the points: the real value
    over `exact` when every op is rational, else the `interval` field at 113 bits, taking
    the worst case over its enclosure (so the figure is an upper estimate of the error)."""
    rational = all(n.op in _RATIONAL for n in graph.nodes)
    p32 = {k: _as_f64(v) for k, v in params.items() if k in {n.name for n in graph.params}}
    worst: dict[str, Arr] = {name: np.zeros(graph.nodes[i].shape) for name, i in graph.outputs}
    for pt in points:
        fl = interpret(graph, {**p32, **pt}, field="ieee32exec")
        ref_field = get_field("exact" if rational else "interval")
        exact_vals = {k: ref_field.asarray(np.asarray(v, dtype=np.float64))
                      for k, v in {**p32, **pt}.items()}
        ref = interpret(graph, exact_vals, field=ref_field)
        for name in worst:
            f = np.asarray(fl[name].data, dtype=np.float64)
            r = np.asarray(ref[name].data, dtype=object)
            err = np.empty(f.shape)
            for i in np.ndindex(f.shape):
                err[i] = _abs_diff(float(f[i]), r[i], rational)
            worst[name] = np.maximum(worst[name], err)
    return worst


def _abs_diff(f: float, r: Any, rational: bool) -> float:
    if rational:
        d = abs(Fraction(f) - r)
        return float(d)
    lo, hi = mpf_to_fraction(r.a), mpf_to_fraction(r.b)
    return float(max(abs(Fraction(f) - lo), abs(Fraction(f) - hi)))
