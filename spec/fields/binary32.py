"""Kernels of the `ieee32exec` field: IEEE-754 binary32 with one fixed, portable semantics.

Every function takes NumPy float32 arrays (any shape, 0-d included; binary ops broadcast
like NumPy), never modifies its inputs and returns a new float32 ndarray. Other dtypes are
refused with `FieldMismatchError` (a `TypeError`) rather than silently rounded. The
results depend only on the input bits: not on the machine, BLAS, SIMD width or thread
count.

Semantics (RNE = round to nearest, ties to even, on the binary32 grid with gradual
underflow: subnormals are kept, and a real value of magnitude >= 2**128 - 2**103
rounds to an infinity):

* NaN: every NaN result is the canonical quiet NaN, bit pattern 0x7FC00000 (positive sign,
  no payload), whatever NaNs went in. Invalid operations (0/0, inf - inf, 0 * inf,
  sqrt(x < 0), log(x < 0), log1p(x < -1), sin(+-inf), cos(+-inf)) give it.
* `add sub mul div sqrt`: the IEEE-754 operations, correctly rounded (RNE), with the IEEE
  rules for signed zeros (an exact zero sum of operands of opposite sign is +0,
  (-0) + (-0) = -0, sqrt(-0) = -0) and infinities (x/0 = +-inf for x != 0).
* `fma(a, b, c)`: a*b + c rounded once (RNE); zero and special rules as IEEE-754
  fusedMultiplyAdd (inf*0 + c = NaN, (+inf) + (-inf) = NaN, an exact zero result is -0
  only when a*b and c are both zeros of negative sign).
* `neg` flips and `abs` clears the sign bit (then NaN is canonicalised).
* `maximum`/`minimum`: NaN if either operand is NaN; otherwise the larger/smaller value,
  where -0 counts as smaller than +0 (so maximum(+0, -0) = +0, minimum(+0, -0) = -0).
* Transcendentals `exp log log1p expm1 tanh sigmoid softplus erf gelu sin cos`: the
  binary32 value nearest (RNE) to the exact real result, for every finite input, with
  sigmoid(x) = 1/(1 + e**-x), softplus(x) = log(1 + e**x), gelu(x) = x * Phi(x) =
  (x/2) * erfc(-x/sqrt(2)) (the exact erf form, not the tanh approximation). Values at
  zeros and infinities:
    exp(+-0) = 1, exp(-inf) = +0, exp(+inf) = +inf;
    log(+-0) = -inf, log(1) = +0, log(+inf) = +inf, log(x < 0) = NaN;
    log1p(+-0) = +-0, log1p(-1) = -inf, log1p(+inf) = +inf, log1p(x < -1) = NaN;
    expm1(+-0) = +-0, expm1(-inf) = -1, expm1(+inf) = +inf;
    tanh(+-0) = +-0, tanh(+-inf) = +-1;
    sigmoid(+-0) = 0.5, sigmoid(-inf) = +0, sigmoid(+inf) = 1;
    softplus(+-0) = RNE(log 2), softplus(-inf) = +0, softplus(+inf) = +inf;
    erf(+-0) = +-0, erf(+-inf) = +-1;
    gelu(+-0) = +-0, gelu(-inf) = -0 (the limit, approached from below), gelu(+inf) = +inf;
    sin(+-0) = +-0, cos(+-0) = 1, sin(+-inf) = cos(+-inf) = NaN.
  A result that underflows keeps the sign of the exact value (gelu(x) for x < -14.5 is
  -0, tanh never underflows since |tanh x| ~ |x|).
* `sum_left_fold`: acc = +0.0, then acc = RNE(acc + x) for each reduced element in
  row-major order of the reduced axes. Hence summing over an empty set gives +0, and
  summing [-0.0] (or over no axes, elementwise) turns -0 into +0.
* `matmul_left_fold`: NumPy `matmul` shape rules; every output element is acc = +0.0, then
  acc = RNE(acc + RNE(a[i, k] * b[k, j])) for k = 0, 1, ..., K-1 (two roundings per
  step, never fused).
* `max_reduce`: the fold of `maximum` over the reduced elements in row-major order, seeded
  with -inf (which is the identity of `maximum`, so a reduction over no elements is -inf).

How the transcendentals are rounded correctly: each one is evaluated in binary64, whose
relative error is below 2**-44 for every function here (error analysis next to each
evaluator), and rounded to binary32. That is the correct rounding unless the binary64
value lies within a relative distance T of a binary32 rounding boundary (a midpoint
between neighbouring binary32 values, or 2**128 - 2**103); T = 2**-44 for the libm-based
functions (error <= 2**-48) and 2**-38 for erf/gelu (error <= 2**-44), in every case at
least 16 times the evaluation error.
The rare elements that fail this test are recomputed with mpmath (Ziv's strategy: 128
bits, doubled until the enclosure of the exact value rounds one way).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import numpy.typing as npt

from ..errors import FieldMismatchError, ShapeError

__all__ = [
    "CANONICAL_NAN_BITS",
    "check_environment",
    "canonical_nan",
    "add",
    "sub",
    "mul",
    "div",
    "fma",
    "sqrt",
    "neg",
    "abs",
    "maximum",
    "minimum",
    "exp",
    "log",
    "log1p",
    "expm1",
    "tanh",
    "sigmoid",
    "softplus",
    "erf",
    "gelu",
    "sin",
    "cos",
    "sum_left_fold",
    "matmul_left_fold",
    "max_reduce",
]

F32Array = npt.NDArray[np.float32]
_F64Array = npt.NDArray[np.float64]

CANONICAL_NAN_BITS = 0x7FC00000
_NAN = np.array(CANONICAL_NAN_BITS, dtype=np.uint32).view(np.float32)  # 0-d, exact bits
_SIGN = np.uint32(0x80000000)
_MAGNITUDE = np.uint32(0x7FFFFFFF)
_MIN_NORMAL = np.float32(2.0**-126)


# --------------------------------------------------------------------------- helpers


def _f32(x: object, op: str) -> F32Array:
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        raise FieldMismatchError(
            f"binary32.{op} takes float32 arrays, got dtype {arr.dtype}; "
            "convert explicitly so the rounding is visible"
        )
    return arr


def _finish(r: object, copy: bool = False) -> F32Array:
    """r as a float32 ndarray (never a NumPy scalar) with NaNs made canonical.

    r must be a fresh result owned by the caller unless `copy` is set: it is updated in place.
    """
    out = np.array(r, dtype=np.float32, copy=True if copy else None)
    nan = np.isnan(out)
    if nan.any():
        np.copyto(out, _NAN, where=nan)
    return out


def check_environment() -> None:
    """Raise RuntimeError unless this process does IEEE binary32/binary64 arithmetic here.

    Checks, with a few float32/float64 operations, that subnormals are neither flushed to
    zero (FTZ) nor read as zero (DAZ) and that rounding is to nearest even: some libraries
    switch the CPU into such modes, which would silently change every result here.
    """
    problems = []
    with np.errstate(all="ignore"):
        for n in (1, 64):  # scalar-ish and SIMD code paths
            tiny = np.full(n, 2.0**-126, dtype=np.float32)
            sub = np.full(n, 2.0**-149, dtype=np.float32)
            half = tiny * np.float32(0.5)  # 2**-127: produced subnormal (FTZ test)
            up = sub * np.float32(2.0**24)  # 2**-125: subnormal operand (DAZ test)
            cast = np.full(n, 2.0**-140, dtype=np.float64).astype(np.float32)
            sub64 = np.full(n, 2.0**-1022, dtype=np.float64) * 0.5
            # Compare bit patterns: under DAZ, float comparisons would see 0 == 0.
            if not np.all(half.view(np.uint32) == 0x00400000):
                problems.append("float32 results are flushed to zero (FTZ)")
            if not np.all(up.view(np.uint32) == 0x01000000):
                problems.append("float32 subnormal operands are read as zero (DAZ)")
            if not np.all(cast.view(np.uint32) == 0x00000200):
                problems.append("float64->float32 casts flush subnormals")
            if not np.all(sub64.view(np.uint64) == 0x0008000000000000):
                problems.append("float64 results are flushed to zero (FTZ)")
            # Round to nearest even: 1 + 2**-24 and -1 - 2**-24 are ties that go to +-1.
            one = np.full(n, 1.0, dtype=np.float32)
            tie = np.float32(2.0**-24)
            up, down = one + tie, -one - tie
            if not (np.all(up.view(np.uint32) == 0x3F800000) and np.all(down == -one)):
                problems.append("float32 rounding is not to nearest even")
            if not np.all((one.astype(np.float64) + 2.0**-53) == 1.0):
                problems.append("float64 rounding is not to nearest even")
    if problems:
        raise RuntimeError(
            "ieee32exec needs IEEE-754 default arithmetic (gradual underflow, round to "
            "nearest even), but in this process: "
            + "; ".join(sorted(set(problems)))
            + ". Some library loaded into the process (often one built with -ffast-math, "
            "which sets flush-to-zero) changed the CPU's floating-point mode."
        )


def canonical_nan(x: F32Array) -> F32Array:
    """A copy of `x` with every NaN replaced by the canonical quiet NaN 0x7FC00000."""
    return _finish(_f32(x, "canonical_nan"), copy=True)


# ------------------------------------------------------------- IEEE basic operations


def add(a: F32Array, b: F32Array) -> F32Array:
    """a + b, correctly rounded."""
    with np.errstate(all="ignore"):
        return _finish(np.add(_f32(a, "add"), _f32(b, "add")))


def sub(a: F32Array, b: F32Array) -> F32Array:
    """a - b, correctly rounded."""
    with np.errstate(all="ignore"):
        return _finish(np.subtract(_f32(a, "sub"), _f32(b, "sub")))


def mul(a: F32Array, b: F32Array) -> F32Array:
    """a * b, correctly rounded."""
    with np.errstate(all="ignore"):
        return _finish(np.multiply(_f32(a, "mul"), _f32(b, "mul")))


def div(a: F32Array, b: F32Array) -> F32Array:
    """a / b, correctly rounded."""
    with np.errstate(all="ignore"):
        return _finish(np.divide(_f32(a, "div"), _f32(b, "div")))


def sqrt(a: F32Array) -> F32Array:
    """The square root of a, correctly rounded (sqrt(-0) = -0, negative -> NaN)."""
    with np.errstate(all="ignore"):
        return _finish(np.sqrt(_f32(a, "sqrt")))


def fma(a: F32Array, b: F32Array, c: F32Array) -> F32Array:
    """a * b + c with a single rounding."""
    a32, b32, c32 = _f32(a, "fma"), _f32(b, "fma"), _f32(c, "fma")
    with np.errstate(all="ignore"):
        # 24 x 24 significand bits fit in binary64's 53, and the exponent range of the
        # product (2**-298 .. 2**256) is inside binary64's normal range: p is exact.
        p = np.asarray(np.multiply(a32, b32, dtype=np.float64))
        cc = np.asarray(c32, dtype=np.float64)
        s = np.asarray(p + cc)
        # TwoSum (Knuth, TAOCP vol. 2, 4.2.2): err = (p + cc) - s exactly, barring overflow,
        # which cannot happen at these magnitudes.
        bv = s - p
        err = (p - (s - bv)) + (cc - bv)
        # Round to odd: an inexact s whose last bit is even moves one ulp towards the exact
        # sum. Rounding to odd at 53 >= 24 + 2 bits followed by RNE to 24 bits is the
        # correct RNE of the exact value (Boldo & Melquiond, IEEE Trans. Computers 57(4),
        # 2008, "Emulation of FMA and correctly rounded sums: proved algorithms using
        # rounding to odd"). Non-finite s (inf/NaN operands) has a NaN err and is left alone.
        even = (s.view(np.uint64) & np.uint64(1)) == 0
        inexact = np.isfinite(err) & (err != 0)
        odd = np.where(even & inexact, np.nextafter(s, np.copysign(np.inf, err)), s)
        return _finish(odd.astype(np.float32))


def neg(a: F32Array) -> F32Array:
    """-a (the sign bit flipped)."""
    bits = _f32(a, "neg").view(np.uint32) ^ _SIGN
    return _finish(bits.view(np.float32))


def abs(a: F32Array) -> F32Array:  # shadows the builtin: the field op is named abs
    """|a| (the sign bit cleared)."""
    bits = _f32(a, "abs").view(np.uint32) & _MAGNITUDE
    return _finish(bits.view(np.float32))


def _max_min(a: F32Array, b: F32Array, op: str) -> F32Array:
    a32, b32 = np.broadcast_arrays(_f32(a, op), _f32(b, op))
    ua, ub = a32.view(np.uint32), b32.view(np.uint32)
    if op == "maximum":
        pick = np.where(a32 > b32, a32, b32)
        zeros = (ua & ub).view(np.float32)  # equal values; for zeros -0 only if both are -0
    else:
        pick = np.where(a32 < b32, a32, b32)
        zeros = (ua | ub).view(np.float32)  # -0 if either is -0
    # Equal non-NaN operands differ in their bits only when they are +0 and -0.
    r = np.where(a32 == b32, zeros, pick)
    return _finish(np.where(np.isnan(a32) | np.isnan(b32), _NAN, r))


def maximum(a: F32Array, b: F32Array) -> F32Array:
    """The larger of a and b; NaN if either is NaN; maximum(+0, -0) = +0."""
    return _max_min(a, b, "maximum")


def minimum(a: F32Array, b: F32Array) -> F32Array:
    """The smaller of a and b; NaN if either is NaN; minimum(+0, -0) = -0."""
    return _max_min(a, b, "minimum")


# -------------------------------------------------------------------- transcendentals
#
# Error model. u = 2**-53. A libm-quality binary64 function (glibc, NumPy's own SIMD
# kernels, Intel SVML as used by NumPy on AVX-512) is documented to within 4 ulp, i.e.
# relative error <= 8u = 2**-50, on its whole domain (sin/cos with exact argument
# reduction included). Each evaluator below states its total bound E. Any T > E (1 + E)
# is enough for a value farther than T from a boundary to be on the same side as the
# exact value; we take T >= 16 E as a margin against libraries worse than documented.
# The price of a larger T is only more mpmath fallbacks, for a fraction of about
# 2**25 * T of the inputs: 2**-19 for T = 2**-44, 2**-13 for 2**-38.

_T_LIBM = 2.0**-44  # single libm calls: E <= 2**-50 (margin 64); sigmoid, softplus: 2**-48
_T_ERF = 2.0**-38  # erf: E <= 2**-48; gelu: E < 2**-44 (margin 64)
_CHUNK = 1 << 16  # elements per pass: keeps the binary64 temporaries in the L2 cache
_LOW29 = np.uint64((1 << 29) - 1)
_Eval64 = Callable[[F32Array, _F64Array], None]
_EvalMp = Callable[[Any, Any], Any]


def _ev_exp(x: F32Array, y: _F64Array) -> None:
    np.exp(x, out=y, dtype=np.float64)  # E <= 8u: one libm call on an exact argument


def _ev_log(x: F32Array, y: _F64Array) -> None:
    np.log(x, out=y, dtype=np.float64)  # E <= 8u


def _ev_log1p(x: F32Array, y: _F64Array) -> None:
    np.log1p(x, out=y, dtype=np.float64)  # E <= 8u


def _ev_expm1(x: F32Array, y: _F64Array) -> None:
    np.expm1(x, out=y, dtype=np.float64)  # E <= 8u


def _ev_tanh(x: F32Array, y: _F64Array) -> None:
    np.tanh(x, out=y, dtype=np.float64)  # E <= 8u


def _ev_sin(x: F32Array, y: _F64Array) -> None:
    np.sin(x, out=y, dtype=np.float64)  # E <= 8u (libm reduces huge arguments exactly)


def _ev_cos(x: F32Array, y: _F64Array) -> None:
    np.cos(x, out=y, dtype=np.float64)  # E <= 8u


def _ev_sigmoid(x: F32Array, y: _F64Array) -> None:
    # z = e**-|x| <= 1 never overflows. x >= 0: 1/(1+z); x < 0: z/(1+z) = e**x/(1+e**x).
    # z: 8u; 1+z: adds u (no cancellation, both positive); the quotient: u (and 8u more
    # from z in the numerator). E <= 8u + u + u + 8u < 2**-48.
    np.abs(x, out=y, dtype=np.float64)
    np.negative(y, out=y)
    np.exp(y, out=y)
    num = np.where(x >= 0, 1.0, y)
    np.add(y, 1.0, out=y)
    np.divide(num, y, out=y)


def _ev_softplus(x: F32Array, y: _F64Array) -> None:
    # log(1+e**x) = max(x, 0) + log1p(e**-|x|), no overflow and no cancellation.
    # z = e**-|x| in (0, 1]: 8u; log1p(z) has condition number z/((1+z)log1p(z)) <= 1,
    # so 8u + 8u; the final sum of two non-negative terms adds u. E <= 17u < 2**-48.
    np.abs(x, out=y, dtype=np.float64)
    np.negative(y, out=y)
    np.exp(y, out=y)
    np.log1p(y, out=y)
    np.add(y, np.maximum(x, np.float32(0)), out=y)


def _map_math(fn: Callable[[float], float], x: _F64Array, y: _F64Array) -> None:
    y[...] = np.fromiter(map(fn, x.tolist()), dtype=np.float64, count=x.size)


def _ev_erf(x: F32Array, y: _F64Array) -> None:
    # math.erf: C99 libm erf (or CPython's fallback), a few ulp: E <= 2**-48, T = 2**-38.
    _map_math(math.erf, x.astype(np.float64), y)


_INV_SQRT2 = 0.7071067811865476  # binary64 nearest 1/sqrt(2), relative error < u


def _ev_gelu(x: F32Array, y: _F64Array) -> None:
    # gelu(x) = x/2 * erfc(t) with t = -x/sqrt(2) (no cancellation, unlike 1 + erf).
    # t carries <= 2u (constant + product). erfc's condition number |t erfc'(t)/erfc(t)|
    # is <= 2t**2 + 1 for t > 0 and < 0.5 for t <= 0; results stay above the binary32
    # underflow range only for t < 10.3, so the factor is <= 214 and t contributes
    # <= 428u < 2**-44.2. erfc itself (a few ulp) and the product add < 2**-48.
    # E < 2**-44, and T = 2**-38 leaves a factor 64 of margin.
    x64 = x.astype(np.float64)
    _map_math(math.erfc, x64 * -_INV_SQRT2, y)
    np.multiply(y, x64, out=y)
    np.multiply(y, 0.5, out=y)
    y[x == -np.inf] = -0.0  # -inf * erfc(+inf) = -inf * 0 would be NaN; the limit is -0


def _mp_sigmoid(c: Any, x: Any) -> Any:
    return 1 / (1 + c.exp(-x))


def _mp_softplus(c: Any, x: Any) -> Any:
    return c.log1p(c.exp(x))  # log1p keeps the tiny results for very negative x


def _mp_gelu(c: Any, x: Any) -> Any:
    return x / 2 * c.erfc(-x / c.sqrt(2))


def _mp_method(name: str) -> _EvalMp:
    def ev(ctx: Any, x: Any) -> Any:
        return getattr(ctx, name)(x)

    return ev


_THREAD_STATE = threading.local()


def _mp_context() -> Any:
    """This thread's private mpmath context (its precision is ours to change)."""
    ctx = getattr(_THREAD_STATE, "ctx", None)
    if ctx is None:
        ctx = _THREAD_STATE.ctx = mpmath.MPContext()
    return ctx


