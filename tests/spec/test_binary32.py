"""Bit-exact tests of spec/fields/binary32.py (the `ieee32exec` kernels).

Tolerances: none. Every comparison is of bit patterns. Basic operations are checked
against exact rational arithmetic rounded by the tests' own binary32 rounding
(binary32_reference.py); transcendentals against mpmath at 192+ bits rounded the same
way, after checking that mpmath's value is far enough from every rounding boundary that
its rounding is unambiguous; reductions and matmul against plain-Python left folds of
NumPy float32 scalar operations. NaN results must be the canonical 0x7FC00000.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import platform
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
from binary32_reference import (
    CANONICAL_NAN,
    FRAC_MASK,
    NEG_INF,
    POS_INF,
    SIGN_BIT,
    TWO,
    array_from_bits,
    bits_of,
    bits_to_fraction,
    from_bits,
    is_inf,
    is_nan,
    is_zero,
    round_fraction_interval,
    round_fraction_to_binary32,
    sign_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec.errors import FieldMismatchError, ShapeError
from torchlean.spec.fields import binary32

F32 = np.float32
ONE = 0x3F800000

# ------------------------------------------------------------------ input strategies

SPECIAL_MAGNITUDES = [
    0, 1, 2, FRAC_MASK, 0x00800000, 0x00800001, 0x3F800000, 0x3F800001, 0x3F7FFFFF,
    0x7F7FFFFF, 0x7F7FFFFE, POS_INF, CANONICAL_NAN, 0x7F800001, 0x7FFFFFFF, 0x7FA00000,
]  # fmt: skip


def _signed(mag: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    return st.builds(lambda s, m: m | (SIGN_BIT if s else 0), st.booleans(), mag)


# Any pattern, with extra weight on zeros/subnormals, the overflow edge, infinities and NaNs
# (quiet, signalling and with payloads).
any_bits = _signed(
    st.one_of(
        st.integers(0, 0x7FFFFFFF),
        st.integers(0, 0x00FFFFFF),
        st.integers(0x7F7FF000, 0x7F800002),
        st.sampled_from(SPECIAL_MAGNITUDES),
    )
)


def float_bits(lo: float, hi: float) -> st.SearchStrategy[int]:
    """Bit patterns of binary32 values in [lo, hi]."""
    lo, hi = float(F32(lo)), float(F32(hi))  # hypothesis wants representable bounds
    return st.floats(lo, hi, width=32).map(lambda v: bits_of(F32(v)))


def check_bits(got: np.ndarray, expected: list[int], inputs: Any = None) -> None:
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    got_bits = got.reshape(-1).view(np.uint32).tolist()
    assert len(got_bits) == len(expected)
    for i, (g, e) in enumerate(zip(got_bits, expected, strict=True)):
        if is_nan(e):
            e = CANONICAL_NAN  # the NaN policy: one canonical quiet NaN
        where = "" if inputs is None else f" for input {inputs[i]}"
        assert g == e, f"element {i}{where}: got {g:#010x}, expected {e:#010x}"


def nan_policy(b: int) -> int:
    return CANONICAL_NAN if is_nan(b) else b


# ----------------------------------------------------------- reference basic operations


def ref_add(a: int, b: int) -> int:
    if is_nan(a) or is_nan(b):
        return CANONICAL_NAN
    if is_inf(a) and is_inf(b):
        return a if a == b else CANONICAL_NAN
    if is_inf(a) or is_inf(b):
        return a if is_inf(a) else b
    exact = bits_to_fraction(a) + bits_to_fraction(b)
    if exact == 0:
        # IEEE 754 6.3: x + y = 0 exactly is +0 in round-to-nearest, except (-0) + (-0).
        return round_fraction_to_binary32(exact, negative=sign_of(a) and sign_of(b))
    return round_fraction_to_binary32(exact)


def ref_sub(a: int, b: int) -> int:
    return ref_add(a, b ^ SIGN_BIT)


def ref_mul(a: int, b: int) -> int:
    if is_nan(a) or is_nan(b):
        return CANONICAL_NAN
    sign = sign_of(a) != sign_of(b)
    if is_inf(a) or is_inf(b):
        if is_zero(a) or is_zero(b):
            return CANONICAL_NAN
        return NEG_INF if sign else POS_INF
    return round_fraction_to_binary32(bits_to_fraction(a) * bits_to_fraction(b), negative=sign)


def ref_div(a: int, b: int) -> int:
    if is_nan(a) or is_nan(b):
        return CANONICAL_NAN
    sign = sign_of(a) != sign_of(b)
    if (is_inf(a) and is_inf(b)) or (is_zero(a) and is_zero(b)):
        return CANONICAL_NAN
    if is_inf(a) or is_zero(b):
        return NEG_INF if sign else POS_INF
    if is_inf(b):
        return SIGN_BIT if sign else 0
    return round_fraction_to_binary32(bits_to_fraction(a) / bits_to_fraction(b), negative=sign)


def ref_sqrt(a: int) -> int:
    if is_nan(a) or (sign_of(a) and not is_zero(a)):
        return CANONICAL_NAN
    if is_zero(a) or is_inf(a):
        return a
    # sqrt(q) = sqrt(q * 2**400) / 2**200 with q * 2**400 an integer N. With s = isqrt(N),
    # sqrt(q) lies in [s, s+1) * 2**-200; rounding boundaries of results >= 2**-75 are
    # multiples of 2**-99, hence integers in these units, so s + 1/4 rounds like sqrt(q)
    # whenever sqrt(N) is not an integer.
    n = bits_to_fraction(a) * TWO**400
    assert n.denominator == 1
    s = math.isqrt(n.numerator)
    value = Fraction(s) + (0 if s * s == n.numerator else Fraction(1, 4))
    return round_fraction_to_binary32(value / TWO**200)


def ref_fma(a: int, b: int, c: int) -> int:
    if is_nan(a) or is_nan(b) or is_nan(c):
        return CANONICAL_NAN
    psign = sign_of(a) != sign_of(b)
    if is_inf(a) or is_inf(b):
        if is_zero(a) or is_zero(b):
            return CANONICAL_NAN
        if is_inf(c) and sign_of(c) != psign:
            return CANONICAL_NAN
        return NEG_INF if psign else POS_INF
    if is_inf(c):
        return c
    prod = bits_to_fraction(a) * bits_to_fraction(b)
    exact = prod + bits_to_fraction(c)
    if exact == 0:
        both_zero = prod == 0 and is_zero(c)
        return round_fraction_to_binary32(exact, negative=both_zero and psign and sign_of(c))
    return round_fraction_to_binary32(exact)


def ref_maximum(a: int, b: int) -> int:
    if is_nan(a) or is_nan(b):
        return CANONICAL_NAN
    if is_zero(a) and is_zero(b):
        return a & b  # -0 only if both are -0
    if is_inf(a) or is_inf(b):
        fa = -math.inf if a == NEG_INF else (math.inf if a == POS_INF else 0.0)
        fb = -math.inf if b == NEG_INF else (math.inf if b == POS_INF else 0.0)
        return a if fa >= fb else b
    return a if bits_to_fraction(a) >= bits_to_fraction(b) else b


def ref_minimum(a: int, b: int) -> int:
    if is_nan(a) or is_nan(b):
        return CANONICAL_NAN
    if is_zero(a) and is_zero(b):
        return a | b  # -0 if either is -0
    return b if ref_maximum(a, b) == a else a


# ---------------------------------------------------------------- basic-op properties

BINARY: dict[str, tuple[Callable[..., np.ndarray], Callable[[int, int], int]]] = {
    "add": (binary32.add, ref_add),
    "sub": (binary32.sub, ref_sub),
    "mul": (binary32.mul, ref_mul),
    "div": (binary32.div, ref_div),
    "maximum": (binary32.maximum, ref_maximum),
    "minimum": (binary32.minimum, ref_minimum),
}

# Pairs that cancel or nearly cancel: b = -(a +- a few ulps).
near_negatives = st.builds(
    lambda a, d: (a, (a ^ SIGN_BIT) + d if 0 <= (a & 0x7FFFFFFF) + d < POS_INF else a ^ SIGN_BIT),
    any_bits,
    st.integers(-3, 3),
)
pairs = st.one_of(st.tuples(any_bits, any_bits), near_negatives)


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=200, deadline=None)
@given(ps=st.lists(pairs, min_size=1, max_size=40))
def test_binary_ops_match_exact_rounding(name: str, ps: list[tuple[int, int]]) -> None:
    kernel, ref = BINARY[name]
    a = array_from_bits([p[0] for p in ps])
    b = array_from_bits([p[1] for p in ps])
    a0, b0 = a.copy(), b.copy()
    got = kernel(a, b)
    check_bits(got, [ref(x, y) for x, y in ps], ps)
    assert a.view(np.uint32).tolist() == a0.view(np.uint32).tolist()  # inputs untouched
    assert b.view(np.uint32).tolist() == b0.view(np.uint32).tolist()


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(any_bits, min_size=1, max_size=40))
def test_sqrt_neg_abs(xs: list[int]) -> None:
    x = array_from_bits(xs)
    check_bits(binary32.sqrt(x), [ref_sqrt(v) for v in xs], xs)
    check_bits(binary32.neg(x), [nan_policy(v ^ SIGN_BIT) for v in xs], xs)
    check_bits(binary32.abs(x), [nan_policy(v & ~SIGN_BIT) for v in xs], xs)
    check_bits(binary32.canonical_nan(x), [nan_policy(v) for v in xs], xs)


# Products landing near the subnormal range or near overflow, and addends of all sizes.
fma_operand = st.one_of(any_bits, float_bits(-4.0, 4.0), float_bits(-1e-20, 1e-20))
triples = st.tuples(fma_operand, fma_operand, any_bits)


@settings(max_examples=200, deadline=None)
@given(ts=st.lists(triples, min_size=1, max_size=40))
def test_fma_matches_single_rounding(ts: list[tuple[int, int, int]]) -> None:
    a, b, c = (array_from_bits([t[i] for t in ts]) for i in range(3))
    check_bits(binary32.fma(a, b, c), [ref_fma(*t) for t in ts], ts)


def test_fma_beats_double_rounding() -> None:
    # a*a = 1 + 2**-11 + 2**-24 is a binary32 midpoint and c = 2**-60 tips it upwards.
    # Binary64 rounding of a*a + c drops c, and the binary32 cast then rounds the tie to
    # even, downwards: the naive method is wrong here.
    a = np.array([1 + 2.0**-12], dtype=F32)
    c = np.array([2.0**-60], dtype=F32)
    naive = (a.astype(np.float64) * a.astype(np.float64) + c.astype(np.float64)).astype(F32)
    correct = bits_of(F32(1 + 2.0**-11 + 2.0**-23))
    assert ref_fma(bits_of(a[0]), bits_of(a[0]), bits_of(c[0])) == correct
    assert bits_of(naive[0]) != correct
    check_bits(binary32.fma(a, a, c), [correct])

    # More such cases: with u, v odd, (1 + u 2**-12)(1 + v 2**-12) = 1 + (u+v) 2**-12 +
    # uv 2**-24 is always a binary32 midpoint; a tiny c of either sign decides the rounding,
    # and the naive method gets it wrong whenever ties-to-even goes the other way.
    rng = np.random.default_rng(7)
    u, v = 2 * rng.integers(0, 1 << 9, (2, 400)) + 1
    x, y = (1 + u * 2.0**-12).astype(F32), (1 + v * 2.0**-12).astype(F32)
    z = (rng.choice([-1.0, 1.0], 400) * 2.0 ** -rng.integers(54, 80, 400)).astype(F32)
    naive = (x.astype(np.float64) * y + z.astype(np.float64)).astype(F32)
    expected = [ref_fma(*map(bits_of, t)) for t in zip(x, y, z, strict=True)]
    wrong = [i for i, e in enumerate(expected) if bits_of(naive[i]) != e]
    assert len(wrong) >= 100
    check_bits(binary32.fma(x[wrong], y[wrong], z[wrong]), [expected[i] for i in wrong])


def test_broadcasting_and_scalars() -> None:
    a = np.arange(6, dtype=F32).reshape(2, 3)
    b = np.array([1, 2, 3], dtype=F32)
    assert binary32.add(a, b).shape == (2, 3)
    assert binary32.fma(a, b, np.array(1, dtype=F32)).shape == (2, 3)
    r = binary32.add(np.array(1, dtype=F32), np.array(2, dtype=F32))
    assert isinstance(r, np.ndarray) and r.shape == () and r.dtype == np.float32
    r = binary32.exp(np.float32(0))
    assert isinstance(r, np.ndarray) and r.shape == () and float(r) == 1.0
    assert binary32.maximum(a, np.array(2.5, dtype=F32)).shape == (2, 3)


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(FieldMismatchError):
        binary32.add(np.ones(2), np.ones(2, dtype=F32))
    with pytest.raises(TypeError):
        binary32.exp(np.ones(2, dtype=np.float16))


def test_environment_and_constants() -> None:
    binary32.check_environment()
    assert binary32.CANONICAL_NAN_BITS == CANONICAL_NAN
    nan = binary32.div(np.zeros(3, dtype=F32), np.zeros(3, dtype=F32))
    assert nan.view(np.uint32).tolist() == [CANONICAL_NAN] * 3


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64", reason="x86-64 glibc fenv"
)
def test_check_environment_detects_rounding_mode() -> None:
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    fe_upward, fe_tonearest = 0x800, 0
    assert libm.fesetround(fe_upward) == 0
    try:
        with pytest.raises(RuntimeError, match="nearest even"):
            binary32.check_environment()
    finally:
        libm.fesetround(fe_tonearest)
    binary32.check_environment()


# ------------------------------------------------------------------ transcendentals

REF_PREC = 192
REF_SLACK = 32  # mpmath at p bits is trusted to 2**-(p - 32) relative: 32 bits of slack


def _mp(name: str, ctx: Any, x: Any) -> Any:
    """The exact function, in formulations chosen independently of the kernels'."""
    if name == "sigmoid":
        return 1 / (1 + ctx.exp(-x))
    if name == "softplus":
        return ctx.log1p(ctx.exp(x))
    if name == "gelu":
        return x * ctx.ncdf(x)
    if name in ("log1p", "expm1"):
        # Plain log(1 + x) and exp(x) - 1 with enough extra bits for the cancellation
        # (1 + x is then exact).
        with ctx.extraprec(max(0, -int(ctx.mag(x))) + 16):
            return ctx.log(1 + x) if name == "log1p" else ctx.exp(x) - 1
    return getattr(ctx, name)(x)


