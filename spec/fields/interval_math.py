"""Rigorous interval enclosures of real functions for the `interval` field.

Every public function takes an mpmath interval context `ctx` (an `MPIntervalContext`
with its own `prec`, so fields of different precisions coexist) and intervals of that
context, and returns an interval of the same context, with endpoints rounded outward to
`ctx.prec` bits, that CONTAINS the exact image f([a, b]) = {f(t) : a <= t <= b}.
Soundness comes first; for a point input the width is a few ulps at `ctx.prec`.

Trusted base. The only mpmath operations relied on for bounds are the correctly
rounded ones: +, -, *, / and sqrt of raw mpf values with directed rounding (`libmp`
documents mpf arithmetic and `mpf_sqrt` as correctly rounded), hence mpmath's interval
+, -, *, / and sqrt. mpmath's interval exp/log/sin/cos and constants (`ctx.exp`, `ctx.ln`,
`ctx.pi`, ...) are NOT used: they round a floating approximation computed with a few
guard bits in the requested direction, which is not a proof; `ctx.exp` misses the true
value for about 1 in 10^4 exact point inputs at 53 bits (for example exp(3.854892469486547)).
Every transcendental value here is a truncated series evaluated in interval arithmetic
plus an interval [-r, r] (or [0, r]) bounding the truncation error:

- constants: ln 2 = 2 atanh(1/3) (positive series, geometric tail bound) and
  pi = 16 atan(1/5) - 4 atan(1/239) (Machin; alternating series with decreasing terms,
  remainder below the first omitted term);
- exp: exp(x) = 2^n exp(r)^(2^k) with r = x - n ln 2 in interval arithmetic, exp(r/2^k)
  by Taylor with the tail bounded by a geometric series; expm1 near 0 by the same series
  without its constant term (no cancellation), else exp(x) - 1;
- log: log(x) = e ln 2 + 2 atanh(z), z = t / (2 + t), t = x 2^-e - 1 (exact), atanh by
  its series with tail |z|^(2N+1) / ((2N+1)(1 - z^2)); log1p(t) uses the same series
  directly for small t, so it keeps full relative accuracy near 0;
- sin, cos: reduction by q pi/2 with a rigorous pi at a precision raised by the size of
  the argument (and again while cancellation remains), Taylor with the Lagrange
  remainder |r|^(n+1) / (n+1)!; over a wide interval, the hull of the endpoint values and
  of +-1 wherever a multiple of pi (cos) or pi/2 + k pi (sin) may lie inside, the
  candidates found with a rigorous enclosure of a/pi and b/pi;
- sqrt: mpmath's interval sqrt (correctly rounded endpoints), so it is the tightest;
- tanh, sigmoid, softplus: increasing, so [lower f(a), upper f(b)] with the endpoint
  enclosures tanh(t) = 1 / (1 + 2 / expm1(2t)) (t > 0, odd), sigmoid(t) = 1 / (1 + e^-t),
  softplus(t) = log1p(e^t) (t <= 0), t + log1p(e^-t) (t > 0), all in interval arithmetic;
- erf, erfc: for t >= 0 either the positive series
  erf(t) = 2/sqrt(pi) e^(-t^2) sum_n 2^n t^(2n+1) / (1*3*...*(2n+1))  (Abramowitz &
  Stegun 7.1.6), whose term ratios 2t^2/(2n+3) decrease, so once a ratio is <= 1/2 the
  tail is at most the last term; or, for large t, the asymptotic expansion
  (A&S 7.1.23) with the true value between two consecutive partial sums: repeated
  integration by parts of I_k(x) = int_x^inf e^(-u^2) u^(-2k) du > 0 gives
  I_k = e^(-x^2) / (2 x^(2k+1)) - (2k+1)/2 I_(k+1), so the remainders alternate in sign.
  erf is odd and increasing;
- gelu(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (for x < 0 computed as
  erfc(-x / sqrt 2) / 2, keeping relative accuracy in the left tail). g = gelu has
  g'(x) = Phi(x) + x phi(x) and g''(x) = phi(x) (2 - x^2): g' < 0 on (-inf, -sqrt 2]
  (it decreases there from its limit 0), g' increases on [-sqrt 2, sqrt 2] and g' > 1
  on [sqrt 2, inf), so g' has a single root x0 ~ -0.7517916 and g decreases before it,
  increases after it. A bracket [l0, r0] of x0 is certified by the signs of g'(l0) < 0
  and g'(r0) > 0 evaluated in interval arithmetic; an interval that may contain x0 gets
  the lower end of the interval evaluation of x Phi(x) over [l0, r0] (a lower bound of
  the global minimum) and the larger of the two endpoint upper bounds.

Infinite endpoints take the limits (exp(-inf) = 0, tanh(+inf) = 1, gelu(-inf) = 0, ...).

Domain policy. log, log1p and sqrt are real only on part of the line:
- an interval entirely outside the domain (log or sqrt of [a, b] with b < 0, log1p with
  b < -1) raises ValueError naming the function and the interval;
- an interval that partly overlaps is cut to the part inside the domain and enclosed
  there, with the boundary values log(0) = log1p(-1) = -inf and sqrt(0) = 0; so
  log([-1, 2]) = [-inf, log 2] and log([-1, 0]) = [-inf, -inf], as IEEE log gives -inf
  at 0.
Intervals with a NaN endpoint raise DomainError (a ValueError); an interval of another
context raises FieldMismatchError, and anything that is not an interval raises TypeError.
"""

from __future__ import annotations

import fractions
import math
from collections.abc import Callable
from typing import Any

