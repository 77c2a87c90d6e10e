"""Field conversions and naming: how numbers enter each field, and how fields are found.

- `exact` takes floats, ints and NumPy numbers at their exact rational value;
- `ieee32exec` rounds Fractions to the nearest binary32, ties to even (checked against a
  rounding function of this file's own, over ties, subnormals and the overflow edge);
- `get_field` maps the --dtype names; `interval` fields of different precisions coexist.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_references import endpoints

from torchlean.spec import (
    FIELD_NAMES,
    Field,
    FieldMismatchError,
    exact,
    float32,
    float64,
    get_field,
    ieee32exec,
    interval,
    tensor,
)
from torchlean.spec import functional as F
from torchlean.spec.fields import IntervalField
from torchlean.spec.fields.ieee32 import fraction_to_float32

Q = Fraction
F32 = np.float32
MAX32 = Q(2) ** 128 - Q(2) ** 104  # the largest finite binary32
OVERFLOW = Q(2) ** 128 - Q(2) ** 103  # halfway to 2^128: from here on, round to inf


# -- exact ----------------------------------------------------------------------------------
@settings(deadline=None, max_examples=100)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=6))
def test_exact_takes_floats_at_their_exact_value(values: list[float]) -> None:
    got = tensor(values, "exact").numpy()
    assert all(type(v) is Fraction for v in got)
    assert list(got) == [Q(v) for v in values]  # Fraction(float) is the float's exact value


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1,
                max_size=6),
       st.integers(-(2**70), 2**70))
def test_exact_takes_numpy_numbers_and_big_ints_exactly(values: list[float], big: int) -> None:
    f32 = np.asarray(values, dtype=F32)
    assert list(tensor(f32, "exact").numpy()) == [Q(float(v)) for v in f32]
    assert tensor([big, big + 1], "exact").numpy().tolist() == [Q(big), Q(big + 1)]
    assert tensor(np.asarray([7, -3], dtype=np.int64), "exact").numpy().tolist() == [7, -3]


@pytest.mark.parametrize(("value", "error"), [
    (math.nan, ValueError), (math.inf, ValueError), (True, TypeError),
    ("nan", ValueError),  # text is read as a rational (tests/spec/test_convert.py); NaN is none
])
def test_exact_refuses_values_without_rational_value(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="exact"):
        tensor([1.0, value], "exact")


# -- ieee32exec rounding of Fractions -------------------------------------------------------
def round_to_binary32_bits(q: Fraction) -> int:
    """The bits of the binary32 nearest q, ties to even (an independent reference).

    q = n * 2^(e - 23) with the exponent e clamped to the subnormal floor -126; n is q's
    scaled value rounded half to even (`round` on a Fraction does that). A result at or
    beyond 2^128 is infinity; a negative q that rounds to zero gives -0.
    """
    sign = 0x80000000 if q < 0 else 0
    a = abs(q)
    if a == 0:
        return 0
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Q(2) ** e > a:
        e -= 1
    assert Q(2) ** e <= a < Q(2) ** (e + 1)
    quantum = Q(2) ** (max(e, -126) - 23)
    n = round(a / quantum)
    value = n * quantum
    if value >= Q(2) ** 128:
        return sign | 0x7F800000
    return sign | int(np.asarray(float(value), dtype=F32).view(np.uint32))  # exact: value fits


def bits(x: Any) -> int:
    return int(np.asarray(x, dtype=F32).view(np.uint32))


def value_of_bits(b: int) -> Fraction:
    return Q(float(np.asarray(b, dtype=np.uint32).view(F32)))


@st.composite
def ties_and_near_ties(draw: st.DrawFn) -> Fraction:
    """Midpoints between neighbouring binary32 values (exact ties), and values just off them."""
    b = draw(st.integers(0, 0x7F7FFFFE))
    lo, hi = value_of_bits(b), value_of_bits(b + 1)
    mid = (lo + hi) / 2
    off = draw(st.sampled_from([Q(0), Q(0), Q(1, 2**40), -Q(1, 2**40), Q(1, 3), -Q(1, 3)]))
    q = mid + off * (hi - lo)
    return -q if draw(st.booleans()) else q


@st.composite
def wide_rationals(draw: st.DrawFn) -> Fraction:
    """Rationals from far below the subnormals to far above the overflow edge."""
    num = draw(st.integers(-(2**200), 2**200))
    den = draw(st.integers(1, 2**200))
    scale = Q(2) ** draw(st.integers(-200, 200))
    return Q(num, den) * scale


@st.composite
def overflow_edge(draw: st.DrawFn) -> Fraction:
    base = draw(st.sampled_from([MAX32, OVERFLOW, Q(2) ** 128, Q(2) ** 127]))
    off = draw(st.sampled_from([Q(0), Q(1), -Q(1), Q(2) ** 102, -(Q(2) ** 102), Q(1, 7)]))
    q = base + off
    return -q if draw(st.booleans()) else q


@st.composite
def subnormal_region(draw: st.DrawFn) -> Fraction:
    k = draw(st.integers(-(2**24), 2**24))
    off = draw(st.sampled_from([Q(0), Q(1, 2), Q(1, 3), -Q(1, 2)]))
    return (k + off) * Q(2) ** -149


FRACTIONS = st.one_of(ties_and_near_ties(), wide_rationals(), overflow_edge(),
                      subnormal_region())


@settings(deadline=None, max_examples=400)
@given(FRACTIONS)
def test_fraction_to_float32_rounds_to_nearest_even(q: Fraction) -> None:
    expected = round_to_binary32_bits(q)
    got = fraction_to_float32(q)
    assert isinstance(got, np.float32)
    assert bits(got) == expected, (q, hex(bits(got)), hex(expected))


@settings(deadline=None, max_examples=60)
@given(st.lists(FRACTIONS, min_size=1, max_size=4))
def test_ieee32exec_tensors_and_constants_round_fractions(qs: list[Fraction]) -> None:
    expected = [round_to_binary32_bits(q) for q in qs]
    assert [bits(v) for v in tensor(qs, "ieee32exec").numpy()] == expected
    like = tensor([0.0], "ieee32exec")
    assert [bits(F.constant(like, q).numpy()) for q in qs] == expected
    assert bits(tensor(qs[0], "ieee32exec").numpy()) == expected[0]


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(), min_size=1, max_size=6))
def test_ieee32exec_rounds_binary64_once(values: list[float]) -> None:
    got = tensor(values, "ieee32exec").numpy()
    for g, v in zip(got, values, strict=True):
        if math.isnan(v):
            assert bits(g) == 0x7FC00000  # the canonical NaN
        elif math.isinf(v):
            assert bits(g) == (0xFF800000 if v < 0 else 0x7F800000)
        else:
            expected = round_to_binary32_bits(Q(v))
            if v == 0:  # Fraction has no -0: the sign comes from the float
                expected = 0x80000000 if math.copysign(1, v) < 0 else 0
            assert bits(g) == expected, (v, hex(bits(g)), hex(expected))


@pytest.mark.parametrize("q", [Q(2) ** 2000, -(Q(2) ** 1024), Q(3) ** 700 / 7])
def test_fraction_to_float32_beyond_binary64_gives_inf(q: Fraction) -> None:
    assert bits(fraction_to_float32(q)) == (0xFF800000 if q < 0 else 0x7F800000)


# -- names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FIELD_NAMES)
def test_get_field_names(name: str) -> None:
    fld = get_field(name)
    assert isinstance(fld, Field) and fld.name == name and repr(fld) == name
    assert get_field(fld) is fld
    assert get_field(name) is fld  # one shared instance per name


def test_get_field_instances_and_aliases() -> None:
    assert FIELD_NAMES == ("float", "float32", "ieee32exec", "exact", "interval")
    assert (get_field("float"), get_field("float64")) == (float64, float64)
    assert (get_field("float32"), get_field("ieee32exec")) == (float32, ieee32exec)
    assert (get_field("exact"), get_field("interval")) == (exact, interval)
    assert interval.prec == 113
    wide = get_field("interval200")
    assert isinstance(wide, IntervalField) and wide.prec == 200 and wide.name == "interval200"


@pytest.mark.parametrize("name", ["float16", "Float", "interval52", "intervalx", ""])
def test_get_field_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"float|prec") as info:
        get_field(name)
    if name != "interval52":
        assert all(n in str(info.value) for n in FIELD_NAMES)
        assert repr(name) in str(info.value)


def test_interval_fields_by_name_are_shared() -> None:
    a = tensor([1, 2], "interval200")
    b = tensor([3, 4], "interval200")
    assert (a + b).field is a.field


# -- interval precision -----------------------------------------------------------------------
@pytest.mark.parametrize("prec", [53, 80, 113, 200, 300])
def test_interval_precision_sets_endpoint_width(prec: int) -> None:
    fld = IntervalField(prec)
    assert fld.prec == prec and fld.ctx.prec == prec
    third = tensor([Q(1, 3)], fld).numpy()[0]
    lo, hi = endpoints(third)
    # The tightest enclosure of 1/3 in [1/4, 1/2) is one ulp, 2^-(prec + 1), wide.
    assert lo < Q(1, 3) < hi and hi - lo == Q(1, 2 ** (prec + 1))
    for raw in third._mpi_:
        assert int(raw[1]).bit_length() <= prec  # significands fit the precision
    assert tensor([0.1], fld).numpy()[0]._mpi_[0] == tensor([0.1], fld).numpy()[0]._mpi_[1]


def test_interval_fields_of_different_precision_coexist() -> None:
    mp_prec, iv_prec = mpmath.mp.prec, mpmath.iv.prec
    narrow, wide = IntervalField(53), IntervalField(200)
    x53, x200 = tensor([Q(1, 3)], narrow), tensor([Q(1, 3)], wide)
    first = F.exp(x53).numpy()[0]._mpi_
    wide_result = F.exp(x200).numpy()[0]
    again = F.exp(x53).numpy()[0]._mpi_
    assert first == again  # the 200-bit work did not disturb the 53-bit field
    lo53, hi53 = endpoints(F.exp(x53).numpy()[0])
    lo200, hi200 = endpoints(wide_result)
    assert lo53 <= lo200 < hi200 <= hi53 and (hi200 - lo200) < (hi53 - lo53) / 2**100
    assert (mpmath.mp.prec, mpmath.iv.prec) == (mp_prec, iv_prec)  # globals untouched
    with pytest.raises(FieldMismatchError):
        x53 + x200


def test_interval_takes_floats_as_points() -> None:
    values = [0.1, -2.5, 1e-300, 3.0e300]
    for v, x in zip(values, tensor(values, "interval").numpy(), strict=True):
        assert endpoints(x) == (Q(v), Q(v))
