"""The elementwise rules of `verify.rounding`: per op, a node's Bound (real enclosure and
error bound) from its arguments', registered in `RULES`, one per op of the table or an
explicit refusal.

- left folds (sum, mean, matmul entries): Higham's gamma_m = m u / (1 - m u) per term
  (Accuracy and Stability of Numerical Algorithms, 2nd ed., sections 3.1 and 4.2). In
  `ieee32exec` the zero-seeded left fold is bounded step by step (a running-error bound);
  in `float32_any_order` every term gets gamma_n (any order, any blocking, FMA or not).
- functions: one correct rounding of f(computed input), plus Lipschitz propagation with a
  rigorous bound of |f'| (`SLOPES`) over the enclosure widened by the input error; in
  `float32_any_order` the vendor libm is assumed within `ULP_BUDGET` ulps.
- ops that move elements (`kind == "structural"`) move enclosures and errors alike.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from ...spec.errors import UnsupportedOperation
from ...spec.fields import get_field
from ...spec.fields import interval_math as im
from ...spec.fields.base import PI
from ...spec.ops import OPS, apply
from ...spec.ops.rules import RuleTable
from ...spec.tensor import Tensor
from ..outward import U64, gamma_up
from ..outward import next_down as _dn
from ..outward import next_up as _up
from .fold import running_errors
from .model import (
    BELOW_OVERFLOW,
    ETA,
    GELU_SLOPE,
    IV_CTX,
    OVERFLOW,
    SUBNORMAL,
    TWO_OVER_SQRT_PI,
    Arr,
    Bound,
    Ctx,
    Mask,
    RoundingBoundError,
    T,
    absmax,
    absmin,
    gamma,
    half_ulp,
    image,
    iv_hi,
    iv_lo,
    may_be_subnormal,
    up_nonneg_inplace,
)

__all__ = ["RULES", "SLOPES", "F64", "bound_rule", "const_bound", "function_bound",
           "is_structural", "exact_zero", "exact_pow2"]

def exact_zero(a: Bound) -> Mask:
    """Elements known to be exactly 0 in both the real and the computed model."""
    return np.asarray((a.lo == 0) & (a.hi == 0) & (a.e == 0))


def exact_pow2(a: Bound) -> Mask:
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
    r = half_ulp(_up(absmax(lo, hi) + ep), c.u) if c.rounds else np.zeros_like(ep)
    r = np.where(exact_zero(a) | exact_zero(b), 0.0, r)
    return Bound(lo, hi, _up(ep + r))


def binary32_values(*arrays: Arr) -> bool:
    """Whether every element of the arrays is a (finite) binary32 number."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(bool(np.all(v.astype(np.float32).astype(np.float64) == v)) for v in arrays)


def _mul_enclosure(alo: Arr, ahi: Arr, blo: Arr, bhi: Arr,
                   exact: bool = False) -> tuple[Arr, Arr]:
    """[lo, hi] of the products; `exact` when all ends are binary32 numbers: their
    products (48-bit significands, exponents within binary64's range) are exact in
    binary64, so no step outward is needed."""
    cands = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    if exact:
        return np.minimum.reduce(cands), np.maximum.reduce(cands)
    return _dn(np.minimum.reduce(cands)), _up(np.maximum.reduce(cands))


def _mul(a: Bound, b: Bound, c: Ctx) -> Bound:
    lo, hi = _mul_enclosure(a.lo, a.hi, b.lo, b.hi, binary32_values(a.lo, a.hi, b.lo, b.hi))
    ep = _up(_up(_up(a.mag * b.e) + _up(b.mag * a.e)) + _up(a.e * b.e))
    may_sub = may_be_subnormal(lo, hi, ep)
    r = c.rho(_up(absmax(lo, hi) + ep), may_sub)
    if c.rounds:  # times an exact power of two: only an underflow can round
        r = np.where(exact_pow2(a) | exact_pow2(b), np.where(may_sub, ETA, 0.0), r)
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
    ep = _up(_up(a.e + _up(absmax(lo, hi) * b.e)) / _dn(absmin(wlo, whi)))
    r = c.rho(_up(absmax(lo, hi) + ep), may_be_subnormal(lo, hi, ep))
    return Bound(lo, hi, _up(ep + r))


