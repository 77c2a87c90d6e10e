"""Random properties printed as VNN-LIB and read back are the same exact property."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec.errors import DataFormatError
from torchlean.verify.vnn.vnnlib import (
    Case,
    InputBox,
    LinearConstraint,
    Property,
    exact_decimal,
    format_vnnlib,
    parse_vnnlib,
)

# decimals (p / 10^k), binary fractions and fractions with no decimal expansion (1/3)
numbers = st.one_of(
    st.builds(lambda p, k: Fraction(p, 10**k), st.integers(-10**12, 10**12), st.integers(0, 12)),
    st.fractions(max_denominator=50),
    st.builds(lambda p, k: Fraction(p, 2**k), st.integers(-10**6, 10**6), st.integers(0, 60)),
)


@st.composite
def boxes(draw: st.DrawFn, n: int) -> InputBox:
    lo, hi, ls, us = [], [], [], []
    for _ in range(n):
        a, b = sorted((draw(numbers), draw(numbers)))
        strict = (draw(st.booleans()), draw(st.booleans())) if a < b else (False, False)
        lo.append(a)
        hi.append(b)
        ls.append(strict[0])
        us.append(strict[1])
    return InputBox(tuple(lo), tuple(hi), tuple(ls), tuple(us))


@st.composite
def constraints(draw: st.DrawFn, m: int) -> LinearConstraint:
    coeffs = draw(st.lists(numbers, min_size=m, max_size=m).filter(any))
    return LinearConstraint(tuple(coeffs), draw(numbers), draw(st.booleans()))


@st.composite
def properties(draw: st.DrawFn) -> Property:
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    bxs = draw(st.lists(boxes(n), min_size=1, max_size=3, unique=True))
    cases = []
    for b in bxs:
        unsafe = draw(st.lists(st.lists(constraints(m), min_size=0, max_size=3).map(tuple),
                               min_size=1, max_size=3))
        cases.append(Case(b, tuple(unsafe), 0))
    return Property("p.vnnlib", n, m, tuple(cases))


def _read(text: str) -> Property:
    return parse_vnnlib(iter(enumerate(text.splitlines(keepends=True), start=1)), "p.vnnlib")


def _same(a: Property, b: Property) -> bool:
    # `line` records where a case starts in its file; the generated ones have none
    return (a.num_inputs, a.num_outputs) == (b.num_inputs, b.num_outputs) and [
        (c.box, c.unsafe) for c in a.cases] == [(c.box, c.unsafe) for c in b.cases]


@settings(max_examples=60, deadline=None)
@given(properties())
def test_print_then_parse_is_the_identity(prop: Property) -> None:
    back = _read(format_vnnlib(prop))
    assert _same(back, prop)
    assert all(c.line > 0 for c in back.cases)


def test_a_benchmark_file_round_trips() -> None:
    from test_vnnlib import BENCH_FILES  # the located vnncomp2021 files, if any

    if not BENCH_FILES:
        pytest.skip("vnncomp2021 benchmarks not present")
    for path in [f for f in BENCH_FILES if "acasxu" in f or "prop_0_0.03" in f]:
        with open(path, encoding="utf-8") as f:
            first = _read(f.read())
        assert _same(_read(format_vnnlib(first)), first)


TOKENS = ["(", ")", "(", ")", "assert", "and", "or", "not", "<=", ">=", "<", ">", "+", "-", "*",
          "/", "X_0", "X_1", "Y_0", "Y_1", "X_01", "declare-const", "Real", "0", "0.5", "-1",
          "1e3", "-2.5E-1", ".5", "1.", "1e99999", "|q|", ";c\n", "\n", "true", "=", "ite"]
DECLS = "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)" \
        "(declare-const Y_1 Real)\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.booleans())
def test_any_token_soup_parses_or_raises_data_format_error(tokens: list[str],
                                                          declare: bool) -> None:
    text = (DECLS if declare else "") + " ".join(tokens)
    try:
        prop = _read(text)
    except DataFormatError as e:
        assert e.where.startswith("p.vnnlib")
    else:
        assert all(len(c.box.lower) == prop.num_inputs for c in prop.cases)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["(", ")"]), max_size=30), st.integers(0, 3))
def test_parenthesis_soup_inside_an_assert(parens: list[str], where: int) -> None:
    body = "(assert (<= -1 X_0 1))(assert (<= -1 X_1 1))(assert (<= Y_0 1))"
    cut = [m.start() for m in re.finditer(r"\(", body)][where]
    text = DECLS + body[:cut] + "".join(parens) + body[cut:]
    try:
        _read(text)
    except DataFormatError as e:
        assert re.match(r"p\.vnnlib:\d+:\d+$", e.where)


@settings(max_examples=200, deadline=None)
@given(numbers, st.integers(1, 20))
def test_exact_decimal_is_exact_or_none(q: Fraction, max_digits: int) -> None:
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    text = exact_decimal(q)
    assert (text is None) == (d != 1)
    if text is not None:
        assert Fraction(text) == q
        assert re.fullmatch(r"-?[0-9]+(\.[0-9]*[1-9])?", text), text  # no exponent, no trailing 0
    short = exact_decimal(q, max_digits)
    assert short is None or short == text
    if text is not None and short is None:  # refused only when too long
        fraction = text.partition(".")[2]
        assert len(fraction) > max_digits or len(str(abs(q.numerator))) > max_digits


def test_exact_decimal_examples() -> None:
    assert exact_decimal(Fraction(-1, 8)) == "-0.125"
    assert exact_decimal(Fraction(3)) == "3"
    assert exact_decimal(Fraction(1, 3)) is None
    assert exact_decimal(Fraction(1, 2**30), max_digits=20) is None
