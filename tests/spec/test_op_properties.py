"""The properties each op record declares (kind, attributes, rational, linear, piecewise
linear, monotone) hold of its forward rule, on hypothesis-drawn applications.

Checks are exact (the `exact` field, Fractions) wherever the op is rational, so an
equality or inequality is tested with no tolerance; monotone ops without a rational
value are checked in binary64, where every one of them is computed by a monotone
correctly rounded or libm function on the tested range (a libm that is not monotone
there would be a finding, not noise).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_references import RATIONAL_OPS
from strategies import CASE_TAGS, OpCase, op_cases

from torchlean.spec import get_field
from torchlean.spec.errors import UnsupportedOperation
from torchlean.spec.ops import OPS
from torchlean.spec.ops.registry import ATTR_KINDS, KINDS, OpDef
from torchlean.spec.tensor import Tensor

EXACT = get_field("exact")
FLOAT = get_field("float")
ALL = sorted(OPS)


def _run(case: OpCase, fld: Any, inputs: tuple[Any, ...] | None = None) -> np.ndarray[Any, Any]:
    xs = case.tensors(fld) if inputs is None else tuple(Tensor(fld.asarray(x), fld)
                                                       for x in inputs)
    out = OPS[case.tag].forward(fld, tuple(x.data for x in xs), case.attrs)
    return np.asarray(out, dtype=object)


def test_every_op_declares_a_kind_and_attribute_kinds() -> None:
    for tag, op in OPS.items():
        assert op.kind in KINDS, tag
        assert all(kind in ATTR_KINDS for _, kind in op.attr_schema), tag
    assert CASE_TAGS == set(OPS), "every op needs a case builder in tests/spec/strategies"


def test_a_record_without_a_kind_is_refused() -> None:
    rec = OPS["add"]
    with pytest.raises(ValueError, match="kind"):
        OpDef("toy", 1, rec.shape, rec.forward)
    with pytest.raises(ValueError, match="piecewise linear"):
        OpDef("toy", 1, rec.shape, rec.forward, kind="elementwise", linear=True)
    with pytest.raises(ValueError, match="attribute"):
        OpDef("toy", 1, rec.shape, rec.forward, kind="elementwise",
              attr_schema=(("k", "float"),))


def test_rational_is_the_tests_own_list() -> None:
    assert {t for t, op in OPS.items() if op.rational} == RATIONAL_OPS


@pytest.mark.parametrize("tag", ALL)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_attribute_schema_names_the_attributes(tag: str, data: st.DataObject) -> None:
    case = data.draw(op_cases(tag))
    assert sorted(case.attrs) == sorted(name for name, _ in OPS[tag].attr_schema)


@pytest.mark.parametrize("tag", sorted(t for t in OPS if not OPS[t].rational))
def test_ops_not_rational_are_refused_by_the_exact_field(tag: str) -> None:
    x = EXACT.asarray(np.array([Fraction(2), Fraction(1, 3)], dtype=object))
    with pytest.raises(UnsupportedOperation):
        OPS[tag].forward(EXACT, (x,), {"axis": 0})


def _scaled(case: OpCase, c: Fraction) -> tuple[Any, ...]:
    return tuple(np.asarray(x * c, dtype=object) for x in case.inputs)


@pytest.mark.parametrize("tag", sorted(t for t in OPS if OPS[t].linear))
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_linear_ops_are_additive_and_homogeneous(tag: str, data: st.DataObject) -> None:
    a = data.draw(op_cases(tag))
    b_in = tuple(data.draw(st.lists(st.fractions(-4, 4, max_denominator=16),
                                    min_size=x.size, max_size=x.size)) for x in a.inputs)
    b = tuple(np.asarray(v, dtype=object).reshape(x.shape) for v, x in zip(b_in, a.inputs,
                                                                         strict=True))
    c = data.draw(st.fractions(-3, 3, max_denominator=8))
    fa, fb = _run(a, EXACT), _run(a, EXACT, b)
    both = tuple(np.asarray(x + y, dtype=object) for x, y in zip(a.inputs, b, strict=True))
    assert np.array_equal(_run(a, EXACT, both), fa + fb)
    assert np.array_equal(_run(a, EXACT, _scaled(a, c)), fa * c)


@pytest.mark.parametrize("tag", sorted(t for t in OPS if OPS[t].piecewise_linear))
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_piecewise_linear_ops_are_positively_homogeneous(tag: str, data: st.DataObject) -> None:
    # every piecewise-linear op of the table has its pieces meet at 0 (relu, abs, max, ...)
    case = data.draw(op_cases(tag))
    c = data.draw(st.fractions(0, 5, max_denominator=8))
    assert np.array_equal(_run(case, EXACT, _scaled(case, c)), _run(case, EXACT) * c)


@pytest.mark.parametrize("tag", sorted(t for t in OPS if OPS[t].monotone))
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_monotone_ops_are_nondecreasing(tag: str, data: st.DataObject) -> None:
    case = data.draw(op_cases(tag, smooth=True))
    bumps = tuple(np.asarray(data.draw(st.lists(st.fractions(0, 2, max_denominator=16),
                                                min_size=x.size, max_size=x.size)),
                             dtype=object).reshape(x.shape) for x in case.inputs)
    up = tuple(np.asarray(x + d, dtype=object) for x, d in zip(case.inputs, bumps, strict=True))
    if OPS[tag].rational:
        lo, hi = _run(case, EXACT), _run(case, EXACT, up)
    else:
        lo = _run(case, FLOAT).astype(np.float64)
        hi = np.asarray(OPS[tag].forward(FLOAT, tuple(FLOAT.asarray(np.asarray(
            x, dtype=np.float64)) for x in up), case.attrs), dtype=np.float64)
    assert np.all(lo <= hi)
