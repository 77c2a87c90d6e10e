"""Tensor.to / astype, tl.tensor of a Tensor, and numbers written as text."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.spec.errors import DataFormatError, DomainError
from torchlean.spec.fields.ieee32 import fraction_to_float32
from torchlean.spec.fields.interval import mpf_to_fraction

FIELDS = ["float", "float32", "ieee32exec", "exact", "interval"]


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_to_exact_is_the_floats_exact_value(v: float) -> None:
    t = tl.tensor([v], dtype="float32")
    assert t.to("exact").numpy()[0] == Fraction(v)
    assert tl.tensor(t, dtype="exact").numpy()[0] == Fraction(v)
    assert t.astype("exact").numpy()[0] == Fraction(v)


@settings(max_examples=60, deadline=None)
@given(st.fractions(max_denominator=10**12).filter(lambda q: abs(q) < 10**30))
def test_exact_to_float32_rounds_once_to_nearest(q: Fraction) -> None:
    t = tl.tensor([q], dtype="exact")
    assert t.to("float32").numpy()[0] == fraction_to_float32(q)
    assert t.to("ieee32exec").numpy()[0] == fraction_to_float32(q)
    assert t.to("float").numpy()[0] == float(q)  # CPython's int / int rounds correctly


def test_no_double_rounding_into_float32() -> None:
    # 1 + 2^-24 + 2^-60: binary64 first rounds it to 1 + 2^-24, a float32 tie that goes
    # to 1.0; the real value lies above the tie, so the one correct rounding is 1 + 2^-23.
    q = 1 + Fraction(1, 2**24) + Fraction(1, 2**60)
    assert tl.tensor([q], dtype="exact").to("float32").numpy()[0] == np.float32(1 + 2**-23)
    assert tl.tensor([str(q)], dtype="float32").numpy()[0] == np.float32(1 + 2**-23)


@settings(max_examples=40, deadline=None)
@given(st.fractions(max_denominator=1000).filter(lambda q: abs(q) < 10**6))
def test_text_reads_the_exact_rational_in_every_field(q: Fraction) -> None:
    for text in (f"{q.numerator}/{q.denominator}", f" {q.numerator}/{q.denominator} "):
        assert tl.tensor([text], dtype="exact").numpy()[0] == q
    iv = tl.tensor([str(q)], dtype="interval").numpy()[0]
    assert mpf_to_fraction(iv.a) <= q <= mpf_to_fraction(iv.b)  # an enclosure


def test_decimal_text_is_exact_not_the_nearest_float() -> None:
    t = tl.tensor([["1/10", "0.1"], ["-2.5e-3", "7"]], dtype="exact")
    assert t.numpy().tolist() == [[Fraction(1, 10)] * 2, [Fraction(-1, 400), Fraction(7)]]
    assert tl.tensor(np.array(["0.1"]), dtype="float32").numpy()[0] == np.float32(0.1)


@pytest.mark.parametrize("text", ["1e999999999", "abc", "__import__('os').system('true')",
                                  "1/0", "", "0x10", "1//2", "2**3"])
@pytest.mark.parametrize("dtype", FIELDS)
def test_bad_text_is_a_typed_error_naming_the_value(text: str, dtype: str) -> None:
    with pytest.raises(DataFormatError, match=r"item \[1\]") as info:
        tl.tensor(["1", text], dtype=dtype)
    assert repr(text) in str(info.value)


def test_nan_text_is_a_float_but_not_a_rational() -> None:
    assert np.isnan(tl.tensor(["nan"], dtype="float32").numpy()[0])
    assert tl.tensor(["-inf"], dtype="float").numpy()[0] == -np.inf
    with pytest.raises(DataFormatError, match="no NaN or infinity"):
        tl.tensor(["nan"], dtype="exact")


def test_nonfinite_floats_have_no_exact_value() -> None:
    with pytest.raises(DomainError, match=r"item \[0, 1\].*nan"):
        tl.tensor([[1.0, float("nan")]], dtype="float32").to("exact")


def test_an_interval_converts_only_when_it_is_one_point() -> None:
    assert tl.tensor([3], dtype="interval").to("exact").numpy()[0] == 3
    with pytest.raises(DomainError, match="not a single number"):
        tl.tensor(["1/3"], dtype="interval").to("exact")


@pytest.mark.parametrize("src", FIELDS)
@pytest.mark.parametrize("dst", FIELDS)
def test_dyadic_values_convert_between_every_pair_of_fields(src: str, dst: str) -> None:
    values = [0.5, -3.0, 0.0, 1024.25]  # exact in every field
    out = tl.tensor(values, dtype=src).to(dst)
    assert out.field.name == dst and out.shape == (4,)
    host = out.numpy()
    got = [mpf_to_fraction(v) if dst == "interval" else Fraction(v) if dst == "exact"
           else Fraction(float(v)) for v in host]
    assert got == [Fraction(v) for v in values]
    if src == dst:
        t = tl.tensor(values, dtype=src)
        assert t.to(dst) is t
