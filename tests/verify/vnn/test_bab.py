"""Input-splitting branch and bound: verdicts against a dense grid, trees that cover."""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean import nn
from torchlean.verify import bounds
from torchlean.verify.vnn.bab import (
    Problem,
    _split_axes,
    _take,
    branch_and_bound,
    refuted_rows,
)

Arr = np.ndarray[Any, Any]


def _net() -> Any:
    model = nn.sequential(nn.linear(2, 12), nn.relu(), nn.linear(12, 12), nn.relu(),
                          nn.linear(12, 1))
    return nn.build(model, seed=3)


def _forward(net: Any, x: Arr) -> Arr:
    p = {k: np.asarray(v.numpy(), dtype=np.float64) for k, v in net.params.items()}
    names = sorted(p)
    ws = [p[n] for n in names if n.endswith("weight")]
    bs = [p[n] for n in names if n.endswith("bias")]
    h = x
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = h @ w.T + b
        if i < len(ws) - 1:
            h = np.maximum(h, 0.0)
    return h


def _problem(d: float) -> Problem:
    # unsafe: y <= d  (row 0: C = [1])
    return Problem(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), ((0,),), np.array([d]))


def _run(net: Any, d: float, steer: bool = False) -> Any:
    graph = bounds.as_graph(net, net.params, (1, 2))
    assert graph is not None

    def bound(lo: Arr, hi: Arr) -> Arr:
        return bounds.crown(net, net.params, lo, hi).lower

    def evaluate(x: Arr) -> Arr:
        return _forward(net, x)

    def confirm(x: Arr) -> bool:
        return bool(_forward(net, x[None, :])[0, 0] <= d)

    def ibp(lo: Arr, hi: Arr) -> Arr:
        return bounds.ibp(net, net.params, lo, hi).lower

    return branch_and_bound(_problem(d), bound, evaluate, confirm,
                            deadline=time.monotonic() + 60, batch=64,
                            split_bound=ibp if steer else None)


@pytest.fixture(scope="module")
def net_and_min() -> tuple[Any, float]:
    net = _net()
    g = np.linspace(-1, 1, 401)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return net, float(_forward(net, pts).min())