def _round_dyadic(n: int, e: int) -> float:
    """RNE of n * 2**e to binary32, returned as the (exactly equal) Python float."""
    m = -n if n < 0 else n
    q = max(e + m.bit_length() - 1 - 23, -149)  # exponent of the binary32 ulp there
    shift = q - e
    if shift <= 0:
        big = m << -shift
    else:
        big, rem = m >> shift, m & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and big & 1):
            big += 1
    value = math.inf if big.bit_length() + q > 128 else math.ldexp(big, q)
    return -value if n < 0 else value


def _mp_round(ev: _EvalMp, x: float, ctx: Any) -> float:
    """The correctly rounded binary32 f(x), by Ziv's strategy in the mpmath context ctx."""
    prec = 128
    while prec <= 4096:
        # 32 guard bits absorb mpmath's few-ulp errors and the condition numbers of our
        # compositions (<= 2**8, for gelu), so |v - f(x)| <= 2**-prec |v|.
        ctx.prec = prec + 32
        v = ev(ctx, ctx.mpf(x))
        v = ctx.mpf(v)
        man, ex = v.man_exp  # man_exp gives the magnitude's significand
        man = -man if v < 0 else man
        if man != 0:
            err = -man if man < 0 else man  # |v| 2**-prec, in units of 2**(ex - prec)
            lo = _round_dyadic((man << prec) - err, ex - prec)
            hi = _round_dyadic((man << prec) + err, ex - prec)
            if lo == hi:
                return lo
        prec *= 2
    # Unreachable for these functions: their values at nonzero binary32 inputs are
    # transcendental (Lindemann-Weierstrass), so never exactly on a rounding boundary.
    raise RuntimeError(f"binary32: could not round f({x!r}) correctly at 4096 bits")