from mpmath import libmp
from mpmath.ctx_iv import ivmpf as _ivmpf_base
from mpmath.libmp import libmpi

from ..errors import DomainError, FieldMismatchError

__all__ = [
    "abs",
    "contains",
    "cos",
    "erf",
    "exp",
    "expm1",
    "from_float",
    "from_fraction",
    "gelu",
    "greater",
    "hull",
    "log",
    "log1p",
    "maximum",
    "minimum",
    "pi",
    "sigmoid",
    "sin",
    "softplus",
    "sqrt",
    "step",
    "tanh",
]

# A raw interval: a pair (lo, hi) of raw mpf tuples with lo <= hi.
_Raw = tuple[Any, Any]

_F = libmp.round_floor
_C = libmp.round_ceiling
_N = libmp.round_nearest

_ZERO = libmp.fzero
_ONE = libmp.fone
_HALF = libmp.fhalf
_INF = libmp.finf
_NINF = libmp.fninf
_NAN = libmp.fnan
_TWO = libmp.from_int(2)

_I0: _Raw = (_ZERO, _ZERO)
_I1: _Raw = (_ONE, _ONE)
_I2: _Raw = (_TWO, _TWO)
_IHALF: _Raw = (_HALF, _HALF)
_UNIT: _Raw = (libmp.fnone, _ONE)

# Extra bits carried by the working precision over ctx.prec.
_GUARD = 24
_LN2_FLOAT = math.log(2.0)

_add = libmp.mpf_add
_sub = libmp.mpf_sub
_mul = libmp.mpf_mul
_div = libmp.mpf_div
_shift = libmp.mpf_shift
_neg = libmp.mpf_neg
_lt = libmp.mpf_lt
_le = libmp.mpf_le
_gt = libmp.mpf_gt
_ge = libmp.mpf_ge
_sign = libmp.mpf_sign
_iadd: Callable[..., _Raw] = libmpi.mpi_add
_isub: Callable[..., _Raw] = libmpi.mpi_sub
_imul: Callable[..., _Raw] = libmpi.mpi_mul
_idiv: Callable[..., _Raw] = libmpi.mpi_div
_isq: Callable[..., _Raw] = libmpi.mpi_square
_ineg: Callable[..., _Raw] = libmpi.mpi_neg
_isqrt: Callable[..., _Raw] = libmpi.mpi_sqrt


# ----------------------------------------------------------------------------------------
# Raw helpers


def _pt(v: Any) -> _Raw:
    return (v, v)


def _int(n: int) -> _Raw:
    v = libmp.from_int(n)
    return (v, v)


def _finite(v: Any) -> bool:
    return v not in (_INF, _NINF, _NAN)


def _mag(v: Any) -> int:
    """Exponent e with |v| < 2^e (for nonzero finite v); very negative for zero."""
    _sign_bit, man, exp, bc = v
    if not man:
        return -(1 << 40)
    return int(exp + bc)


def _fmin(a: Any, b: Any) -> Any:
    return a if _le(a, b) else b


def _fmax(a: Any, b: Any) -> Any:
    return a if _ge(a, b) else b


def _absmax(x: _Raw) -> Any:
    """max |t| over x, exactly."""
    return _fmax(libmp.mpf_abs(x[0]), libmp.mpf_abs(x[1]))


def _absmin(x: _Raw) -> Any:
    """min |t| over x, exactly."""
    lo, hi = x
    if _sign(lo) <= 0 <= _sign(hi):
        return _ZERO
    return _fmin(libmp.mpf_abs(lo), libmp.mpf_abs(hi))


def _ishift(x: _Raw, n: int) -> _Raw:
    return (_shift(x[0], n), _shift(x[1], n))


def _widen(x: _Raw, r: Any, p: int) -> _Raw:
    """x + [-r, r] for r >= 0."""
    return (_sub(x[0], r, p, _F), _add(x[1], r, p, _C))


def _raw_hull(x: _Raw, y: _Raw) -> _Raw:
    return (_fmin(x[0], y[0]), _fmax(x[1], y[1]))


def _clamp(x: _Raw, lo: Any, hi: Any) -> _Raw:
    """x intersected with [lo, hi], where [lo, hi] is known to hold the true value."""
    a = _fmax(x[0], lo)
    b = _fmin(x[1], hi)
    if _gt(a, b):  # cannot happen for sound inputs; stay sound regardless
        return (lo, hi)
    return (a, b)


def _round_out(x: _Raw, prec: int) -> _Raw:
    return (libmp.mpf_pos(x[0], prec, _F), libmp.mpf_pos(x[1], prec, _C))


def _bucket(p: int) -> int:
    return (p + 63) // 64 * 64


def _check(ctx: Any, x: Any, name: str) -> _Raw:
    """The raw endpoints of x, after checking that x is an interval of ctx."""
    if isinstance(x, (ctx.mpf, ctx._constant)):
        raw: _Raw = x._mpi_
    elif isinstance(x, _ivmpf_base):
        raise FieldMismatchError(
            f"{name}: interval {x} belongs to another interval context "
            f"(prec {x.ctx.prec}), not this one (prec {ctx.prec})"
        )
    else:
        raise TypeError(f"{name}: expected an interval of the context, got {type(x).__name__}")
    if _NAN in raw:
        raise DomainError(f"{name}: interval {x} has a NaN endpoint")
    return raw


def _out(ctx: Any, x: _Raw) -> Any:
    return ctx.make_mpf(_round_out(x, ctx.prec))


def _wp(ctx: Any) -> int:
    return int(ctx.prec) + _GUARD