# Exact values at zeros and infinities (the module docstring's table).
SPECIALS: dict[str, dict[str, int | str]] = {
    "exp": {"+0": ONE, "-0": ONE, "+inf": POS_INF, "-inf": 0},
    "log": {"+0": NEG_INF, "-0": NEG_INF, "+inf": POS_INF, "-inf": CANONICAL_NAN},
    "log1p": {"+0": 0, "-0": SIGN_BIT, "+inf": POS_INF, "-inf": CANONICAL_NAN},
    "expm1": {"+0": 0, "-0": SIGN_BIT, "+inf": POS_INF, "-inf": 0xBF800000},
    "tanh": {"+0": 0, "-0": SIGN_BIT, "+inf": ONE, "-inf": 0xBF800000},
    "sigmoid": {"+0": 0x3F000000, "-0": 0x3F000000, "+inf": ONE, "-inf": 0},
    "softplus": {"+0": "mp", "-0": "mp", "+inf": POS_INF, "-inf": 0},
    "erf": {"+0": 0, "-0": SIGN_BIT, "+inf": ONE, "-inf": 0xBF800000},
    "gelu": {"+0": 0, "-0": SIGN_BIT, "+inf": POS_INF, "-inf": SIGN_BIT},
    "sin": {"+0": 0, "-0": SIGN_BIT, "+inf": CANONICAL_NAN, "-inf": CANONICAL_NAN},
    "cos": {"+0": ONE, "-0": ONE, "+inf": CANONICAL_NAN, "-inf": CANONICAL_NAN},
}