def _correctly_rounded(
    x: F32Array, op: str, ev64: _Eval64, evmp: _EvalMp, tol: float, odd_zero: bool
) -> F32Array:
    """Round f(x) to binary32 correctly, given a binary64 evaluator with error << tol."""
    x32 = _f32(x, op)
    flat = np.ascontiguousarray(x32).reshape(-1)
    n = flat.size
    out = np.empty(n, dtype=np.float32)
    m = min(n, _CHUNK)
    y = np.empty(m, dtype=np.float64)
    work = np.empty(m, dtype=np.uint64)
    mag = np.empty(m, dtype=np.float32)
    # Binary32 midpoints in the normal range are binary64 numbers whose 29 low significand
    # bits are 1 followed by 28 zeros. Within tol*|y| of such a point means within
    # k = tol * 2**53 binary64 ulps of it, i.e. low29 in [2**28 - k, 2**28 + k]: tested
    # as ((bits - (2**28 - k)) mod 2**29) <= 2k. The overflow threshold 2**128 - 2**103
    # has this form too.
    k = int(tol * 2.0**53)
    lo_edge, width = np.uint64((1 << 28) - k), np.uint64(2 * k)
    hard: list[npt.NDArray[np.intp]] = []
    with np.errstate(all="ignore"):
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            xs, ys, os = flat[start:stop], y[: stop - start], out[start:stop]
            ws, ms = work[: stop - start], mag[: stop - start]
            ev64(xs, ys)
            np.copyto(os, ys, casting="same_kind")  # the hardware cast is RNE
            np.subtract(ys.view(np.uint64), lo_edge, out=ws)
            np.bitwise_and(ws, _LOW29, out=ws)
            if ws.min() <= width:  # (reductions: no boolean temporaries in the common case)
                hard.append(np.flatnonzero(ws <= width) + start)
            # Results that are zero, subnormal or 2**-126, and NaNs, need a closer look.
            np.abs(os, out=ms)
            if not ms.min() > _MIN_NORMAL:  # also true when there is a NaN
                special = np.flatnonzero(~(ms > _MIN_NORMAL))
                hard.append(_special(flat, out, y, special, start, tol, odd_zero))
    if hard:
        idx = np.unique(np.concatenate(hard))
        idx = idx[np.isfinite(flat[idx])]
        ctx = _mp_context()
        for i in idx.tolist():
            out[i] = _mp_round(evmp, float(flat[i]), ctx)
    return out.reshape(x32.shape)