# ----------------------------------------------------------------------------------------
# Constants, cached per 64-bit precision bucket


_LN2_CACHE: dict[int, _Raw] = {}
_PI_CACHE: dict[int, _Raw] = {}


def _compute_ln2(p: int) -> _Raw:
    # ln 2 = 2 atanh(1/3) = sum_{j>=0} 2 / ((2j+1) 3^(2j+1)).
    total = _I0
    j = 0
    pow3 = 3
    limit = 1 << (p + 8)
    while pow3 <= limit:
        total = _iadd(total, _idiv(_I2, _int((2 * j + 1) * pow3), p), p)
        j += 1
        pow3 *= 9
    # Tail sum_{i>=j} 2/((2i+1) 3^(2i+1)) <= 2/((2j+1) 3^(2j+1)) * 1/(1 - 1/9).
    tail = libmp.from_rational(9, 4 * (2 * j + 1) * pow3, p, _C)
    return (total[0], _add(total[1], tail, p, _C))


def _atan_inv(m: int, p: int) -> _Raw:
    # atan(1/m) = sum_{j>=0} (-1)^j / ((2j+1) m^(2j+1)); terms decrease, signs alternate.
    total = _I0
    j = 0
    powm = m
    limit = 1 << (p + 8)
    while powm <= limit:
        term = _idiv(_I1, _int((2 * j + 1) * powm), p)
        total = _iadd(total, term, p) if j % 2 == 0 else _isub(total, term, p)
        j += 1
        powm *= m * m
    rem = libmp.from_rational(1, (2 * j + 1) * powm, p, _C)
    return _widen(total, rem, p)


def _compute_pi(p: int) -> _Raw:
    # Machin (1706): pi = 16 atan(1/5) - 4 atan(1/239).
    return _isub(_ishift(_atan_inv(5, p), 4), _ishift(_atan_inv(239, p), 2), p)


def _ln2(p: int) -> _Raw:
    b = _bucket(p)
    c = _LN2_CACHE.get(b)
    if c is None:
        c = _compute_ln2(b + 8)
        _LN2_CACHE[b] = c
    return c


def _pi(p: int) -> _Raw:
    b = _bucket(p)
    c = _PI_CACHE.get(b)
    if c is None:
        c = _compute_pi(b + 8)
        _PI_CACHE[b] = c
    return c


# ----------------------------------------------------------------------------------------
# Cores: interval extensions on narrow, finite raw intervals at working precision wp.
# Each returns a raw interval containing f(t) for every t in the input interval.


def _exp_taylor(s: _Raw, p: int, minus_one: bool) -> _Raw:
    """exp(s) (or exp(s) - 1) for |s| <= 1/2 by Taylor with a geometric tail bound."""
    b = _absmax(s)
    if b == _ZERO:
        return _I0 if minus_one else _I1
    total = _I0 if minus_one else _I1
    term = _I1
    bound = _ONE  # upper bound of b^j / j!
    tol = _shift(b if minus_one else _ONE, -(p + 2))
    j = 0
    while True:
        j += 1
        term = _idiv(_imul(term, s, p), _int(j), p)
        total = _iadd(total, term, p)
        bound = _div(_mul(bound, b, p, _C), libmp.from_int(j), p, _C)
        if _le(bound, tol) and j >= 2:
            break
    # sum_{i>j} b^i/i! <= b^(j+1)/(j+1)! * 1/(1 - b/(j+2)), and b/(j+2) <= 1/8 here.
    nxt = _div(_mul(bound, b, p, _C), libmp.from_int(j + 1), p, _C)
    q = _div(b, libmp.from_int(j + 2), p, _C)
    tail = _div(nxt, _sub(_ONE, q, p, _F), p, _C)
    return _widen(total, tail, p)


