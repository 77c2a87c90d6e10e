"""alpha-CROWN inside input splitting: the refining bound sees only the boxes the plain
bound leaves open, decides their verdict alone, keeps its data on the leaves it proves and
fits the deadline; batched alpha-CROWN bounds are sound and exactly the pass with their
grid slopes; the engine's trees with alpha leaves pass the exact certificate checker."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vnnlib_text import header, prop

from torchlean.spec import nn
from torchlean.verify.bounds import as_graph, crown
from torchlean.verify.vnn import engine
from torchlean.verify.vnn.bab import Problem, _worth_refining, branch_and_bound
from torchlean.verify.vnn.batched import BatchedModel
from torchlean.verify.vnn.engine import verify_instance
from torchlean.verify.vnn.relu_bab import SLOPE_BITS
from torchlean.verify.vnn.tree_certificate import FORMAT_SLOPES, check_tree_certificate

Arr = np.ndarray[Any, Any]
F = Fraction
ROOT_LO, ROOT_HI = np.array([0.0, 0.0]), np.array([1.0, 1.0])


def _never(lo: Arr, hi: Arr) -> Arr:
    return np.full((lo.shape[0], 1), -1.0)


def _nowhere_unsafe(x: Arr) -> Arr:
    return np.ones((x.shape[0], 1))


def test_refine_sees_only_open_boxes_and_its_leaves_keep_their_data() -> None:
    """The plain bound refutes boxes left of x0 = 0.5; the refinement refutes boxes of
    width at most 1/8 (and says which box it bounded): every box it is asked for was
    open, every leaf it proves carries its own box as data, and the leaves tile the root."""
    problem = Problem(ROOT_LO, ROOT_HI, ((0,),), np.array([0.0]))
    asked: list[tuple[Arr, Arr]] = []

    def bound(lo: Arr, hi: Arr) -> Arr:
        return np.where(hi[:, :1] <= 0.5, 1.0, -1.0)

    def refine(lo: Arr, hi: Arr) -> tuple[Arr, list[Any]]:
        asked.extend(zip(lo, hi, strict=True))
        small = np.max(hi - lo, axis=1, keepdims=True) <= 0.125
        return np.where(small, 1.0, -1.0), [(a.copy(), b.copy()) for a, b in
                                             zip(lo, hi, strict=True)]

    res = branch_and_bound(problem, bound, _nowhere_unsafe, lambda x: False,
                           deadline=time.monotonic() + 30, batch=32, refine=refine)
    assert res.status == "holds"
    assert asked and all(hi[0] > 0.5 for _, hi in asked)  # never a box bound refuted
    boxes = res.tree.boxes(ROOT_LO, ROOT_HI)
    assert res.tree.refined and set(res.tree.refined) <= set(res.tree.leaves)
    for leaf, (lo, hi) in res.tree.refined.items():
        assert np.array_equal(lo, boxes[leaf][0]) and np.array_equal(hi, boxes[leaf][1])
        assert np.max(hi - lo) <= 0.125 and hi[0] > 0.5
    plain = set(res.tree.leaves) - set(res.tree.refined)
    assert plain and all(boxes[leaf][1][0] <= 0.5 for leaf in plain)
    area = sum((F(hi[0]) - F(lo[0])) * (F(hi[1]) - F(lo[1]))
               for lo, hi in (boxes[leaf] for leaf in res.tree.leaves))
    assert area == 1


def test_the_refinement_decides_alone() -> None:
    """Two groups: the plain bound refutes only group A, the refinement only group B; a
    box is proved by neither (their rows are not mixed: a leaf's data must re-derive every
    refuting row it names), so the search runs on to its box budget."""
    problem = Problem(ROOT_LO, ROOT_HI, ((0,), (1,)), np.array([0.0, 0.0]))

    def bound(lo: Arr, hi: Arr) -> Arr:
        return np.tile([1.0, -1.0], (lo.shape[0], 1))

    def refine(lo: Arr, hi: Arr) -> tuple[Arr, list[Any]]:
        return np.tile([-1.0, 1.0], (lo.shape[0], 1)), [None] * lo.shape[0]

    res = branch_and_bound(problem, bound, lambda x: np.ones((x.shape[0], 2)),
                           lambda x: False, deadline=time.monotonic() + 30, batch=16,
                           refine=refine, max_boxes=200)
    assert res.status == "unknown" and not res.tree.leaves


def test_refinement_waits_for_refine_after_boxes() -> None:
    """The same search as above with `refine_after`: no box is refined before that many
    were bounded, and the proof still holds."""
    problem = Problem(ROOT_LO, ROOT_HI, ((0,),), np.array([0.0]))
    seen = [0]
    asked_at: list[int] = []

    def bound(lo: Arr, hi: Arr) -> Arr:
        seen[0] += lo.shape[0]
        small = np.max(hi - lo, axis=1, keepdims=True) <= 1 / 64
        return np.where(small, 1.0, -1.0)

    def refine(lo: Arr, hi: Arr) -> tuple[Arr, list[Any]]:
        asked_at.append(seen[0])
        small = np.max(hi - lo, axis=1, keepdims=True) <= 0.125
        return np.where(small, 1.0, -1.0), [None] * lo.shape[0]

    res = branch_and_bound(problem, bound, _nowhere_unsafe, lambda x: False,
                           deadline=time.monotonic() + 30, batch=16, refine=refine,
                           refine_after=100)
    assert res.status == "holds"
    assert asked_at and min(asked_at) > 100 and res.tree.refined


def test_boxes_that_look_unsafe_or_far_below_are_not_worth_refining() -> None:
    """Centre margins 1, 1, -0.5, 0.1 against bound margins -2, -9, -0.1, -0.5: with
    reach 8, the first box (shortfall 2 < 8) and the last (0.5 < 0.8) are refined; the
    second falls 9 below (over 8 times its centre's 1), the third looks unsafe."""
    problem = Problem(np.zeros(1), np.ones(1), ((0,),), np.array([0.0]))
    lo = np.array([[0.0], [1.0], [2.0], [3.0]])
    hi = lo + 1.0
    lower = np.array([[-2.0], [-9.0], [-0.1], [-0.5]])
    centre_values = {0.5: 1.0, 1.5: 1.0, 2.5: -0.5, 3.5: 0.1}

    def evaluate(x: Arr) -> Arr:
        return np.array([[centre_values[float(v)]] for v in x[:, 0]])

    assert _worth_refining([0, 1, 2, 3], lo, hi, lower, problem, evaluate, 8.0) == [0, 3]
    assert _worth_refining([1, 2], lo, hi, lower, problem, evaluate, 10.0) == [1]


def test_a_slow_refinement_keeps_the_deadline() -> None:
    """A refinement of 20 ms a box that never refutes, after a plain bound that never
    does: the search stops about one step after its deadline, and refinement calls are
    sized down as it nears."""
    sizes: list[int] = []

    def refine(lo: Arr, hi: Arr) -> tuple[Arr, list[Any]]:
        sizes.append(lo.shape[0])
        time.sleep(0.02 * lo.shape[0])
        return np.full((lo.shape[0], 1), -1.0), [None] * lo.shape[0]

    start = time.monotonic()
    problem = Problem(ROOT_LO, ROOT_HI, ((0,),), np.array([0.0]))
    res = branch_and_bound(problem, _never, _nowhere_unsafe, lambda x: False,
                           deadline=start + 1.0, batch=64, refine=refine)
    took = time.monotonic() - start
    assert res.status == "timeout"
    assert sizes[0] <= 16
    # 20 ms a box, the last call sized to the time left; slack for a shared machine
    assert took < 1.0 + 0.3


# -- batched alpha-CROWN ------------------------------------------------------------------
def _deep(seed: int, hidden: int = 12) -> Any:
    return nn.build(nn.linear(2, hidden) >> nn.relu() >> nn.linear(hidden, hidden) >> nn.relu()
                    >> nn.linear(hidden, hidden) >> nn.relu() >> nn.linear(hidden, 2), seed=seed)


def _forward(net: Any, x: Arr) -> Arr:
    h = x
    layers = sorted({k.split(".")[0] for k in net.params}, key=int)
    for i, name in enumerate(layers):
        h = h @ np.asarray(net.params[f"{name}.weight"].numpy(), np.float64).T \
            + np.asarray(net.params[f"{name}.bias"].numpy(), np.float64)
        if i + 1 < len(layers):
            h = np.maximum(h, 0.0)
    return np.asarray(h)


def test_batched_alpha_bounds_are_the_sound_pass_with_their_grid_slopes() -> None:
    net = _deep(4)
    g = as_graph(net, net.params, (1, 2))
    m = BatchedModel(g, net.params)
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0.5, (40, 2))  # 40 boxes: a chunk of 32 and a padded one of 8
    hi = lo + rng.uniform(0.05, 0.5, (40, 2))
    C = np.array([[1.0, 0.0], [1.0, -1.0]])
    got = m.alpha_bounds(lo, hi, C)
    assert got is not None
    low, slopes = got
    assert low.shape == (40, 2) and len(slopes) == 40
    plain = crown(m.graph_for(40), net.params, lo, hi, C=C).lower
    assert np.any(low > plain + 1e-3)  # alpha-CROWN gains somewhere
    for i in range(40):
        s = slopes[i]
        assert s
        for v in s.values():
            assert v.shape[0] == 1 and np.all((v >= 0) & (v <= 1))
            assert np.array_equal(v * (1 << SLOPE_BITS), np.rint(v * (1 << SLOPE_BITS)))
        one = crown(g, net.params, lo[i: i + 1], hi[i: i + 1], C=C,
                    relu_slopes={k: v.astype(np.float64) for k, v in s.items()}).lower[0]
        # the same sound pass over one box instead of a batch: equal up to the summation
        # order of float64 matrix products (outward rounding covers each; 1e-9 over O(10))
        assert np.allclose(one, low[i], rtol=0, atol=1e-9)
        pts = lo[i] + (hi[i] - lo[i]) * rng.random((200, 2))
        assert np.all(_forward(net, pts) @ C.T >= low[i] - 1e-12)  # sound
    assert m.alpha_bounds(lo, hi, C, keep_slopes=False) is not None
    assert all(not s for s in m.alpha_bounds(lo, hi, C, keep_slopes=False)[1])  # type: ignore[index]