def _special(
    flat: F32Array,
    out: F32Array,
    y: _F64Array,
    special: npt.NDArray[np.intp],
    start: int,
    tol: float,
    odd_zero: bool,
) -> npt.NDArray[np.intp]:
    """Fix NaNs and zero signs among `special`; return the subnormal-grid hard cases."""
    gi = special + start
    o = out[gi]
    nan = np.isnan(o)
    o[nan] = _NAN
    if odd_zero:  # f(+-0) = +-0 exactly, whatever the binary64 library did with the sign
        zero_in = flat[gi] == 0
        o[zero_in] = flat[gi][zero_in]
    out[gi] = o
    # Below 2**-126 the binary32 grid has spacing 2**-149, so the midpoints are
    # (j + 1/2) 2**-149: scale by 2**149 (exact) and look at the fractional part.
    s = np.abs(y[special]) * 2.0**149
    near = np.abs(s - np.floor(s) - 0.5) <= tol * s
    return gi[near & ~nan]


def exp(x: F32Array) -> F32Array:
    """e**x, correctly rounded."""
    return _correctly_rounded(x, "exp", _ev_exp, _mp_method("exp"), _T_LIBM, False)


def log(x: F32Array) -> F32Array:
    """The natural logarithm of x, correctly rounded."""
    return _correctly_rounded(x, "log", _ev_log, _mp_method("log"), _T_LIBM, False)