def ref_transcendental(name: str, b: int) -> int:
    """The correctly rounded binary32 result of `name` at the binary32 with bits b."""
    if is_nan(b):
        return CANONICAL_NAN
    if is_inf(b) or is_zero(b):
        key = ("-" if sign_of(b) else "+") + ("inf" if is_inf(b) else "0")
        special = SPECIALS[name][key]
        if isinstance(special, int):
            return special
    q = bits_to_fraction(b)
    if name == "log" and q < 0:
        return CANONICAL_NAN
    if name == "log1p" and q <= -1:
        return NEG_INF if q == -1 else CANONICAL_NAN
    for prec in (REF_PREC, 400, 1000):
        ctx = mpmath.MPContext()
        ctx.prec = prec
        v = ctx.mpf(_mp(name, ctx, ctx.mpf(float(q))))
        man, ex = v.man_exp
        if ex + man.bit_length() > 130:  # |v| >= 2**130: overflow (no boundary nearby)
            return NEG_INF if v < 0 else POS_INF
        if ex + man.bit_length() < -200:  # |v| < 2**-200: a zero of v's sign
            return SIGN_BIT if v < 0 else 0
        value = Fraction(-man if v < 0 else man) * TWO**ex
        err = abs(value) / TWO ** (prec - REF_SLACK)
        common = round_fraction_interval(value - err, value + err)
        if common is not None:
            return common
    pytest.fail(f"reference for {name}({float(q)!r}) is still ambiguous at 1000 bits")


KERNELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    name: getattr(binary32, name) for name in SPECIALS
}

# Per function: where its values are interesting (besides arbitrary bit patterns).
RANGES = {
    "exp": [(-104.5, 89.0), (-1e-6, 1e-6)],
    "log": [(0.0, 4.0), (0.5, 2.0)],
    "log1p": [(-1.0, 10.0), (-1e-6, 1e-6)],
    "expm1": [(-20.0, 89.0), (-1e-6, 1e-6)],
    "tanh": [(-10.0, 10.0), (-1e-4, 1e-4)],
    "sigmoid": [(-105.0, 20.0), (-1e-6, 1e-6)],
    "softplus": [(-105.0, 89.0), (-20.0, 20.0)],
    "erf": [(-5.0, 5.0), (-1e-4, 1e-4)],
    "gelu": [(-16.0, 16.0), (-1e-6, 1e-6)],
    "sin": [(-1e4, 1e4), (-4.0, 4.0)],
    "cos": [(-1e4, 1e4), (-4.0, 4.0)],
}


def check_transcendental(name: str, xs: list[int]) -> None:
    x = array_from_bits(xs)
    x0 = x.copy()
    got = KERNELS[name](x)
    check_bits(got, [ref_transcendental(name, v) for v in xs], [hex(v) for v in xs])
    assert x.view(np.uint32).tolist() == x0.view(np.uint32).tolist()