def _lipschitz(a: Bound, lo: Arr, hi: Arr, slope: Arr, c: Ctx) -> Bound:
    ep = _up(slope * a.e)
    r = c.rho_fn(_up(absmax(lo, hi) + ep), may_be_subnormal(lo, hi, ep))
    return Bound(lo, hi, _up(ep + r))



def _exp_slope(wlo: Arr, whi: Arr, where: str) -> Arr:  # exp and expm1: exp(hi)
    return image(im.exp, whi, whi)[1]


def _log_slope(wlo: Arr, whi: Arr, where: str) -> Arr:
    if np.any(wlo <= 0):
        raise RoundingBoundError(f"{where}: log of a value that may be <= 0")
    return _up(1.0 / wlo)


def _log1p_slope(wlo: Arr, whi: Arr, where: str) -> Arr:
    if np.any(wlo <= -1):
        raise RoundingBoundError(f"{where}: log1p of a value that may be <= -1")
    return _up(1.0 / _dn(1.0 + wlo))


def _tanh_slope(wlo: Arr, whi: Arr, where: str) -> Arr:
    # 1 - tanh(t)^2, largest at the t nearest 0
    m = absmin(wlo, whi)
    t = image(im.tanh, m, m)[0]
    return _up(1.0 - _dn(t * t))


def _sigmoid_slope(wlo: Arr, whi: Arr, where: str) -> Arr:
    # s(t) s(-t), largest at the t nearest 0
    m = absmin(wlo, whi)
    return _up(image(im.sigmoid, m, m)[1] * image(im.sigmoid, -m, -m)[1])


def _softplus_slope(wlo: Arr, whi: Arr, where: str) -> Arr:
    return np.minimum(1.0, image(im.sigmoid, whi, whi)[1])


def _erf_slope(wlo: Arr, whi: Arr, where: str) -> Arr:  # 2/sqrt(pi) exp(-t^2)
    m = absmin(wlo, whi)
    return _up(TWO_OVER_SQRT_PI * image(im.exp, -_dn(m * m), -_dn(m * m))[1])


SLOPES: dict[str, Callable[[Arr, Arr, str], Arr]] = {
    "exp": _exp_slope, "expm1": _exp_slope, "log": _log_slope, "log1p": _log1p_slope,
    "tanh": _tanh_slope, "sigmoid": _sigmoid_slope, "softplus": _softplus_slope,
    "erf": _erf_slope,
    "gelu": lambda wlo, whi, where: np.full_like(wlo, GELU_SLOPE),
    "sin": lambda wlo, whi, where: np.ones_like(wlo),
    "cos": lambda wlo, whi, where: np.ones_like(wlo),
}
"""Per function: a rigorous upper bound of |f'| over [wlo, whi], elementwise (`where`
names the node in errors). Its image comes from spec.fields.interval_math."""


def function_bound(name: str, a: Bound, c: Ctx) -> Bound:
    """The bound of function `name` (a key of SLOPES) of a value bounded by `a`."""
    wlo, whi = _dn(a.lo - a.e), _up(a.hi + a.e)
    slope = SLOPES[name](wlo, whi, c.where)
    lo, hi = image(getattr(im, name), a.lo, a.hi)
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
    """An upper bound of the sum over the last axis of x: the left fold
    up(...up(up(0 + x_0) + x_1)... + x_n-1), each sum rounded to nearest and then stepped
    up. One vector step per term: the fold runs across all other axes at once."""
    rest, n = x.shape[:-1], x.shape[-1]
    xs = np.ascontiguousarray(np.moveaxis(x, -1, 0)).reshape(n, -1)  # rows stay arrays
    acc = np.zeros(xs.shape[1])
    for k in range(n):
        np.add(acc, xs[k], out=acc)
        _step_up_inplace(acc)
    if np.isnan(acc).any():  # a -0.0 or an infinity met the bit step: np.nextafter
        acc[...] = 0.0
        for k in range(n):
            np.add(acc, xs[k], out=acc)
            np.nextafter(acc, np.inf, out=acc)
    return acc.reshape(rest)


def _fold_dn(x: Arr) -> Arr:
    """A lower bound likewise: -fold_up(-x), since dn(a + b) = -up(-a - b) exactly."""
    return -_fold_up(-x)