def log1p(x: F32Array) -> F32Array:
    """log(1 + x), correctly rounded."""
    return _correctly_rounded(x, "log1p", _ev_log1p, _mp_method("log1p"), _T_LIBM, True)


def expm1(x: F32Array) -> F32Array:
    """e**x - 1, correctly rounded."""
    return _correctly_rounded(x, "expm1", _ev_expm1, _mp_method("expm1"), _T_LIBM, True)


def tanh(x: F32Array) -> F32Array:
    """The hyperbolic tangent of x, correctly rounded."""
    return _correctly_rounded(x, "tanh", _ev_tanh, _mp_method("tanh"), _T_LIBM, True)


def sigmoid(x: F32Array) -> F32Array:
    """1 / (1 + e**-x), correctly rounded."""
    return _correctly_rounded(x, "sigmoid", _ev_sigmoid, _mp_sigmoid, _T_LIBM, False)


def softplus(x: F32Array) -> F32Array:
    """log(1 + e**x), correctly rounded."""
    return _correctly_rounded(x, "softplus", _ev_softplus, _mp_softplus, _T_LIBM, False)


def erf(x: F32Array) -> F32Array:
    """The error function of x, correctly rounded."""
    return _correctly_rounded(x, "erf", _ev_erf, _mp_method("erf"), _T_ERF, True)