@pytest.mark.parametrize("name", sorted(KERNELS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_transcendental_random(name: str, data: st.DataObject) -> None:
    (lo1, hi1), (lo2, hi2) = RANGES[name]
    element = st.one_of(any_bits, float_bits(lo1, hi1), float_bits(lo2, hi2))
    check_transcendental(name, data.draw(st.lists(element, min_size=1, max_size=30)))


def _consecutive(center: float, count: int) -> list[int]:
    """Bit patterns of `count` consecutive binary32 values around `center` (> 0)."""
    b = bits_of(F32(center))
    return list(range(b - count // 2, b + count // 2))


EDGE_CASES: dict[str, list[int]] = {
    # Overflow edge: ln(2**128 - 2**103) = 88.72283911...; underflow edges: exp(x) = 2**-126,
    # 2**-149 and the last rounding boundary 2**-150 at -87.336, -103.279, -103.972.
    "exp": _consecutive(88.7228391, 40)
    + [v | SIGN_BIT for v in _consecutive(87.3365448, 20) + _consecutive(103.972077, 40)]
    + [v | SIGN_BIT for v in _consecutive(103.278929, 20)],
    "expm1": _consecutive(88.7228391, 20) + list(range(1, 40))
    + list(range(0x33000000, 0x33000010)),
    "log1p": list(range(1, 40)) + [v | SIGN_BIT for v in range(1, 20)] + [0xBF7FFFFF, 0xBF800000],
    "log": list(range(1, 20)) + _consecutive(1.0, 40) + [0x7F7FFFFF, 0x00800000, 0x007FFFFF],
    "tanh": list(range(1, 30)) + [v | SIGN_BIT for v in range(0x39800000, 0x39800010)]
    + _consecutive(9.01091, 20),  # tanh(x) = 1 - 2**-25 (a midpoint) near 9.01
    "sigmoid": [v | SIGN_BIT for v in _consecutive(103.972077, 30) + _consecutive(87.33, 10)]
    + _consecutive(17.3287, 20),  # 1 - 2**-25 near 17.33
    "softplus": [v | SIGN_BIT for v in _consecutive(103.972077, 30)] + _consecutive(88.7228391, 20),
    "erf": list(range(1, 40)) + [v | SIGN_BIT for v in range(1, 20)] + _consecutive(3.9, 10),
    # gelu(+-2**-149) = +-2**-150 (1 + 2**-149 * 0.798..): needs > 128 bits to round.
    "gelu": list(range(1, 40)) + [v | SIGN_BIT for v in range(1, 40)]
    + [v | SIGN_BIT for v in _consecutive(14.3, 40)],
    # Huge arguments (exact argument reduction), tiny ones, and near multiples of pi/2.
    "sin": list(range(0x7F7FFFF0, 0x7F800000)) + list(range(0x4F000000, 0x4F000010))
    + list(range(1, 20))
    + [bits_of(F32(math.pi)), bits_of(F32(2 * math.pi)), bits_of(F32(1e22))],
    "cos": list(range(0x7F7FFFF0, 0x7F800000)) + list(range(0x4F000000, 0x4F000010))
    + list(range(1, 20))
    + [bits_of(F32(math.pi / 2)), bits_of(F32(3 * math.pi / 2)), bits_of(F32(1e22))],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_transcendental_edges(name: str) -> None:
    specials = [0, SIGN_BIT, POS_INF, NEG_INF, CANONICAL_NAN, 0xFFC00000, 0x7F800001, ONE]
    check_transcendental(name, specials + EDGE_CASES[name] + [v | SIGN_BIT for v in specials])


def _binary64_guess(name: str, x: np.ndarray) -> np.ndarray:
    """A plain binary64 evaluation (the tests' own), used only to find hard inputs."""
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1 / (1 + np.exp(-x64))
        if name == "softplus":
            return np.logaddexp(0.0, x64)
        if name == "erf":
            return np.array([math.erf(v) for v in x64.tolist()])
        if name == "gelu":
            return np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x64.tolist()])
        return np.asarray(getattr(np, name)(x64))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_transcendental_near_midpoints(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Inputs whose values lie closest to binary32 rounding boundaries (found with a binary64
    # evaluation), where a single binary64 evaluation cannot decide the rounding: the
    # mpmath fallback must run (counted) and agree with the reference.
    rng = np.random.default_rng(sum(map(ord, name)))
    n = 1 << 17 if name in ("erf", "gelu") else 1 << 22
    (lo, hi), _ = RANGES[name]
    x = rng.uniform(lo, hi, n).astype(F32)
    y = _binary64_guess(name, x)
    low = (y.view(np.uint64) & np.uint64((1 << 29) - 1)).astype(np.int64)
    distance = np.abs(low - (1 << 28))
    distance[~np.isfinite(y) | (np.abs(y) < 2.0**-125)] = 1 << 40
    # and values on the subnormal grid
    with np.errstate(all="ignore"):
        s = np.abs(y) * 2.0**149
        sub_distance = np.abs(s - np.floor(s) - 0.5) / s
    sub = np.flatnonzero((np.abs(y) < 2.0**-126) & (sub_distance < 2.0**-20))
    picks = np.concatenate([np.argsort(distance, kind="stable")[:16], sub[:8]])
    calls: list[float] = []
    original = binary32._mp_round

    def counting(ev: Any, v: float, ctx: Any) -> float:
        calls.append(v)
        return float(original(ev, v, ctx))

    monkeypatch.setattr(binary32, "_mp_round", counting)
    check_transcendental(name, x[picks].view(np.uint32).tolist())
    assert calls, "no input reached the mpmath fallback"


def test_large_arrays_match_small_pieces() -> None:
    # More than one internal chunk: results must not depend on where chunks split.
    rng = np.random.default_rng(3)
    x = rng.uniform(-110, 90, 150_001).astype(F32)
    x[::997] = np.nan
    x[5::1009] = 0.0
    x[7::1013] = -1e-45
    for fn in (binary32.exp, binary32.tanh, binary32.gelu):
        whole = fn(x.reshape(3, -1) if x.size % 3 == 0 else x)
        pieces = np.concatenate([fn(x[i : i + 4099]) for i in range(0, x.size, 4099)])
        assert whole.reshape(-1).view(np.uint32).tolist() == pieces.view(np.uint32).tolist()
    sample = rng.choice(x.size, 60, replace=False)
    check_transcendental("exp", x[sample].view(np.uint32).tolist())


# ------------------------------------------------- reductions and matmul (left folds)


def _f32_add(acc: np.float32, v: np.float32) -> np.float32:
    with np.errstate(all="ignore"):
        return F32(acc + v)


def ref_sum(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    kept = [i for i in range(x.ndim) if i not in axes]
    out_shape = tuple(x.shape[i] for i in kept)
    out = np.empty(out_shape, dtype=F32)
    for oi in np.ndindex(*out_shape):
        acc = F32(0.0)
        for ri in np.ndindex(*(x.shape[i] for i in axes)):  # row-major over reduced axes
            idx = [0] * x.ndim
            for pos, i in enumerate(kept):
                idx[i] = oi[pos]
            for pos, i in enumerate(axes):
                idx[i] = ri[pos]
            acc = _f32_add(acc, x[tuple(idx)])
        out[oi] = acc
    if keepdims:
        out = out.reshape(tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
    return out


def ref_max(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    kept = [i for i in range(x.ndim) if i not in axes]
    out_shape = tuple(x.shape[i] for i in kept)
    out = np.empty(out_shape, dtype=np.uint32)
    for oi in np.ndindex(*out_shape):
        acc = NEG_INF
        for ri in np.ndindex(*(x.shape[i] for i in axes)):
            idx = [0] * x.ndim
            for pos, i in enumerate(kept):
                idx[i] = oi[pos]
            for pos, i in enumerate(axes):
                idx[i] = ri[pos]
            acc = ref_maximum(acc, bits_of(x[tuple(idx)]))
        out[oi] = acc
    out_f = out.view(np.float32)
    if keepdims:
        out_f = out_f.reshape(tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
    return out_f


fold_values = st.one_of(
    float_bits(-1e4, 1e4),
    float_bits(-3e38, 3e38),
    st.sampled_from([0, SIGN_BIT, POS_INF, NEG_INF, CANONICAL_NAN, 0xFFC00001, 1, SIGN_BIT | 1]),
)


@st.composite
def arrays_and_axes(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...], bool]:
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    size = math.prod(shape)
    bits = draw(st.lists(fold_values, min_size=size, max_size=size))
    x = array_from_bits(bits).reshape(shape)
    axes = tuple(i for i in range(len(shape)) if draw(st.booleans()))
    return x, axes, draw(st.booleans())


def check_same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    check_bits(got, expected.reshape(-1).view(np.uint32).tolist())


@settings(max_examples=300, deadline=None)
@given(case=arrays_and_axes())
def test_sum_and_max_are_left_folds(case: tuple[np.ndarray, tuple[int, ...], bool]) -> None:
    x, axes, keepdims = case
    x0 = x.copy()
    check_same(binary32.sum_left_fold(x, axes, keepdims), ref_sum(x, axes, keepdims))
    check_same(binary32.max_reduce(x, axes, keepdims), ref_max(x, axes, keepdims))
    assert x.view(np.uint32).tolist() == x0.view(np.uint32).tolist()


def test_long_folds() -> None:
    # Long reduced axes take a different code path (ufunc.accumulate).
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, 700)) * 10.0 ** rng.integers(-6, 8, (3, 700))).astype(F32)
    x[2] = -0.0  # all -0: the zero-seeded fold gives +0
    for axes in [(1,), (0, 1)]:
        check_same(binary32.sum_left_fold(x, axes, False), ref_sum(x, axes, False))
        check_same(binary32.max_reduce(x, axes, True), ref_max(x, axes, True))
    y = x.T.copy()  # reduce over axis 0 with a strided layout
    check_same(binary32.sum_left_fold(y, (0,), True), ref_sum(y, (0,), True))
    # order matters: 1e8 + 1 + ... + 1 - 1e8 gives 0 left to right
    z = np.array([1e8] + [1.0] * 100 + [-1e8], dtype=F32)
    assert bits_of(binary32.sum_left_fold(z, (0,), False)) == 0


def test_reduction_semantics() -> None:
    neg0 = np.array([-0.0, -0.0], dtype=F32)
    assert bits_of(binary32.sum_left_fold(neg0, (0,), False)) == 0  # +0 seed
    assert bits_of(binary32.max_reduce(neg0, (0,), False)) == SIGN_BIT
    assert bits_of(binary32.max_reduce(np.zeros(0, dtype=F32), (0,), False)) == NEG_INF
    assert binary32.sum_left_fold(np.zeros((2, 0), dtype=F32), (1,), True).shape == (2, 1)
    for bad in [(1, 0), (0, 0), (2,), (-1,)]:
        with pytest.raises(ShapeError):
            binary32.sum_left_fold(np.zeros((2, 2), dtype=F32), bad, False)


@st.composite
def matmul_operands(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    m, k, n = draw(st.integers(0, 4)), draw(st.integers(0, 5)), draw(st.integers(0, 4))
    batch_a = tuple(draw(st.lists(st.sampled_from([1, 2]), max_size=2)))
    kept = batch_a[len(batch_a) - draw(st.integers(0, len(batch_a))) :]  # a suffix of batch_a
    batch_b = tuple(1 if draw(st.booleans()) else s for s in kept)
    shape_a = (k,) if draw(st.booleans()) else batch_a + (m, k)
    shape_b = (k,) if draw(st.booleans()) else batch_b + (k, n)
    values = st.one_of(float_bits(-100.0, 100.0), fold_values)
    a = array_from_bits(
        draw(st.lists(values, min_size=math.prod(shape_a), max_size=math.prod(shape_a)))
    )
    b = array_from_bits(
        draw(st.lists(values, min_size=math.prod(shape_b), max_size=math.prod(shape_b)))
    )
    return a.reshape(shape_a), b.reshape(shape_b)  # fmt: skip


def ref_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shape = np.matmul(np.zeros(a.shape), np.zeros(b.shape)).shape
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = np.broadcast_to(a2, batch + a2.shape[-2:])
    b3 = np.broadcast_to(b2, batch + b2.shape[-2:])
    out = np.empty(batch + (a2.shape[-2], b2.shape[-1]), dtype=F32)
    with np.errstate(all="ignore"):
        for idx in np.ndindex(*out.shape):
            *bi, i, j = idx
            acc = F32(0.0)
            for kk in range(a2.shape[-1]):
                acc = F32(acc + F32(a3[(*bi, i, kk)] * b3[(*bi, kk, j)]))
            out[idx] = acc
    return out.reshape(shape)


@settings(max_examples=300, deadline=None)
@given(ops=matmul_operands())
def test_matmul_is_a_left_fold(ops: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = ops
    check_same(binary32.matmul_left_fold(a, b), ref_matmul(a, b))


def test_matmul_larger_and_errors() -> None:
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((2, 7, 40)) * 1e3).astype(F32)
    b = (rng.standard_normal((40, 6)) * 1e-3).astype(F32)
    check_same(binary32.matmul_left_fold(a, b), ref_matmul(a, b))
    # Separate multiply and add: a product that rounds differently from an fma would.
    x = np.array([[1 + 2.0**-12, 1.0]], dtype=F32)
    y = np.array([[1 + 2.0**-12], [2.0**-30]], dtype=F32)
    check_same(binary32.matmul_left_fold(x, y), ref_matmul(x, y))
    for sa, sb in [((2, 3), (4, 2)), ((3,), (4,)), ((2, 2, 3), (3, 3, 2)), ((), (2,))]:
        with pytest.raises(ShapeError):
            binary32.matmul_left_fold(np.zeros(sa, dtype=F32), np.zeros(sb, dtype=F32))


def test_float32_scalar_reference_is_sane() -> None:
    # The fold references above trust NumPy float32 scalar + and *; spot-check them.
    for a, b in [(1.0, 2.0**-24), (1.0, 3 * 2.0**-25), (2.0**-149, 2.0**-149), (3e38, 3e38)]:
        fa, fb = F32(a), F32(b)
        with np.errstate(all="ignore"):
            assert bits_of(F32(fa + fb)) == ref_add(bits_of(fa), bits_of(fb))
            assert bits_of(F32(fa * fb)) == ref_mul(bits_of(fa), bits_of(fb))
    assert bits_of(from_bits(0x00000001)) == 1