def _fold(tlo: Arr, thi: Arr, te: Arr, c: Ctx, products: bool, eta_terms: int,
          smag: Arr | None = None, exact: Mask | None = None) -> Bound:
    """The fold over the last axis of terms with enclosures [tlo, thi] and propagated
    errors te (a matmul's terms are exact products of computed operands: their own
    rounding is added here). `smag`, when given, bounds |real partial sum k| (from the
    zonotope pass) more tightly than the sum of the term enclosures; `exact` marks
    products with an exact power-of-two factor (only an underflow rounds them)."""
    n = tlo.shape[-1]
    tmag = absmax(tlo, thi)
    if c.mode == "ieee32exec" or not c.rounds:
        return _left_fold(tlo, thi, te, tmag, c, products, smag, exact)
    # the four folds at once (the lower end as -fold_up(-tlo))
    nlo, hi, ep, tsum = _fold_up(np.stack([-tlo, thi, te, tmag]))
    return _any_order(-nlo, hi, ep, tsum, n, c, products, eta_terms)


def _any_order(lo: Arr, hi: Arr, ep: Arr, tsum: Arr, n: int, c: Ctx, products: bool,
               eta_terms: int) -> Bound:
    """The any-order fold of n terms from upper bounds of the sums of the terms' errors
    (ep) and magnitudes (tsum), with the enclosure [lo, hi] of the sum."""
    # any order, any blocking, FMA or not: every term passes through at most n roundings
    # (n - 1 additions and its product, or n - 1 FMAs), so gamma_n covers it (Higham 3.1).
    total = _up(tsum + ep)
    g = gamma(n if products else max(n - 1, 0), c.u)[()]
    local = _up(g * total)
    if eta_terms:  # every product or FMA may be subnormal: n eta each, amplified
        local = _up(local + _up(eta_terms * n * ETA * _up(1.0 + gamma(n, c.u)[()])))
    if np.any(_up(total * _up(1 + g)) >= OVERFLOW):
        raise RoundingBoundError(f"{c.where}: a partial sum may overflow binary32")
    return Bound(lo, hi, _up(ep + local))


_CHUNK = 16384  # elements per block of fold rows: small temporaries stay in cache
Rows = Callable[[int, int], tuple[Arr, ...]]


def _product_rounding(tlo: Arr, thi: Arr, te: Arr, mk: Arr, c: Ctx,
                      exact: Mask | None) -> Arr:
    """Each product's own rounding, for products with enclosures [tlo, thi], computed
    operands giving products within te of them, and mk = up(|product| + te)
    (elementwise; `exact`: power-of-two factors)."""
    may_sub = may_be_subnormal(tlo, thi, te)
    rho = c.rho(mk, may_sub)
    if exact is not None and np.any(exact):  # times an exact power of two: only an
        rho = np.where(exact, np.where(may_sub, ETA, 0.0), rho)  # underflow can round
    return rho


def _own_rounding(tlo: Arr, thi: Arr, te: Arr, mk: Arr, c: Ctx, exact: Mask | None) -> Arr:
    """Term errors te plus each product's own rounding (`_product_rounding`)."""
    # (both error bounds, >= +0: up steps the bits in place)
    return up_nonneg_inplace(te + _product_rounding(tlo, thi, te, mk, c, exact))


def _left_fold(tlo: Arr, thi: Arr, te: Arr, tmag: Arr, c: Ctx, products: bool,
               smag: Arr | None = None, exact: Mask | None = None) -> Bound:
    """ieee32exec's zero-seeded left fold, bounded step by step with the add rule on
    enclosures of the partial sums: E_k = E_(k-1) + t_k + u (|S_k| + E_(k-1) + t_k),
    where t_k is term k's error (propagated, plus its product's rounding). 0 + p_1 is
    exact. This is Higham's running-error bound (section 3.1) evaluated on enclosures;
    it is never larger than the position-dependent gamma bound."""
    def rows(k0: int, k1: int) -> tuple[Arr, Arr, Arr]:
        lo, hi, e = (np.moveaxis(v[..., k0:k1], -1, 0) for v in (tlo, thi, te))
        if products and c.rounds:
            mk = _up(np.moveaxis(tmag[..., k0:k1], -1, 0) + e)
            ex = None if exact is None else np.moveaxis(exact[..., k0:k1], -1, 0)
            e = _own_rounding(lo, hi, e, mk, c, ex)
        return lo, hi, e

    return _fold_rows(tlo.shape[-1], tlo.shape[:-1], rows, c,
                      None if smag is None else np.moveaxis(smag, -1, 0))