def _exp_core(x: _Raw, wp: int) -> _Raw:
    lo, hi = x
    if lo == _ZERO and hi == _ZERO:
        return _I1
    m = max(_mag(lo), _mag(hi))
    if m > 61:
        # Some |t| >= 2^61: by monotonicity, e^t >= e^(2^60) for t >= 2^60 and
        # e^t <= e^(-2^60) for t <= -2^60 (the rest of the line as usual).
        cap = _shift(_ONE, 60)
        if _ge(lo, cap):
            a = _exp_core(_pt(cap), wp)[0]
        elif _le(lo, _neg(cap)):
            a = _ZERO
        else:
            a = _exp_core(_pt(lo), wp)[0]
        if _ge(hi, cap):
            b = _INF
        elif _le(hi, _neg(cap)):
            b = _exp_core(_pt(_neg(cap)), wp)[1]
        else:
            b = _exp_core(_pt(hi), wp)[1]
        return (a, b)
    mid = (libmp.to_float(lo) + libmp.to_float(hi)) / 2.0
    n = int(round(mid / _LN2_FLOAT))  # any integer is sound; this one makes r small
    p2 = wp + n.bit_length() + 12
    r = _isub(x, _imul(_int(n), _ln2(p2), p2), p2)
    k = max(4, math.isqrt(wp) // 2 + 3)
    p3 = wp + k + 12
    e = _exp_taylor(_ishift(r, -k), p3, minus_one=False)
    for _ in range(k):
        e = _isq(e, p3)
    return _ishift(e, n)


def _expm1_core(x: _Raw, wp: int) -> _Raw:
    if x[0] == _ZERO and x[1] == _ZERO:
        return _I0
    if _le(_absmax(x), _HALF):
        return _exp_taylor(x, wp + 8, minus_one=True)
    p = wp + 4
    return _isub(_exp_core(x, p), _I1, p)


def _log1p_small(t: _Raw, wp: int) -> _Raw:
    """log(1 + t) = 2 atanh(t / (2 + t)) for t within about [-0.3, 0.45]."""
    if t[0] == _ZERO and t[1] == _ZERO:
        return _I0
    p = wp + 10
    z = _idiv(t, _iadd(_I2, t, p), p)
    zmax = _absmax(z)
    z2max = _mul(zmax, zmax, p, _C)
    w = _isq(z, p)
    total = z
    term = z
    bound = zmax  # upper bound of |z|^(2j+1)
    tol = _shift(zmax, -(p + 2))
    j = 0
    while True:
        j += 1
        term = _imul(term, w, p)
        total = _iadd(total, _idiv(term, _int(2 * j + 1), p), p)
        bound = _mul(bound, z2max, p, _C)
        if _le(_div(bound, libmp.from_int(2 * j + 1), p, _C), tol):
            break
    # sum_{i>j} |z|^(2i+1)/(2i+1) <= |z|^(2j+3)/(2j+3) / (1 - z^2).
    tail = _div(_mul(bound, z2max, p, _C), libmp.from_int(2 * j + 3), p, _C)
    tail = _div(tail, _sub(_ONE, z2max, p, _F), p, _C)
    return _ishift(_widen(total, tail, p), 1)


_SQRT_HALF = libmp.from_float(0.7071067811865476)


def _log_core(x: _Raw, wp: int) -> _Raw:
    """log over x, 0 < x[0]."""
    lo = x[0]
    e = _mag(lo)  # lo / 2^e in [1/2, 1)
    if _lt(_shift(lo, -e), _SQRT_HALF):
        e -= 1
    t = _isub(_ishift(x, -e), _I1, 0)  # exact
    r = _log1p_small(t, wp + 4)
    if e != 0:
        p2 = wp + e.bit_length() + 12
        r = _iadd(_imul(_int(e), _ln2(p2), p2), r, p2)
    return r


_LOG1P_LO = libmp.from_float(-0.25)
_LOG1P_HI = libmp.from_float(0.375)


def _log1p_core(x: _Raw, wp: int) -> _Raw:
    """log(1 + t) over x, -1 < x[0]."""
    if _ge(x[0], _LOG1P_LO) and _le(x[1], _LOG1P_HI):
        return _log1p_small(x, wp)
    return _log_core(_iadd(x, _I1, 0), wp)  # exact sum


def _cos_sin_core(x: _Raw, wp: int) -> tuple[_Raw, _Raw]:
    lo, hi = x
    m = max(_mag(lo), _mag(hi))
    if m > 4096:
        return _UNIT, _UNIT
    if m <= -1:  # |t| < 1/2: no reduction
        q = 0
        r = x
    else:
        # q = nearest integer to mid / (pi/2); mpmath's float pi only chooses q.
        pa = m + 64
        mid = _shift(_add(lo, hi, pa, _N), -1)
        ratio = _div(mid, _shift(libmp.mpf_pi(pa), -1), pa, _N)
        q = libmp.to_int(libmp.mpf_floor(_add(ratio, _HALF, pa, _N)))
        wx = _sub(hi, lo, 64, _F)
        extra = 0
        for _ in range(7):
            p2 = wp + max(m, 0) + 16 + extra
            r = _isub(x, _imul(_int(q), _ishift(_pi(p2), -1), p2), p2)
            added = _sub(_sub(r[1], r[0], 64, _C), wx, 64, _C)
            ref = _fmax(_absmin(r), wx)
            if ref != _ZERO and _le(added, _shift(ref, -(wp + 4))):
                break
            extra = 2 * extra + 32  # cancellation: t is close to q pi/2
    b = _absmax(r)
    p3 = wp + 10
    tol = _shift(_fmin(_ONE, b), -(p3 + 2))
    s = _I0
    c = _I1
    term = _I1
    bound = _ONE  # upper bound of b^n / n!
    n = 0
    while True:
        n += 1
        term = _idiv(_imul(term, r, p3), _int(n), p3)
        bound = _div(_mul(bound, b, p3, _C), libmp.from_int(n), p3, _C)
        phase = n % 4
        if phase == 1:
            s = _iadd(s, term, p3)
        elif phase == 2:
            c = _isub(c, term, p3)
        elif phase == 3:
            s = _isub(s, term, p3)
        else:
            c = _iadd(c, term, p3)
        if n >= 2 and (_le(bound, tol) or b == _ZERO):
            break
    # Lagrange: every derivative of sin and cos is bounded by 1.
    rem = _div(_mul(bound, b, p3, _C), libmp.from_int(n + 1), p3, _C)
    s = _widen(s, rem, p3)
    c = _widen(c, rem, p3)
    qm = q % 4
    if qm == 0:
        cx, sx = c, s
    elif qm == 1:
        cx, sx = _ineg(s), c
    elif qm == 2:
        cx, sx = _ineg(c), _ineg(s)
    else:
        cx, sx = s, _ineg(c)
    return _clamp(cx, *_UNIT), _clamp(sx, *_UNIT)


def _sqrt_pi(p: int) -> _Raw:
    return _isqrt(_pi(p), p)


def _erf_series(t: _Raw, wp: int) -> _Raw:
    """erf over t >= 0 by A&S 7.1.6 (positive terms)."""
    if t[1] == _ZERO:
        return _I0
    p = wp + 14
    t2 = _isq(t, p)
    w = _ishift(t2, 1)  # 2 t^2
    wmax = w[1]
    total = t
    term = t
    bound = t[1]  # upper bound of the current term
    tol = _shift(t[1], -(p + 2))
    n = 0
    while True:
        n += 1
        term = _idiv(_imul(term, w, p), _int(2 * n + 1), p)
        total = _iadd(total, term, p)
        bound = _div(_mul(bound, wmax, p, _C), libmp.from_int(2 * n + 1), p, _C)
        ratio = _div(wmax, libmp.from_int(2 * n + 3), p, _C)
        if _le(ratio, _HALF) and _le(bound, tol):
            break
    # Later ratios are <= ratio <= 1/2, so the tail is at most bound.
    total = (total[0], _add(total[1], bound, p, _C))
    scale = _idiv(_exp_core(_ineg(t2), p), _sqrt_pi(p), p)
    res = _imul(_ishift(scale, 1), total, p)
    return _clamp(res, _ZERO, _ONE)


def _erfc_asym(t: _Raw, wp: int) -> _Raw:
    """erfc over t > 0 between two consecutive partial sums of A&S 7.1.23."""
    p = wp + 12
    t2 = _isq(t, p)
    v = _idiv(_I1, _ishift(t2, 1), p)  # 1/(2 t^2)
    vmax = v[1]
    partial = _I1  # P_M = sum_{m<M} c_m
    c = _ineg(v)  # c_M, with c_m = (-1)^m (2m-1)!! v^m
    cb = vmax  # upper bound of |c_M|
    tol = libmp.mpf_shift(_ONE, -(p + 2))
    mm = 1
    while _gt(cb, tol):
        nxt = _mul(cb, _mul(libmp.from_int(2 * mm + 1), vmax, p, _C), p, _C)
        if _ge(nxt, cb):  # terms stopped decreasing
            break
        partial = _iadd(partial, c, p)
        c = _ineg(_imul(c, _imul(_int(2 * mm + 1), v, p), p))
        cb = nxt
        mm += 1
    # erfc(x) = 2/sqrt(pi) I_0(x), I_0 between (e^-x^2 / 2x) P_M and (e^-x^2 / 2x) P_(M+1).
    h = _raw_hull(partial, _iadd(partial, c, p))
    scale = _idiv(_exp_core(_ineg(t2), p), _imul(t, _sqrt_pi(p), p), p)
    return _clamp(_imul(scale, h, p), _ZERO, _ONE)


def _erf_pos(t: _Raw, wp: int) -> _Raw:
    """erf over t >= 0."""
    if t[0] != t[1]:
        # erf is increasing; evaluating the series over an interval would lose the
        # correlation between its growing sum and the decaying factor e^(-t^2).
        return (_erf_pos(_pt(t[0]), wp)[0], _erf_pos(_pt(t[1]), wp)[1])
    tl = libmp.to_float(t[0])
    if tl * tl >= (wp + 8) * _LN2_FLOAT / 2 + 4:
        return _clamp(_isub(_I1, _erfc_asym(t, wp), wp + 8), _ZERO, _ONE)
    return _erf_series(t, wp)


def _erfc_pos(t: _Raw, wp: int) -> _Raw:
    """erfc over t >= 0, with relative accuracy."""
    if t[0] != t[1]:  # erfc is decreasing
        return (_erfc_pos(_pt(t[1]), wp)[0], _erfc_pos(_pt(t[0]), wp)[1])
    tl = libmp.to_float(t[0])
    if tl * tl >= (wp + 8) * _LN2_FLOAT + 4:
        return _erfc_asym(t, wp)
    th = libmp.to_float(t[1])
    p = wp + int(1.45 * th * th) + 12  # 1 - erf cancels about t^2 / ln 2 bits
    return _clamp(_isub(_I1, _erf_series(t, p), p), _ZERO, _ONE)


def _phi_cdf(x: _Raw, wp: int) -> _Raw:
    """The standard normal CDF over narrow finite x."""
    p = wp + 8
    u = _idiv(x, _isqrt(_I2, p), p)
    if _sign(x[0]) >= 0:
        res = _ishift(_iadd(_I1, _erf_pos(u, wp), p), -1)
    elif _sign(x[1]) <= 0:
        res = _ishift(_erfc_pos(_ineg(u), wp), -1)
    else:  # straddles 0: Phi is increasing
        res = (_phi_cdf(_pt(x[0]), wp)[0], _phi_cdf(_pt(x[1]), wp)[1])
    return _clamp(res, _ZERO, _ONE)


def _gelu_core(x: _Raw, wp: int) -> _Raw:
    return _imul(x, _phi_cdf(x, wp), wp + 8)


def _gelu_slope(v: Any, wp: int) -> _Raw:
    """g'(v) = Phi(v) + v phi(v) at the point v."""
    p = wp + 8
    e = _exp_core(_ineg(_ishift(_isq(_pt(v), p), -1)), p)
    dens = _idiv(e, _isqrt(_ishift(_pi(p), 1), p), p)
    return _iadd(_phi_cdf(_pt(v), wp), _imul(_pt(v), dens, p), p)


_GELU_CACHE: dict[int, tuple[Any, Any, Any]] = {}
_GELU_X0_SEED = -0.7517915246935645


def _gelu_min(wp: int) -> tuple[Any, Any, Any]:
    """(l0, r0, m): l0 < x0 < r0 certified, and m <= gelu(x0) = min gelu."""
    b = _bucket(wp)
    hit = _GELU_CACHE.get(b)
    if hit is not None:
        return hit
    # Newton on g' from the float seed, using midpoints only (the bracket check is rigorous).
    x = libmp.from_float(_GELU_X0_SEED)
    for _ in range(max(2, (b // 53).bit_length() + 2)):
        d = libmpi.mpi_mid(_gelu_slope(x, b), b)
        e = _exp_core(_ineg(_ishift(_isq(_pt(x), b), -1)), b)
        dens = libmpi.mpi_mid(_idiv(e, _isqrt(_ishift(_pi(b), 1), b), b), b)
        d2 = _mul(dens, _sub(_TWO, _mul(x, x, b), b), b)  # g'' = phi (2 - x^2)
        x = _sub(x, _div(d, d2, b, _N), b, _N)
    result: tuple[Any, Any, Any] | None = None
    for step_exp in range(-(b - 12), 0, 8):
        delta = _shift(_ONE, step_exp)
        l0 = _sub(x, delta, b + 16, _F)
        r0 = _add(x, delta, b + 16, _C)
        if _lt(_gelu_slope(l0, b)[1], _ZERO) and _gt(_gelu_slope(r0, b)[0], _ZERO):
            result = (l0, r0, _gelu_core((l0, r0), b)[0])
            break
    if result is None:
        # Unreached in practice. Still sound: g' < 0 at -3/2 (< -sqrt 2), g'(0) = 1/2 > 0,
        # and min g = g(x0) >= g(-sqrt 2) >= -sqrt(2)/2 > -3/4.
        result = (libmp.from_float(-1.5), _ZERO, libmp.from_float(-0.75))
    _GELU_CACHE[b] = result
    return result


# ----------------------------------------------------------------------------------------
# Endpoint enclosures (handle infinities), and monotone assembly


def _exp_pt(v: Any, wp: int) -> _Raw:
    if v == _NINF:
        return _I0
    if v == _INF:
        return (_INF, _INF)
    return _clamp(_exp_core(_pt(v), wp), _ZERO, _INF)


def _expm1_pt(v: Any, wp: int) -> _Raw:
    if v == _NINF:
        return (libmp.fnone, libmp.fnone)
    if v == _INF:
        return (_INF, _INF)
    return _clamp(_expm1_core(_pt(v), wp), libmp.fnone, _INF)


def _log_pt(v: Any, wp: int) -> _Raw:
    if v == _ZERO:
        return (_NINF, _NINF)
    if v == _INF:
        return (_INF, _INF)
    return _log_core(_pt(v), wp)


def _log1p_pt(v: Any, wp: int) -> _Raw:
    if v == libmp.fnone:
        return (_NINF, _NINF)
    if v == _INF:
        return (_INF, _INF)
    return _log1p_core(_pt(v), wp)


def _tanh_pt(v: Any, wp: int) -> _Raw:
    if v == _ZERO:
        return _I0
    if _sign(v) < 0:
        return _ineg(_tanh_pt(_neg(v), wp))
    if v == _INF:
        return _I1
    e = _expm1_core(_pt(_shift(v, 1)), wp)
    if _sign(e[0]) <= 0:  # unreached for v > 0; tanh(v) lies in (0, 1) anyway
        return (_ZERO, _ONE)
    p = wp + 4
    res = _idiv(_I1, _iadd(_I1, _idiv(_I2, e, p), p), p)
    return _clamp(res, _ZERO, _ONE)


def _sigmoid_pt(v: Any, wp: int) -> _Raw:
    if v == _NINF:
        return _I0
    if v == _INF:
        return _I1
    p = wp + 4
    res = _idiv(_I1, _iadd(_I1, _exp_core(_pt(_neg(v)), p), p), p)
    return _clamp(res, _ZERO, _ONE)


def _softplus_pt(v: Any, wp: int) -> _Raw:
    if v == _NINF:
        return _I0
    if v == _INF:
        return (_INF, _INF)
    p = wp + 4
    if _sign(v) <= 0:
        res = _log1p_core(_exp_core(_pt(v), p), p)
    else:
        res = _iadd(_pt(v), _log1p_core(_exp_core(_pt(_neg(v)), p), p), p)
    return _clamp(res, _ZERO, _INF)


def _erf_pt(v: Any, wp: int) -> _Raw:
    if v == _ZERO:
        return _I0
    if v == _INF:
        return _I1
    if v == _NINF:
        return (libmp.fnone, libmp.fnone)
    if _sign(v) < 0:
        return _ineg(_erf_pos(_pt(_neg(v)), wp))
    return _erf_pos(_pt(v), wp)


def _gelu_pt(v: Any, wp: int) -> _Raw:
    if v == _NINF:
        return _I0
    if v == _INF:
        return (_INF, _INF)
    if v == _ZERO:
        return _I0
    return _gelu_core(_pt(v), wp)


def _increasing(ctx: Any, x: Any, name: str, fpt: Any) -> Any:
    lo, hi = _check(ctx, x, name)
    wp = _wp(ctx)
    if lo == hi:
        return _out(ctx, fpt(lo, wp))
    return _out(ctx, (fpt(lo, wp)[0], fpt(hi, wp)[1]))


# ----------------------------------------------------------------------------------------
# Public functions


def exp(ctx: Any, x: Any) -> Any:
    """An interval containing exp(t) for every t in x."""
    return _increasing(ctx, x, "exp", _exp_pt)


def expm1(ctx: Any, x: Any) -> Any:
    """An interval containing exp(t) - 1 for every t in x (accurate near 0)."""
    return _increasing(ctx, x, "expm1", _expm1_pt)


def log(ctx: Any, x: Any) -> Any:
    """An interval containing log(t) for every t > 0 in x (log 0 = -inf).

    Raises ValueError when x lies entirely below 0.
    """
    lo, hi = _check(ctx, x, "log")
    if _sign(hi) < 0:
        raise DomainError(f"log: interval {x} lies entirely outside the domain [0, inf)")
    wp = _wp(ctx)
    if _sign(lo) < 0:
        lo = _ZERO
    if lo == hi:
        return _out(ctx, _log_pt(lo, wp))
    return _out(ctx, (_log_pt(lo, wp)[0], _log_pt(hi, wp)[1]))


def log1p(ctx: Any, x: Any) -> Any:
    """An interval containing log(1 + t) for every t > -1 in x (log1p(-1) = -inf).

    Raises ValueError when x lies entirely below -1.
    """
    lo, hi = _check(ctx, x, "log1p")
    if _lt(hi, libmp.fnone):
        raise DomainError(f"log1p: interval {x} lies entirely outside the domain [-1, inf)")
    wp = _wp(ctx)
    if _lt(lo, libmp.fnone):
        lo = libmp.fnone
    if lo == hi:
        return _out(ctx, _log1p_pt(lo, wp))
    return _out(ctx, (_log1p_pt(lo, wp)[0], _log1p_pt(hi, wp)[1]))


def sqrt(ctx: Any, x: Any) -> Any:
    """An interval containing sqrt(t) for every t >= 0 in x.

    Raises ValueError when x lies entirely below 0.
    """
    lo, hi = _check(ctx, x, "sqrt")
    if _sign(hi) < 0:
        raise DomainError(f"sqrt: interval {x} lies entirely outside the domain [0, inf)")
    if _sign(lo) < 0:
        lo = _ZERO
    return ctx.make_mpf(_isqrt((lo, hi), ctx.prec))


def _sin_or_cos(ctx: Any, x: Any, name: str) -> Any:
    lo, hi = _check(ctx, x, name)
    want_sin = name == "sin"
    if not (_finite(lo) and _finite(hi)):
        return _out(ctx, _UNIT)
    if _ge(_sub(hi, lo, 32, _C), libmp.from_int(7)):  # longer than 2 pi
        return _out(ctx, _UNIT)
    m = max(_mag(lo), _mag(hi), 0)
    if m > 4096:
        return _out(ctx, _UNIT)
    wp = _wp(ctx)
    pick = 1 if want_sin else 0
    res = _cos_sin_core(_pt(lo), wp)[pick]
    if lo != hi:
        res = _raw_hull(res, _cos_sin_core(_pt(hi), wp)[pick])
        # Interior extrema: cos at k pi, sin at pi/2 + k pi, value (-1)^k. Any k with
        # lo <= (k or k + 1/2) pi <= hi lies between the enclosures of lo/pi and hi/pi.
        p2 = wp + m + 16
        pie = _pi(p2)
        a = _idiv(_pt(lo), pie, p2)
        b = _idiv(_pt(hi), pie, p2)
        if want_sin:
            a = _isub(a, _IHALF, p2)
            b = _isub(b, _IHALF, p2)
        k0 = libmp.to_int(libmp.mpf_ceil(a[0]))
        k1 = libmp.to_int(libmp.mpf_floor(b[1]))
        for k in range(k0, min(k1, k0 + 3) + 1):
            res = _raw_hull(res, _I1 if k % 2 == 0 else (libmp.fnone, libmp.fnone))
    return _out(ctx, _clamp(res, *_UNIT))


def sin(ctx: Any, x: Any) -> Any:
    """An interval containing sin(t) for every t in x."""
    return _sin_or_cos(ctx, x, "sin")


def cos(ctx: Any, x: Any) -> Any:
    """An interval containing cos(t) for every t in x."""
    return _sin_or_cos(ctx, x, "cos")


def tanh(ctx: Any, x: Any) -> Any:
    """An interval containing tanh(t) for every t in x."""
    return _increasing(ctx, x, "tanh", _tanh_pt)


def sigmoid(ctx: Any, x: Any) -> Any:
    """An interval containing 1 / (1 + exp(-t)) for every t in x."""
    return _increasing(ctx, x, "sigmoid", _sigmoid_pt)


def softplus(ctx: Any, x: Any) -> Any:
    """An interval containing log(1 + exp(t)) for every t in x."""
    return _increasing(ctx, x, "softplus", _softplus_pt)


def erf(ctx: Any, x: Any) -> Any:
    """An interval containing erf(t) for every t in x."""
    return _increasing(ctx, x, "erf", _erf_pt)


def gelu(ctx: Any, x: Any) -> Any:
    """An interval containing t * Phi(t) (exact, erf-based GELU) for every t in x."""
    lo, hi = _check(ctx, x, "gelu")
    wp = _wp(ctx)
    glo = _gelu_pt(lo, wp)
    if lo == hi:
        return _out(ctx, glo)
    ghi = _gelu_pt(hi, wp)
    l0, r0, gmin = _gelu_min(wp)
    if _le(hi, l0):  # decreasing part
        res = (ghi[0], glo[1])
    elif _ge(lo, r0):  # increasing part
        res = (glo[0], ghi[1])
    else:  # may contain the minimum
        res = (_fmin(gmin, _fmin(glo[0], ghi[0])), _fmax(glo[1], ghi[1]))
    return _out(ctx, res)


def pi(ctx: Any) -> Any:
    """The tightest interval of ctx containing pi."""
    prec = int(ctx.prec)
    extra = 16
    while True:
        enc = _pi(prec + extra)
        res = _round_out(enc, prec)
        # Tightest once both ends of the enclosure round to the same pair.
        low_up = libmp.mpf_pos(enc[0], prec, _C)
        high_down = libmp.mpf_pos(enc[1], prec, _F)
        if (low_up == res[1] and high_down == res[0]) or extra > 2048:
            return ctx.make_mpf(res)
        extra *= 2


def from_fraction(ctx: Any, q: fractions.Fraction | int) -> Any:
    """The tightest interval of ctx containing the rational q."""
    q = fractions.Fraction(q)
    prec = int(ctx.prec)
    # from_rational is one correctly rounded division of exact integers.
    lo = libmp.from_rational(q.numerator, q.denominator, prec, _F)
    hi = libmp.from_rational(q.numerator, q.denominator, prec, _C)
    return ctx.make_mpf((lo, hi))


def from_float(ctx: Any, f: float) -> Any:
    """The tightest interval of ctx containing the float f (a point when prec >= 53).

    Raises ValueError for NaN; an infinite f gives the point interval [f, f].
    """
    f = float(f)
    if math.isnan(f):
        raise DomainError("from_float: NaN is not a real number")
    v = libmp.from_float(f, 53, _N)  # exact for every finite double
    return ctx.make_mpf(_round_out(_pt(v), int(ctx.prec)))


def hull(x: Any, y: Any) -> Any:
    """The smallest interval containing both x and y (of one context)."""
    if not isinstance(x, _ivmpf_base):
        raise TypeError(f"hull: expected an interval, got {type(x).__name__}")
    ctx = x.ctx
    rx = _check(ctx, x, "hull")
    ry = _check(ctx, y, "hull")
    return ctx.make_mpf(_round_out(_raw_hull(rx, ry), int(ctx.prec)))


def maximum(ctx: Any, x: Any, y: Any) -> Any:
    """An interval containing max(s, t) for every s in x and t in y."""
    rx = _check(ctx, x, "maximum")
    ry = _check(ctx, y, "maximum")
    return _out(ctx, (_fmax(rx[0], ry[0]), _fmax(rx[1], ry[1])))


def minimum(ctx: Any, x: Any, y: Any) -> Any:
    """An interval containing min(s, t) for every s in x and t in y."""
    rx = _check(ctx, x, "minimum")
    ry = _check(ctx, y, "minimum")
    return _out(ctx, (_fmin(rx[0], ry[0]), _fmin(rx[1], ry[1])))


def abs(ctx: Any, x: Any) -> Any:
    """The image of |t| over x: [0, max] when x straddles 0."""
    rx = _check(ctx, x, "abs")
    return _out(ctx, (_absmin(rx), _absmax(rx)))


def step(ctx: Any, x: Any) -> Any:
    """The image of the Heaviside step (step(0) = 0) over x: [0,0], [1,1] or [0,1]."""
    lo, hi = _check(ctx, x, "step")
    if _sign(hi) <= 0:
        return ctx.make_mpf(_I0)
    if _sign(lo) > 0:
        return ctx.make_mpf(_I1)
    return ctx.make_mpf((_ZERO, _ONE))


def greater(ctx: Any, x: Any, y: Any) -> Any:
    """[1,1] when s > t for all s in x, t in y; [0,0] when s <= t for all; else [0,1]."""
    rx = _check(ctx, x, "greater")
    ry = _check(ctx, y, "greater")
    if _gt(rx[0], ry[1]):
        return ctx.make_mpf(_I1)
    if _le(rx[1], ry[0]):
        return ctx.make_mpf(_I0)
    return ctx.make_mpf((_ZERO, _ONE))


def _raw_to_fraction(v: Any) -> fractions.Fraction:
    sign_bit, man, exp, _bc = v
    man = -int(man) if sign_bit else int(man)
    if exp >= 0:
        return fractions.Fraction(man << int(exp))
    return fractions.Fraction(man, 1 << int(-exp))


def _le_value(a: Any, value: Any) -> bool:
    """a <= value for a raw mpf endpoint a and an exact value (raw mpf or Fraction)."""
    if isinstance(value, fractions.Fraction):
        if a == _NINF:
            return True
        if a == _INF:
            return False
        return _raw_to_fraction(a) <= value
    return bool(_le(a, value))


def _ge_value(b: Any, value: Any) -> bool:
    if isinstance(value, fractions.Fraction):
        if b == _INF:
            return True
        if b == _NINF:
            return False
        return _raw_to_fraction(b) >= value
    return bool(_ge(b, value))


def contains(x: Any, value: Any) -> bool:
    """Whether the interval x contains the real number value exactly.

    value may be a Fraction, int, float, mpmath mpf, or an interval (then: a subset).
    """
    if not isinstance(x, _ivmpf_base):
        raise TypeError(f"contains: expected an interval, got {type(x).__name__}")
    lo, hi = x._mpi_
    if isinstance(value, _ivmpf_base):
        vlo, vhi = value._mpi_
        return bool(_le(lo, vlo)) and bool(_ge(hi, vhi))
    v: Any
    if isinstance(value, fractions.Fraction):
        v = value
    elif isinstance(value, bool):
        v = libmp.from_int(int(value))
    elif isinstance(value, int):
        v = libmp.from_int(value)
    elif isinstance(value, float):
        if math.isnan(value):
            return False
        v = libmp.from_float(value, 53, _N)
    elif hasattr(value, "_mpf_"):
        v = value._mpf_
        if v == _NAN:
            return False
    else:
        raise TypeError(f"contains: unsupported value type {type(value).__name__}")
    return _le_value(lo, v) and _ge_value(hi, v)