# -- the engine: input splitting with alpha leaves, re-checked exactly --------------------
def _tight_instance() -> tuple[Any, Any, float]:
    """A net and a threshold d with CROWN's and alpha-CROWN's root bounds of Y_0 below d,
    d below the least Y_0 on a dense grid of [-1, 1]^2: proofs need splitting, and
    alpha-CROWN refutes boxes CROWN leaves open."""
    for seed in range(30):
        net = _deep(seed)
        g = as_graph(net, net.params, (1, 2))
        lo, hi, C = -np.ones((1, 2)), np.ones((1, 2)), np.array([[1.0, 0.0]])
        plain = float(crown(g, net.params, lo, hi, C=C).lower[0, 0])
        got = BatchedModel(g, net.params).alpha_bound(lo, hi, C)
        assert got is not None
        alpha = float(got[0][0, 0])
        grid = np.linspace(-1, 1, 201)
        ymin = float(_forward(net, np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2))
                     [:, 0].min())
        if alpha - plain > 0.05 and ymin - alpha > 0.03:
            return net, g, round(alpha + 0.5 * (ymin - alpha), 6)
    raise AssertionError("no net where alpha-CROWN gains and splitting is needed")


def test_engine_alpha_leaves_in_input_splitting_pass_the_exact_checker(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(engine, "ALPHA_AFTER_BOXES", 0)  # a toy proof needs few boxes
    net, g, d = _tight_instance()
    p = prop(header(2, 2) + f"(assert (<= Y_0 {d:.6f}))")
    cert = tmp_path / "cert.json"
    # batches of 2: CROWN meets the big boxes near the root, which it leaves open
    v = verify_instance((g, net.params), p, timeout=120, certificate=cert, batch=2)
    assert v.status == "holds", v.detail
    assert "alpha-crown leaves" in v.detail
    doc = json.loads(cert.read_text())
    assert doc["format"] == FORMAT_SLOPES
    assert any(len(leaf) == 3 for leaf in doc["cases"][0]["leaves"])  # leaves with slopes
    res = check_tree_certificate(cert, (g, net.params), p)
    assert res.ok, res.reason


@pytest.mark.parametrize("certificate", [False, True])
def test_the_engine_proves_the_same_with_or_without_kept_slopes(
        tmp_path: Path, monkeypatch: Any, certificate: bool) -> None:
    monkeypatch.setattr(engine, "ALPHA_AFTER_BOXES", 0)
    net, g, d = _tight_instance()
    p = prop(header(2, 2) + f"(assert (<= Y_0 {d:.6f}))")
    v = verify_instance((g, net.params), p, timeout=120, batch=2,
                        certificate=tmp_path / "c.json" if certificate else None)
    assert v.status == "holds" and "alpha-crown" in v.detail