def gelu(x: F32Array) -> F32Array:
    """x * Phi(x) (Phi the standard normal CDF), correctly rounded."""
    return _correctly_rounded(x, "gelu", _ev_gelu, _mp_gelu, _T_ERF, True)


def sin(x: F32Array) -> F32Array:
    """The sine of x (radians), correctly rounded."""
    return _correctly_rounded(x, "sin", _ev_sin, _mp_method("sin"), _T_LIBM, True)


def cos(x: F32Array) -> F32Array:
    """The cosine of x (radians), correctly rounded."""
    return _correctly_rounded(x, "cos", _ev_cos, _mp_method("cos"), _T_LIBM, False)


# ------------------------------------------------------------------------ reductions


def _reduce_layout(x: F32Array, axes: tuple[int, ...], op: str) -> F32Array:
    """x with the kept axes first and the reduced axes merged into one last axis."""
    axes = tuple(axes)
    valid = all(isinstance(i, int) and 0 <= i < x.ndim for i in axes)
    if not valid or list(axes) != sorted(set(axes)):
        raise ShapeError(
            f"binary32.{op}: axes must be sorted, distinct and in 0..{x.ndim - 1}, "
            f"got {axes} for shape {x.shape}"
        )
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    count = math.prod(x.shape[i] for i in axes)
    # Row-major order of the reduced elements is the C order of the merged last axis.
    return np.transpose(x, kept + axes).reshape(tuple(x.shape[i] for i in kept) + (count,))


