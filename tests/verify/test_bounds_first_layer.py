"""CROWN takes IBP's interval for a relaxed operand that is one matmul of copied input
entries (exact there), and only then: a sum over one input entry twice is left to CROWN."""

from __future__ import annotations

from typing import Any

import numpy as np

from torchlean.runtime.graph import Graph
from torchlean.runtime.graph.ir import Node
from torchlean.spec import nn
from torchlean.verify import bounds
from torchlean.verify.bounds.api import _ibp_is_exact
from torchlean.verify.bounds.ibp import ibp_nodes
from torchlean.verify.bounds.problem import depends_on_input


def _relu_operands(g: Graph) -> list[int]:
    return [n.args[0] for n in g.nodes if n.op == "relu"]


def test_linear_and_conv_first_layers_are_exact_later_layers_are_not() -> None:
    mlp = nn.build(nn.linear(4, 6) >> nn.relu() >> nn.linear(6, 6) >> nn.relu()
                   >> nn.linear(6, 2), seed=0)
    g = bounds.as_graph(mlp, mlp.params, (3, 4))
    dep = depends_on_input(g)
    first, second = _relu_operands(g)
    assert _ibp_is_exact(g, first, dep) and not _ibp_is_exact(g, second, dep)
    cnn = nn.build(nn.conv2d(1, 2, 3, stride=2, padding=1) >> nn.relu() >> nn.flatten()
                   >> nn.linear(2 * 4 * 4, 3), seed=1)
    gc = bounds.as_graph(cnn, cnn.params, (2, 1, 8, 8))
    [z] = _relu_operands(gc)
    assert _ibp_is_exact(gc, z, depends_on_input(gc))


def _doubled() -> tuple[Graph, dict[str, Any]]:
    """relu(concat(x, x) @ W) @ V: each dot product of the first layer reads x twice."""
    nodes = (
        Node(0, "input", (), (("name", "x"),), (1, 2)),
        Node(1, "concat", (0, 0), (("axis", 1),), (1, 4)),
        Node(2, "param", (), (("name", "W"),), (4, 3)),
        Node(3, "matmul", (1, 2), (), (1, 3)),
        Node(4, "relu", (3,), (), (1, 3)),
        Node(5, "param", (), (("name", "V"),), (3, 1)),
        Node(6, "matmul", (4, 5), (), (1, 1)),
    )
    w = np.array([[1.0, -1.0, 0.5], [2.0, 1.0, -1.0], [-1.0, 2.0, -0.5], [-2.0, -1.0, 1.0]])
    return Graph("float", nodes, (("out", 6),)), {"W": w, "V": np.array([[1.0], [-1.0], [2.0]])}


def test_an_input_entry_read_twice_is_left_to_crown() -> None:
    g, p = _doubled()
    assert not _ibp_is_exact(g, 3, depends_on_input(g))
    lo, hi = np.array([[-1.0, -0.5]]), np.array([[1.0, 0.5]])
    _, pre = bounds.crown_with_layers(g, p, lo, hi)
    ibp_lo, ibp_hi = ibp_nodes(g, p, lo, hi)[3]
    # W^T [x; x] = (W_top + W_bottom)^T x: the first and third neurons' weights cancel
    # exactly, so CROWN's interval is a point there while IBP's is wide
    assert np.all(pre[3][1] - pre[3][0] < ibp_hi - ibp_lo)
    np.testing.assert_allclose(pre[3][0][0, [0, 2]], 0.0, atol=1e-12)
    np.testing.assert_allclose(pre[3][1][0, [0, 2]], 0.0, atol=1e-12)


def test_first_layer_intervals_match_a_crown_pass() -> None:
    net = nn.build(nn.linear(5, 8) >> nn.relu() >> nn.linear(8, 3), seed=4)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 5))
    lo, hi = x - 0.3, x + 0.3
    g = bounds.as_graph(net, net.params, lo.shape)
    [z] = _relu_operands(g)
    _, pre = bounds.crown_with_layers(g, net.params, lo, hi)
    w, b = net.params["0.weight"].numpy(), net.params["0.bias"].numpy()
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    exact_lo, exact_hi = mid @ w.T + b - rad @ np.abs(w).T, mid @ w.T + b + rad @ np.abs(w).T
    # sound (below / above the float64 exact range, allowing its own rounding: 1e-12)
    # and tight (IBP is exact for one affine layer: within 1e-12)
    np.testing.assert_allclose(pre[z][0], exact_lo, atol=1e-12)
    np.testing.assert_allclose(pre[z][1], exact_hi, atol=1e-12)
    assert np.all(pre[z][0] <= exact_lo + 1e-12) and np.all(pre[z][1] >= exact_hi - 1e-12)


def _overlapping_slices(batch: int) -> tuple[Graph, dict[str, Any]]:
    """relu(x @ W)[:, 0:6] + relu(x @ W)[:, 2:8], then @ V: two slices of one node that
    overlap, whose coefficients the slice rule adds into one array."""
    nodes = (
        Node(0, "input", (), (("name", "x"),), (batch, 3)),
        Node(1, "param", (), (("name", "W"),), (3, 8)),
        Node(2, "matmul", (0, 1), (), (batch, 8)),
        Node(3, "relu", (2,), (), (batch, 8)),
        Node(4, "slice", (3,), (("spec", ((0, batch, 1), (0, 6, 1))),), (batch, 6)),
        Node(5, "slice", (3,), (("spec", ((0, batch, 1), (2, 8, 1))),), (batch, 6)),
        Node(6, "add", (4, 5), (), (batch, 6)),
        Node(7, "param", (), (("name", "V"),), (6, 2)),
        Node(8, "matmul", (6, 7), (), (batch, 2)),
    )
    rng = np.random.default_rng(8)
    return Graph("float", nodes, (("out", 8),)), {"W": rng.normal(size=(3, 8)),
                                                  "V": rng.normal(size=(6, 2))}


def test_overlapping_slices_are_sound() -> None:
    g, p = _overlapping_slices(2)
    rng = np.random.default_rng(9)
    c = rng.normal(size=(2, 3))
    lo, hi = c - 0.7, c + 0.7
    b = bounds.crown(g, p, lo, hi)
    for i in range(2):
        xs = rng.uniform(lo[i], hi[i], size=(10_000, 3))
        xs[:2] = [lo[i], hi[i]]
        h = np.maximum(xs @ p["W"], 0.0)
        y = (h[:, 0:6] + h[:, 2:8]) @ p["V"]
        # samples in float64 (a few ulps off the real value): 1e-12
        assert np.all(y >= b.lower[i] - 1e-12) and np.all(y <= b.upper[i] + 1e-12)
    # the same function as relu(x @ W) @ M, M = V's rows placed at 0:6 plus at 2:8: CROWN
    # takes the same lines, so the bounds agree up to rounding (1e-9 on values ~10)
    m = np.zeros((8, 2))
    m[0:6] += p["V"]
    m[2:8] += p["V"]
    dense = Graph("float", (*g.nodes[:4], Node(4, "param", (), (("name", "M"),), (8, 2)),
                            Node(5, "matmul", (3, 4), (), (2, 2))), (("out", 5),))
    d = bounds.crown(dense, {"W": p["W"], "M": m}, lo, hi)
    np.testing.assert_allclose(b.lower, d.lower, atol=1e-9)
    np.testing.assert_allclose(b.upper, d.upper, atol=1e-9)