@pytest.mark.parametrize("steer", [False, True])
def test_holds_below_the_minimum_and_the_leaves_cover_the_box(net_and_min: Any,
                                                               steer: bool) -> None:
    """With either split rule (the function's sensitivity, or IBP on the halves)."""
    net, ymin = net_and_min
    res = _run(net, ymin - 0.05, steer)
    assert res.status == "holds"
    boxes = res.tree.boxes(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    leaves = [boxes[i] for i in res.tree.leaves]
    volume = sum((Fraction(hi[0]) - Fraction(lo[0])) * (Fraction(hi[1]) - Fraction(lo[1]))
                 for lo, hi in leaves)
    assert volume == 4  # leaves tile the root (splits are exact, no overlap beyond faces)
    split_boxes = {s.box for s in res.tree.splits}
    assert split_boxes.isdisjoint(res.tree.leaves)
    # every leaf is refuted by a fresh bound of its own box
    lows = np.stack([lo for lo, _ in leaves])
    highs = np.stack([hi for _, hi in leaves])
    again = refuted_rows(bounds.crown(net, net.params, lows, highs).lower, _problem(ymin - 0.05))
    assert all(v is not None for v in again)


@pytest.mark.parametrize("steer", [False, True])
def test_violated_above_the_minimum(net_and_min: Any, steer: bool) -> None:
    net, ymin = net_and_min
    res = _run(net, ymin + 0.05, steer)
    assert res.status == "violated"
    assert res.counterexample is not None
    assert _forward(net, res.counterexample[None, :])[0, 0] <= ymin + 0.05


def test_timeout_is_reported() -> None:
    net = _net()
    res = branch_and_bound(_problem(0.0), lambda lo, hi: np.full((lo.shape[0], 1), -1.0),
                           lambda x: np.ones((x.shape[0], 1)), lambda x: False,
                           deadline=time.monotonic() - 1)
    assert res.status == "timeout"
    assert net is not None


def test_bad_problems_are_refused() -> None:
    with pytest.raises(ValueError, match="lower <= upper"):
        Problem(np.array([1.0]), np.array([0.0]), ((0,),), np.array([0.0]))
    with pytest.raises(ValueError, match="groups name rows"):
        Problem(np.array([0.0]), np.array([1.0]), ((0, 1),), np.array([0.0]))


def test_batches_start_small_fill_up_and_shrink_near_the_deadline() -> None:
    """A bound that costs 10 ms per box and never refutes: the first batch has at most 16
    boxes (to measure the cost), later ones are filled by unbounded splits, and the search
    stops within about one box's cost of the deadline."""
    sizes: list[int] = []

    def slow(lo: Arr, hi: Arr) -> Arr:
        sizes.append(lo.shape[0])
        time.sleep(0.01 * lo.shape[0])
        return np.full((lo.shape[0], 1), -1.0)

    start = time.monotonic()
    res = branch_and_bound(_problem(0.0), slow, lambda x: np.ones((x.shape[0], 1)),
                           lambda x: False, deadline=start + 1.0, batch=64)
    took = time.monotonic() - start
    assert res.status == "timeout"
    assert sizes[0] <= 16 and max(sizes) > 16
    assert took < 1.0 + 0.3  # last batch sized to the time left (10 ms a box, slack for load)
    boxes = res.tree.boxes(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    assert len(boxes) == 1 + 2 * len(res.tree.splits)


def _refuted_by_loop(lower: Arr, problem: Problem) -> list[tuple[int, ...] | None]:
    out: list[tuple[int, ...] | None] = []
    for b in range(lower.shape[0]):
        rows = []
        for g in problem.groups:
            hit = [r for r in g if lower[b, r] > problem.d_up[r]]
            if not hit:
                break
            rows.append(max(hit, key=lambda r: lower[b, r] - problem.d_up[r]))
        out.append(tuple(rows) if len(rows) == len(problem.groups) else None)
    return out


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_refuted_rows_names_the_furthest_refuting_row_of_every_group(data: Any) -> None:
    rows = data.draw(st.integers(1, 5))
    groups = data.draw(st.lists(st.lists(st.integers(0, rows - 1), min_size=1, max_size=4,
                                         unique=True).map(tuple), min_size=1, max_size=3))
    n = data.draw(st.integers(1, 6))
    cells = st.sampled_from([-1.0, 0.0, 0.5, 1.0, np.inf, -np.inf])
    lower = np.array(data.draw(st.lists(cells, min_size=n * rows, max_size=n * rows)))
    d = np.array(data.draw(st.lists(st.sampled_from([-0.5, 0.0, 0.25]), min_size=rows,
                                    max_size=rows)))
    problem = Problem(np.zeros(1), np.ones(1), tuple(groups), d)
    lower = lower.reshape(n, rows)
    assert refuted_rows(lower, problem) == _refuted_by_loop(lower, problem)


def test_the_split_follows_the_bound_where_the_function_is_flat() -> None:
    """A function that ignores x1, whose bound is loosened by x1's width (like the ACAS Xu
    heading angle): central differences see nothing along x1, the bound on the halves
    does, and picks x1 until halving it gains less than halving x0."""
    problem = Problem(np.zeros(3), np.array([1.0, 8.0, 1.0]), ((0,),), np.array([0.0]))

    def evaluate(x: Arr) -> Arr:
        return (x[:, 0] + x[:, 2])[:, None]

    def loose(lo: Arr, hi: Arr) -> Arr:
        return (lo[:, 0] + lo[:, 2] - (hi[:, 1] - lo[:, 1]) - 0.1 * (hi[:, 0] - lo[:, 0]))[
            :, None]

    lo, hi = problem.lower[None], problem.upper[None]
    none = np.full((1, 1), -np.inf)
    assert _split_axes(lo, hi, none, problem, evaluate)[0] != 1
    assert _split_axes(lo, hi, none, problem, evaluate, loose)[0] == 1
    narrow = np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 0.05, 1.0]])
    assert _split_axes(*narrow, none, problem, evaluate, loose)[0] == 0


SLACK = 0.9  # the lateness allowed past a deadline (issue #18): one step or confirmation


def test_confirmations_that_would_end_past_the_deadline_are_not_started() -> None:
    """Every centre looks unsafe in floats and each exact confirmation takes 0.2 s and
    fails: the search stops before one that cannot finish in time, so it ends within
    one confirmation plus one step of the deadline."""
    calls: list[float] = []

    def confirm(x: Arr) -> bool:
        calls.append(time.monotonic())
        time.sleep(0.2)
        return False

    start = time.monotonic()
    res = branch_and_bound(_problem(0.0), lambda lo, hi: np.full((lo.shape[0], 1), -1.0),
                           lambda x: -np.ones((x.shape[0], 1)), confirm,
                           deadline=start + 1.0, batch=8)
    took = time.monotonic() - start
    assert res.status == "timeout"
    assert len(calls) >= 2
    assert took < 1.0 + SLACK
    assert calls[-1] + 0.2 <= start + 1.0 + 0.1  # the last one started had time to finish


def test_the_boxes_nearest_to_unsafe_are_bounded_first() -> None:
    box = np.zeros(1)
    stack = [(i, box, box, p) for i, p in enumerate([3.0, -1.0, 2.0, -1.0, 0.5])]
    taken = _take(stack, 3)
    assert [t[0] for t in taken] == [3, 1, 4]  # least margin first, newest among equals
    assert [t[0] for t in stack] == [0, 2]
    assert [t[0] for t in _take(stack, 5)] == [2, 0] and not stack


def test_past_the_open_box_limit_the_order_is_depth_first(monkeypatch: Any) -> None:
    import torchlean.verify.vnn.bab as bab

    monkeypatch.setattr(bab, "_MAX_OPEN", 4)
    box = np.zeros(1)
    stack = [(i, box, box, p) for i, p in enumerate([3.0, -1.0, 2.0, -1.0, 0.5])]
    assert [t[0] for t in _take(stack, 2)] == [4, 3]
    assert [t[0] for t in stack] == [0, 1, 2]
