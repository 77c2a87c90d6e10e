"""Input-splitting branch and bound: verdicts against a dense grid, trees that cover."""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from torchlean import nn
from torchlean.verify import bounds
from torchlean.verify.vnn.bab import Problem, branch_and_bound, refuted_rows

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


def _run(net: Any, d: float) -> Any:
    graph = bounds.as_graph(net, net.params, (1, 2))
    assert graph is not None

    def bound(lo: Arr, hi: Arr) -> Arr:
        return bounds.crown(net, net.params, lo, hi).lower

    def evaluate(x: Arr) -> Arr:
        return _forward(net, x)

    def confirm(x: Arr) -> bool:
        return bool(_forward(net, x[None, :])[0, 0] <= d)

    return branch_and_bound(_problem(d), bound, evaluate, confirm,
                            deadline=time.monotonic() + 60, batch=64)


@pytest.fixture(scope="module")
def net_and_min() -> tuple[Any, float]:
    net = _net()
    g = np.linspace(-1, 1, 401)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return net, float(_forward(net, pts).min())


def test_holds_below_the_minimum_and_the_leaves_cover_the_box(net_and_min: Any) -> None:
    net, ymin = net_and_min
    res = _run(net, ymin - 0.05)
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


def test_violated_above_the_minimum(net_and_min: Any) -> None:
    net, ymin = net_and_min
    res = _run(net, ymin + 0.05)
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