def _fold_rows(n: int, shape: tuple[int, ...], rows: Rows, c: Ctx,
               smag: Arr | None, split: bool = False) -> Bound:
    """The step-by-step bound of `_left_fold` for n terms of `shape`, taken in blocks of
    rows: `rows(k0, k1)` gives terms k0..k1-1 as (lower, upper, error with the term's own
    rounding), each [k1 - k0, *shape]; `smag` [n, *shape] bounds the real partial sums.

    With `split`, rows gives (lower, upper, own rounding, propagated error) and the fold
    bounds separately P, the propagated errors' sum, and R, the rounding of the computed
    fold of the computed products: their partial sums are within P_k of the real ones, so
    |computed partial sum k| <= |S_k| + P_k + R_(k-1) + own_k and R follows the same
    running-error recurrence with magnitudes |S_k| + P_k. The result's e is P + R and its
    `local` R, the node's own rounding on its computed arguments (for the affine pass)."""
    size = int(np.prod(shape, dtype=np.int64))
    if n == 0:
        return Bound(np.zeros(shape), np.zeros(shape), np.zeros(shape))
    block = max(1, _CHUNK // max(size, 1))
    # round-to-nearest running sums of the terms' lower and upper ends and magnitudes
    # (and, split, the propagated errors): a recursive sum of k terms errs by at most
    # gamma_(k-1) times the sum of their magnitudes (Higham 4.2), which the computed
    # magnitude sum underestimates by at most a factor 1 - gamma_(k-1); `slack`
    # (2 gamma_(n+1)) covers both
    slack = float(_up(2.0 * gamma_up(n + 1, U64)))
    width = 4 if split else 3
    acc = np.zeros((width, size))
    err: Arr | None = None  # the running error bound
    overflow = False
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        parts = rows(k0, k1)
        tlo, thi, te = parts[:3]
        run = np.empty((k1 - k0, width, size))
        run[:, 0] = tlo.reshape(k1 - k0, size)
        run[:, 1] = thi.reshape(k1 - k0, size)
        np.maximum(np.abs(run[:, 0]), np.abs(run[:, 1]), out=run[:, 2])
        if split:
            run[:, 3] = np.broadcast_to(parts[3], tlo.shape).reshape(k1 - k0, size)
        np.add(acc, run[0], out=run[0])
        if width * size < 64:  # narrow rows: NumPy's running sum down the rows (the same
            flat = run.reshape(k1 - k0, width * size)  # sequential sums) beats a call a row
            np.cumsum(flat, axis=0, out=flat)
        else:
            for k in range(1, k1 - k0):
                np.add(run[k - 1], run[k], out=run[k])
        acc = run[-1]
        # (magnitudes, sums and products of them: >= +0, so up steps the bits in place)
        off = up_nonneg_inplace(run[:, 2] * slack)  # |computed - exact| of run[:, 0], run[:, 1]
        sums = np.maximum(np.abs(run[:, 0]), np.abs(run[:, 1]))
        sums += off
        sums = up_nonneg_inplace(sums)  # |S_k| bounds
        terms = np.ascontiguousarray(np.broadcast_to(te, tlo.shape)).reshape(k1 - k0, size)
        if not c.rounds:
            errs = _running_up(terms, np.zeros(size) if err is None else err)
        else:
            mags = sums if smag is None else np.minimum(sums, smag[k0:k1].reshape(sums.shape))
            if split:  # + P_k (the computed running sum, relatively within slack of P_k)
                mags = up_nonneg_inplace(mags + up_nonneg_inplace(run[:, 3] * (1.0 + slack)))
            errs = running_errors(terms, mags, c.u, err)
        err = errs[-1]
        # an error bound that is no longer finite means an overflow as well
        overflow = overflow or bool(np.any(np.add(sums, errs) >= BELOW_OVERFLOW)) or \
            not bool(np.all(np.isfinite(err)))
    assert err is not None
    off_end = _up(acc[2] * slack)
    lo, hi = _dn(acc[0] - off_end).reshape(shape), _up(acc[1] + off_end).reshape(shape)
    if not split:
        if overflow:
            raise RoundingBoundError(f"{c.where}: a partial sum may overflow binary32")
        return Bound(lo, hi, err.reshape(shape))
    total = _up(_up(acc[3] * (1.0 + slack)) + err)
    if overflow or np.any(_up(_up(acc[2] * (1.0 + slack)) + total) >= OVERFLOW):
        raise RoundingBoundError(f"{c.where}: a partial sum may overflow binary32")
    return Bound(lo, hi, total.reshape(shape), local=err.reshape(shape))


def _running_up(xs: Arr, start: Arr) -> Arr:
    """up(...up(up(start + x_0) + x_1)... + x_k) for every k (first axis of xs): each sum
    rounded to nearest, then stepped up to the next binary64 number."""
    out = np.empty_like(xs)
    acc = start
    for k in range(xs.shape[0]):
        np.add(acc, xs[k], out=out[k])
        _step_up_inplace(out[k])
        acc = out[k]
    bad = np.isnan(out)
    if bad.any() and not np.isnan(xs).any() and not np.isnan(start).any():
        # a -0.0 or an infinity met the bit step: redo the block with np.nextafter
        acc = start
        for k in range(xs.shape[0]):
            np.add(acc, xs[k], out=out[k])
            np.nextafter(out[k], np.inf, out=out[k])
            acc = out[k]
    return out


def _step_up_inplace(x: Arr) -> None:
    """x <- np.nextafter(x, inf) for every finite x but -0.0 (which become NaN here, as
    does +inf): the bit pattern one step up in magnitude for x >= 0, down for x < 0."""
    bits = x.view(np.int64)
    away = bits >> 63
    away |= 1
    bits += away


_FRACTION = np.int64(0x000FFFFFFFFFFFFF)  # a binary64's fraction bits


def _zero_or_power_of_two(w: Arr) -> Mask:
    """Where w is 0 or +-2^k: frexp's |mantissa| == 0.5, read from the bits (a normal
    number with no fraction bits) unless w has subnormal elements, which take frexp."""
    tiny = (w != 0) & (np.abs(w) < 2.0**-1022)
    if np.any(tiny) or not np.all(np.isfinite(w)):
        mant, _ = np.frexp(w)
        return np.asarray((w == 0) | (np.abs(mant) == 0.5))
    return np.asarray((w == 0) | ((w.view(np.int64) & _FRACTION) == 0))


_POSITIVE_STEP = np.int64(1)  # next_up of a positive finite binary64: its bits plus one


def _exact_product_rounding(tlo: Arr, thi: Arr, tmag: Arr, c: Ctx, exact: Mask,
                            five_tiny: float) -> Arr:
    """`_own_rounding` of error-free products (te = five_tiny everywhere, the general
    rule's figure for them) with finite enclosures [tlo, thi] (tmag: absmax), bit for bit, in fewer
    passes: where a value is known positive and finite, next_up is its bits plus one;
    and with te = 5 * 2^-1074, down(absmin - te) < SUBNORMAL iff absmin <= SUBNORMAL
    (absmin - te rounds to absmin once absmin >= 2^-1017, whose half-spacing below is at
    least 8 * 2^-1074; below that both sides hold), i.e. iff tlo <= S and thi >= -S."""
    mk = np.add(tmag, five_tiny)  # > 0: up(mk) is its bits plus one
    mk.view(np.int64)[...] += _POSITIVE_STEP
    if np.any(mk >= OVERFLOW):
        raise RoundingBoundError(f"{c.where}: a product may overflow binary32")
    may_sub: Arr = np.asarray((tlo <= SUBNORMAL) & (thi >= -SUBNORMAL))  # (a mask)
    if np.any(may_sub):
        rho = c.rho(mk, may_sub)
    else:  # up(up(h)), h = half_ulp(mk) >= +0 finite: two steps of the bits
        rho = half_ulp(mk, c.u)
        rho.view(np.int64)[...] += 2 * _POSITIVE_STEP
    if np.any(exact):  # times an exact power of two: only an underflow can round
        rho = np.where(exact, np.where(may_sub, ETA, 0.0), rho)
    out = np.add(rho, five_tiny)  # > 0 finite: up is its bits plus one
    out.view(np.int64)[...] += _POSITIVE_STEP
    return out


def _exact_matmul(x: Bound, w: Arr, w_first: bool, c: Ctx, smag: Arr | None) -> Bound:
    """The matmul x @ w (or w @ x) of 2-D operands, w an exact binary32 matrix:
    `_matmul` computed block by block over the fold's rows, without the full [M, N, K]
    term arrays (the same figures, bit for bit), in either mode."""
    if w_first:  # W [M, K] @ X [K, N]: term k of (m, n) is W[m, k] X[k, n]
        kdim, shape = w.shape[1], (w.shape[0], x.lo.shape[1])
        wk, xk = w.T[:, :, None], (x.lo[:, None, :], x.hi[:, None, :], x.e[:, None, :])
    else:  # X [M, K] @ W [K, N]
        kdim, shape = w.shape[0], (x.lo.shape[0], w.shape[1])
        wk, xk = w[:, None, :], (x.lo.T[:, :, None], x.hi.T[:, :, None], x.e.T[:, :, None])
    pw = _zero_or_power_of_two(wk)  # an exact point: exact_pow2's test on its value alone
    px = exact_pow2(Bound(*xk))
    exact_products = binary32_values(x.lo, x.hi)  # and w: exact in binary64
    no_error = not np.any(x.e)
    # (amag * 0 = 0 and |w| * 0 = 0, each stepped up: the general rule's figure)
    five_tiny = float(_up(_up(_up(0.0) + _up(0.0)) + _up(0.0)))

    def rows(k0: int, k1: int) -> tuple[Arr, Arr, Arr, Arr]:
        wv = wk[k0:k1]
        p1, p2 = xk[0][k0:k1] * wv, xk[1][k0:k1] * wv
        tlo, thi = np.minimum(p1, p2), np.maximum(p1, p2)
        if exact_products and no_error and c.rounds and left_fold:
            exact = np.broadcast_to(pw[k0:k1] | px[k0:k1], tlo.shape)
            tmag = absmax(tlo, thi)
            return tlo, thi, _exact_product_rounding(tlo, thi, tmag, c, exact, five_tiny), tmag
        if not exact_products:
            tlo, thi = _dn(tlo), _up(thi)
        if no_error:
            te = np.full(tlo.shape, five_tiny)
        else:
            # (after the first step, sums of positive numbers: up steps the bits)
            te = up_nonneg_inplace(up_nonneg_inplace(
                _up(0.0) + _up(np.abs(wk[k0:k1]) * xk[2][k0:k1])) + _up(0.0))
        tmag = absmax(tlo, thi)
        mk = up_nonneg_inplace(tmag + te)
        if np.any(mk >= OVERFLOW):
            raise RoundingBoundError(f"{c.where}: a product may overflow binary32")
        if c.rounds and left_fold:
            exact = np.broadcast_to(pw[k0:k1] | px[k0:k1], tlo.shape)
            if split:  # (lower, upper, own rounding, propagated error)
                return tlo, thi, _product_rounding(tlo, thi, te, mk, c, exact), te
            te = _own_rounding(tlo, thi, te, mk, c, exact)
        return tlo, thi, te, tmag

    if not np.all(np.isfinite(x.lo)) or not np.all(np.isfinite(x.hi)):
        raise RoundingBoundError(f"{c.where}: a product may overflow binary32")
    left_fold = c.mode == "ieee32exec" or not c.rounds  # as in `_fold`
    # an operand with errors: the propagated errors and the fold's own rounding apart
    split = left_fold and c.rounds and not no_error
    if left_fold:
        return _fold_rows(kdim, shape, rows if split else lambda k0, k1: rows(k0, k1)[:3],
                          c, None if smag is None else np.moveaxis(smag, -1, 0), split)
    # any order: the four upward folds of `_fold`, row by row
    size = int(np.prod(shape, dtype=np.int64))
    acc = np.zeros((4, size))
    block = max(1, _CHUNK // max(size, 1))
    for k0 in range(0, kdim, block):
        k1 = min(kdim, k0 + block)
        quad = np.empty((k1 - k0, 4, size))
        for i, v in enumerate(rows(k0, k1)):
            quad[:, i] = (-v if i == 0 else np.broadcast_to(v, quad.shape[:1] + shape)
                          ).reshape(k1 - k0, size)
        acc = _running_up(quad, acc)[-1]
    nlo, hi, ep, tsum = (v.reshape(shape) for v in acc)
    return _any_order(-nlo, hi, ep, tsum, kdim, c, True, 2)


def _is_exact_matrix(a: Bound) -> bool:
    return a.lo.ndim == 2 and not np.any(a.e) and bool(np.all(a.lo == a.hi))


def _matmul(a: Bound, b: Bound, c: Ctx, smag: Arr | None = None) -> Bound:
    if a.lo.ndim == 2 and b.lo.ndim == 2:
        if _is_exact_matrix(b):
            return _exact_matmul(a, b.lo, False, c, smag)
        if _is_exact_matrix(a):
            return _exact_matmul(b, a.lo, True, c, smag)
    # terms [..., M, N, K] = a[..., M, 1, K] * b[..., 1, N, K]
    def terms(x: np.ndarray[Any, T], y: np.ndarray[Any, T]) -> tuple[np.ndarray[Any, T],
                                                                     np.ndarray[Any, T]]:
        return x[..., :, None, :], np.swapaxes(y, -1, -2)[..., None, :, :]

    alo, blo = terms(a.lo, b.lo)
    ahi, bhi = terms(a.hi, b.hi)
    ae, be = terms(a.e, b.e)
    amag, bmag = terms(a.mag, b.mag)
    tlo, thi = _mul_enclosure(alo, ahi, blo, bhi, binary32_values(a.lo, a.hi, b.lo, b.hi))
    te = _up(_up(_up(amag * be) + _up(bmag * ae)) + _up(ae * be))
    if np.any(_up(absmax(tlo, thi) + te) >= OVERFLOW):
        raise RoundingBoundError(f"{c.where}: a product may overflow binary32")
    eta_terms = 1 if c.mode == "ieee32exec" else 2  # products (and FMAs) may be subnormal
    pa, pb = terms(exact_pow2(a), exact_pow2(b))
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


def const_bound(value: Any, shape: tuple[int, ...]) -> Bound:
    """A number: real = its exact value, computed = its nearest binary32."""
    if value is PI:
        p = im.pi(IV_CTX)
        lo, hi = iv_lo(p), iv_hi(p)
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
    t = function_bound("exp", s, c)
    tot = _sum(t, (axis,), True, c)
    if log:
        return _add(s, function_bound("log", tot, c), c, sign=-1)
    # The sum holds exp(max - max) = exp(+0) = 1 exactly (correctly rounded, and exact in
    # every libm), and rounding to nearest never takes a sum of non-negative terms below
    # its largest term, in any order: real and computed sums are both >= 1.
    tot = Bound(np.maximum(tot.lo, 1.0), np.maximum(tot.hi, 1.0), tot.e)
    out = _div(t, tot, c, floor=1.0)
    # the real softmax lies in [0, 1]: keep the enclosure there
    return Bound(np.maximum(out.lo, 0.0), np.minimum(out.hi, 1.0), out.e)


F64 = get_field("float")


def _leaky(a: Bound, slope: float, c: Ctx) -> Bound:
    s = const_bound(slope, ())
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
    return _div(s, const_bound(n, ()), c)



# -- the table ------------------------------------------------------------------------------
Rule = Callable[[str, list[Bound], dict[str, Any], Ctx, "Arr | None"], Bound]
RULES: RuleTable[Rule] = RuleTable("rounding (elementwise)", field="float32")
"""Per op: its node's Bound from its arguments' (op tag, argument bounds, attributes,
context, and for a matmul optional bounds of its real partial sums)."""


def _structural(op: str, args: list[Bound], attrs: dict[str, Any], c: Ctx,
                smag: Arr | None) -> Bound:
    """An op that moves elements moves their enclosures and errors alike."""
    def run(pick: Callable[[Bound], Arr]) -> Arr:
        ts = [Tensor(pick(b), F64) for b in args]
        return np.asarray(apply(op, ts[0], *ts[1:], **attrs).data, dtype=np.float64)

    return Bound(run(lambda b: b.lo), run(lambda b: b.hi), run(lambda b: b.e))


def _neg(op: str, a: list[Bound], at: dict[str, Any], c: Ctx, s: Arr | None) -> Bound:
    return Bound(-a[0].hi, -a[0].lo, a[0].e)


def _abs(op: str, a: list[Bound], at: dict[str, Any], c: Ctx, s: Arr | None) -> Bound:
    return Bound(absmin(a[0].lo, a[0].hi), a[0].mag, a[0].e)


def _relu(op: str, a: list[Bound], at: dict[str, Any], c: Ctx, s: Arr | None) -> Bound:
    # where hi + e <= 0 the real and the computed input are both <= 0: both outputs are 0
    x = a[0]
    return Bound(np.maximum(x.lo, 0.0), np.maximum(x.hi, 0.0),
                 np.where(_up(x.hi + x.e) <= 0.0, 0.0, x.e))


def _extremum(op: str, args: list[Bound], at: dict[str, Any], c: Ctx, s: Arr | None) -> Bound:
    a, b = args
    pick = np.maximum if op == "maximum" else np.minimum
    return Bound(pick(a.lo, b.lo), pick(a.hi, b.hi), np.maximum(a.e, b.e))


def _function_rule(op: str, a: list[Bound], at: dict[str, Any], c: Ctx,
                   s: Arr | None) -> Bound:
    return function_bound(op, a[0], c)


def _silu(op: str, a: list[Bound], at: dict[str, Any], c: Ctx, s: Arr | None) -> Bound:
    return _mul(a[0], function_bound("sigmoid", a[0], c), c)


def _reduction(fn: Callable[[Bound, tuple[int, ...], bool, Ctx], Bound]) -> Rule:
    def rule(op: str, a: list[Bound], at: dict[str, Any], c: Ctx, s: Arr | None) -> Bound:
        return fn(a[0], tuple(at["axes"]), bool(at["keepdims"]), c)

    return rule


def _softmax_rule(op: str, a: list[Bound], at: dict[str, Any], c: Ctx,
                  s: Arr | None) -> Bound:
    return _softmax(a[0], int(at["axis"]), c, op == "log_softmax")


RULES.rule("transpose", "reshape", "broadcast_to", "slice", "concat", "unslice")(_structural)
RULES.add("add", lambda op, a, at, c, s: _add(a[0], a[1], c, 1))
RULES.add("sub", lambda op, a, at, c, s: _add(a[0], a[1], c, -1))
RULES.add("mul", lambda op, a, at, c, s: _mul(a[0], a[1], c))
RULES.add("square", lambda op, a, at, c, s: _mul(a[0], a[0], c))
RULES.add("div", lambda op, a, at, c, s: _div(a[0], a[1], c))
RULES.add("neg", _neg)
RULES.add("abs", _abs)
RULES.add("relu", _relu)
RULES.rule("maximum", "minimum")(_extremum)
RULES.add("leaky_relu", lambda op, a, at, c, s: _leaky(a[0], float(at["negative_slope"]), c))
RULES.add("sqrt", lambda op, a, at, c, s: _sqrt(a[0], c))
RULES.rule(*SLOPES)(_function_rule)
RULES.add("silu", _silu)
RULES.add("matmul", lambda op, a, at, c, s: _matmul(a[0], a[1], c, s))
RULES.add("sum", _reduction(_sum))
RULES.add("mean", _reduction(_mean))
RULES.add("max", _reduction(lambda a, axes, keepdims, c: _max(a, axes, keepdims)))
RULES.rule("softmax", "log_softmax")(_softmax_rule)
RULES.refuse("piecewise constant: an error in its input may flip its output, so its error "
             "has no bound in terms of its input's", "step", "greater", "argmax_mask")
RULES.refuse("selects by a 0/1 condition that an error in the condition may flip",
             "where")
RULES.refuse("takes integer labels, which no rounding-error model covers", "one_hot")


def bound_rule(op: str, args: list[Bound], attrs: dict[str, Any], c: Ctx,
               smag: Arr | None = None) -> Bound:
    """The Bound of a node of op `op` from its arguments' (see RULES); an op without a
    rule raises UnsupportedOperation naming the node."""
    return RULES.get(op, c.where)(op, args, attrs, c, smag)


def is_structural(op: str) -> bool:
    """Whether op `op` only moves elements (no rounding of its own)."""
    return OPS[op].kind == "structural"