def _keep(r: F32Array, x: F32Array, axes: tuple[int, ...], keepdims: bool) -> F32Array:
    if keepdims:
        r = r.reshape(tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
    return r


def sum_left_fold(a: F32Array, axes: tuple[int, ...], keepdims: bool) -> F32Array:
    """The sum over `axes` as a zero-seeded left fold in row-major order (see module doc)."""
    x = _f32(a, "sum_left_fold")
    flat = _reduce_layout(x, axes, "sum_left_fold")
    kept_shape, count = flat.shape[:-1], flat.shape[-1]
    with np.errstate(all="ignore"):
        if count == 0:
            r = np.zeros(kept_shape, dtype=np.float32)
        elif count > max(math.prod(kept_shape), 64):  # few long folds
            # Long folds: ufunc.accumulate is documented as the sequential recurrence
            # r[i] = op(r[i-1], x[i]) with r[0] = x[0]. It differs from the zero-seeded
            # fold only in that a leading -0 is kept, which can survive to the end only
            # when every element is -0; the final +0 addition maps that -0 to +0 and leaves
            # every other value unchanged.
            r = np.add(np.add.accumulate(flat, axis=-1)[..., -1], np.float32(0))
        else:
            r = np.zeros(kept_shape, dtype=np.float32)
            for i in range(count):
                np.add(r, flat[..., i], out=r)
    return _keep(_finish(r), x, axes, keepdims)


def _order_key(x: F32Array) -> npt.NDArray[np.int32]:
    """An int32 whose order is the numeric order of non-NaN x, with -0 below +0."""
    i = x.view(np.int32)
    return np.asarray(i ^ ((i >> 31) & np.int32(0x7FFFFFFF)), dtype=np.int32)


_KEY_NEG_INF = int(_order_key(np.array(-np.inf, dtype=np.float32)))


def max_reduce(a: F32Array, axes: tuple[int, ...], keepdims: bool) -> F32Array:
    """The `maximum` of the elements over `axes`; -inf over no elements (see module doc)."""
    x = _f32(a, "max_reduce")
    _reduce_layout(x, axes, "max_reduce")  # validates the axes
    # `maximum` is the max of a total order (-0 < +0) with NaN absorbing, hence associative
    # and commutative: the row-major fold equals this order-free integer reduction.
    nan = np.isnan(x)
    keys = np.where(nan, np.int32(_KEY_NEG_INF), _order_key(x))
    best = np.max(keys, axis=axes, keepdims=keepdims, initial=_KEY_NEG_INF)
    # The key map is an involution: applying it to the winning key gives back its bits.
    r = _order_key(np.asarray(best, dtype=np.int32).view(np.float32))
    any_nan = np.any(nan, axis=axes, keepdims=keepdims)
    return _finish(np.where(any_nan, _NAN, r.view(np.float32)))


def matmul_left_fold(a: F32Array, b: F32Array) -> F32Array:
    """a @ b with NumPy's shape rules, each dot product a zero-seeded left fold."""
    x, w = _f32(a, "matmul_left_fold"), _f32(b, "matmul_left_fold")
    if x.ndim == 0 or w.ndim == 0:
        raise ShapeError(
            "binary32.matmul_left_fold: operands must be at least 1-D, "
            f"got shapes {x.shape} and {w.shape}"
        )
    x2 = x[None, :] if x.ndim == 1 else x
    w2 = w[:, None] if w.ndim == 1 else w
    (m, k), (k2, n) = x2.shape[-2:], w2.shape[-2:]
    try:
        batch = np.broadcast_shapes(x2.shape[:-2], w2.shape[:-2])
    except ValueError:
        batch = None
    if batch is None or k != k2:
        raise ShapeError(
            f"binary32.matmul_left_fold: shapes {x.shape} and {w.shape} do not fit "
            "NumPy's matmul rule"
        )
    # Put k first so that each step reads one contiguous column of a and row of b.
    cols = np.ascontiguousarray(np.moveaxis(x2, -1, 0))[..., None]  # (k, ..., m, 1)
    rows = np.ascontiguousarray(np.moveaxis(w2, -2, 0))[..., None, :]  # (k, ..., 1, n)
    acc = np.zeros(batch + (m, n), dtype=np.float32)
    prod = np.empty_like(acc)
    with np.errstate(all="ignore"):
        for i in range(k):
            np.multiply(cols[i], rows[i], out=prod)
            np.add(acc, prod, out=acc)
    if x.ndim == 1:
        acc = acc[..., 0, :]
    if w.ndim == 1:
        acc = acc[..., 0]
    return _finish(acc)


check_environment()
