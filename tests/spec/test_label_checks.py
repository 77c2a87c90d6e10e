"""check_integral_labels: the vectorised check of numeric labels agrees with the
element-by-element check that object arrays (Fractions) get, on any input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec.fields.base import check_integral_labels

LABEL = st.one_of(st.integers(-3, 6), st.sampled_from([0.5, 2.0, -0.0, 1e30, np.inf, np.nan]),
                  st.floats(-4, 8))


def outcome(values: np.ndarray, n: int) -> tuple[str, object]:
    try:
        return "ok", check_integral_labels(values, n).tolist()
    except ValueError as e:
        found = re.search(r"at flat index (\d+)", str(e))
        assert found, str(e)
        return "error", int(found.group(1))


@settings(deadline=None, max_examples=200)
@given(st.lists(LABEL, min_size=0, max_size=8), st.integers(1, 5))
def test_vectorised_and_elementwise_checks_agree(labels: list[object], n: int) -> None:
    numeric = np.array(labels, dtype=np.float64)
    as_objects = np.array([float(v) for v in labels] or [], dtype=object)
    assert outcome(numeric, n) == outcome(as_objects, n)
    if all(float(v).is_integer() and abs(float(v)) < 2**62 for v in labels):  # int dtype path
        ints = np.array([int(v) for v in labels], dtype=np.int64)
        assert outcome(ints, n) == outcome(as_objects, n)


def test_the_first_bad_label_is_named() -> None:
    with pytest.raises(ValueError, match=r"label np.float64\(2.5\) at flat index 3"):
        check_integral_labels(np.array([[0.0, 1.0], [2.0, 2.5]]), 3)
