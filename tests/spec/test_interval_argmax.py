"""argmax_mask over intervals: an enclosure of the first-maximum mask of every real point
(1 when decided, 0 when impossible, [0, 1] when the point decides)."""

from __future__ import annotations

from fractions import Fraction as Q

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec import functional as F
from torchlean.spec.fields.base import first_max_mask
from torchlean.spec.fields.interval import interval, mpf_to_fraction
from torchlean.spec.tensor import Tensor, tensor


def _ends(t: object) -> list[tuple[Q, Q]]:
    data = np.asarray(t.data, dtype=object).reshape(-1)  # type: ignore[attr-defined]
    return [(mpf_to_fraction(x.a), mpf_to_fraction(x.b)) for x in data]


def test_decided_undecided_and_impossible_positions() -> None:
    from mpmath import iv

    x = Tensor(np.array([iv.mpf([0, 1]), iv.mpf([0.5, 2]), iv.mpf([3, 4])], dtype=object),
               interval)
    assert _ends(F.argmax_mask(x, 0)) == [(0, 0), (0, 0), (1, 1)]
    y = tensor([Q(1, 3), Q(1, 3)], "interval")  # equal enclosures: either can be first
    assert _ends(F.argmax_mask(y, 0)) == [(0, 1), (0, 1)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-4, 4), st.integers(0, 3)), min_size=1, max_size=5),
       st.data())
def test_the_mask_of_every_point_lies_in_the_enclosure(spans: list[tuple[int, int]],
                                                        data: st.DataObject) -> None:
    from mpmath import iv

    boxes = [(Q(lo), Q(lo + w)) for lo, w in spans]
    x = Tensor(np.array([iv.mpf([int(lo), int(hi)]) for lo, hi in boxes], dtype=object),
               interval)
    enclosure = _ends(F.argmax_mask(x, 0))
    point = [data.draw(st.integers(int(lo), int(hi))) for lo, hi in boxes]
    mask = first_max_mask(np.array(point, dtype=object), (0,))
    for (lo, hi), m in zip(enclosure, mask.reshape(-1), strict=True):
        assert lo <= int(m) <= hi
