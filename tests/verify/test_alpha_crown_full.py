"""Full alpha-CROWN: slopes for every intermediate pass as well as the final one.

Soundness is checked against the exact value of the network (rational arithmetic on the
float64 weights) at sampled points and the box corners, with no tolerance: every bound is
rounded outward, so each exact output must lie inside it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean import nn
from torchlean.spec.errors import ShapeError
from torchlean.verify import bounds
from torchlean.verify.bounds.alpha_crown import (
    SparseMap,
    _bound_and_grad,
    _relaxation,
    optimize_intermediate,
    relu_chain,
)
from torchlean.verify.bounds.api import alpha_crown_with_slopes

Arr = np.ndarray[Any, Any]


def _net(seed: int, widths: tuple[int, ...]) -> Any:
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        layers.append(nn.linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.relu())
    return nn.build(nn.sequential(*layers), seed=seed)


def _exact_outputs(net: Any, xs: Arr) -> list[list[Fraction]]:
    """The network's outputs at each point, in exact rational arithmetic."""
    names = sorted({k.split(".")[0] for k in net.params}, key=int)
    ws = [np.vectorize(Fraction, otypes=[object])(net.params[f"{n}.weight"].numpy())
          for n in names]
    bs = [np.vectorize(Fraction, otypes=[object])(net.params[f"{n}.bias"].numpy())
          for n in names]
    out = []
    for x in xs:
        h = np.vectorize(Fraction, otypes=[object])(x)
        for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = w.dot(h) + b
            if k < len(ws) - 1:
                h = np.array([max(v, Fraction(0)) for v in h], dtype=object)
        out.append(list(h))
    return out


def _points(rng: Any, lo: Arr, hi: Arr, count: int) -> Arr:
    pts = rng.uniform(lo, hi, size=(count, lo.shape[0]))
    corners = rng.integers(0, 2, size=(count, lo.shape[0])).astype(bool)
    pts[: count // 2] = np.where(corners, hi, lo)[: count // 2]  # half are box corners
    return pts  # type: ignore[no-any-return]


def _assert_inside(net: Any, b: Any, lo: Arr, hi: Arr, rng: Any) -> None:
    for i in range(lo.shape[0]):
        for y in _exact_outputs(net, _points(rng, lo[i], hi[i], 40)):
            for r, v in enumerate(y):
                assert Fraction(b.lower[i, r]) <= v <= Fraction(b.upper[i, r]), (i, r)


def _relus(net: Any, shape: tuple[int, ...]) -> list[Any]:
    g = bounds.as_graph(net, net.params, shape)
    return [n for n in g.nodes if n.op == "relu"]


def _random_slopes(net: Any, lo: Arr, rng: Any, outputs: int) -> dict[Any, Arr]:
    """Random slopes in [-0.5, 1.5] (clipped by crown) for every (pre-activation, earlier
    relu) pass and for the final pass."""
    g = bounds.as_graph(net, net.params, lo.shape)
    relus = [n for n in g.nodes if n.op == "relu"]
    batch = lo.shape[0]
    out: dict[Any, Arr] = {}
    for k, r in enumerate(relus):
        z = g.nodes[r.args[0]]
        for earlier in relus[:k]:
            out[(z.id, earlier.id)] = rng.uniform(-0.5, 1.5, size=(
                batch, 2 * int(np.prod(z.shape[1:])), *earlier.shape[1:]))
        out[r.id] = rng.uniform(-0.5, 1.5, size=(batch, 2 * outputs, *r.shape[1:]))
    return out


widths = st.lists(st.integers(2, 7), min_size=2, max_size=3).map(
    lambda hidden: (3, *hidden, 2))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), widths, st.floats(0.05, 1.5))
def test_random_intermediate_and_final_slopes_are_sound(seed: int, ws: tuple[int, ...],
                                                          eps: float) -> None:
    net = _net(seed, ws)
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(2, 3))
    lo, hi = c - eps, c + eps
    slopes = _random_slopes(net, lo, rng, 2)
    b = bounds.crown(net, net.params, lo, hi, relu_slopes=slopes)
    _assert_inside(net, b, lo, hi, rng)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), widths, st.floats(0.05, 1.5))
def test_optimised_slopes_are_sound_and_reproduce_the_bound(seed: int, ws: tuple[int, ...],
                                                             eps: float) -> None:
    net = _net(seed, ws)
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(2, 3))
    lo, hi = c - eps, c + eps
    b, slopes = alpha_crown_with_slopes(net, net.params, lo, hi, iterations=8)
    assert b.method == "alpha-crown"
    assert all(np.all((0 <= s) & (s <= 1)) for s in slopes.values())
    _assert_inside(net, b, lo, hi, rng)
    crown = bounds.crown(net, net.params, lo, hi)
    assert np.all(b.lower >= crown.lower) and np.all(b.upper <= crown.upper)
    # the returned slopes given back to crown give the tuned bound, which alpha-CROWN
    # intersects with plain CROWN: the same computation, so the same floats
    again = bounds.crown(net, net.params, lo, hi, relu_slopes=slopes)
    np.testing.assert_array_equal(np.maximum(again.lower, crown.lower), b.lower)
    np.testing.assert_array_equal(np.minimum(again.upper, crown.upper), b.upper)


def test_intermediate_slopes_are_returned_for_every_pass_after_the_first() -> None:
    net = _net(4, (3, 8, 8, 8, 2))
    c = np.random.default_rng(4).normal(size=(1, 3))
    _, slopes = alpha_crown_with_slopes(net, net.params, c - 1.0, c + 1.0, iterations=4)
    relus = _relus(net, (1, 3))
    pairs = {k for k in slopes if isinstance(k, tuple)}
    g = bounds.as_graph(net, net.params, (1, 3))
    want = {(g.nodes[r.args[0]].id, e.id) for k, r in enumerate(relus) for e in relus[:k]}
    assert pairs == want
    assert {k for k in slopes if not isinstance(k, tuple)} == {r.id for r in relus}


def test_optimising_an_intermediate_pass_never_loosens_it_and_usually_tightens() -> None:
    gained = 0
    for seed in range(4):
        net = _net(seed, (4, 16, 16, 16, 3))
        g = bounds.as_graph(net, net.params, (3, 4))
        chain = relu_chain(g, net.params)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(3, 4))
        lo, hi = x - 0.5, x + 0.5
        _, pre = bounds.crown_with_layers(net, net.params, lo, hi)
        flat = [tuple(a.reshape(3, -1) for a in pre[g.nodes[r].args[0]]) for r in chain.relus]
        for j in (1, 2):
            slopes = optimize_intermediate(chain, j, flat[:j], lo, hi, iterations=20)  # type: ignore[arg-type]
            if slopes is None:
                continue
            width = chain.weights[j].shape[0]
            eye = np.eye(width)
            spec = np.broadcast_to(np.concatenate([eye, -eye]), (3, 2 * width, width))
            sub = type(chain)(chain.relus[:j], chain.weights[: j + 1], chain.biases[: j + 1])
            relax = [_relaxation(a, b) for a, b in flat[:j]]
            mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
            adaptive = [np.broadcast_to((h >= -a).astype(float)[:, None, :],
                                        (3, 2 * width, a.shape[1])).copy() for a, h in flat[:j]]
            before, _ = _bound_and_grad(sub, relax, adaptive, spec, mid, rad)
            after, _ = _bound_and_grad(sub, relax, slopes, spec, mid, rad)
            assert np.all(after >= before)  # the best iterate is kept, the start included
            gained += int(np.sum(after > before + 1e-9))
    assert gained > 0


def test_full_alpha_crown_is_tighter_than_final_pass_only() -> None:
    net = _net(1, (5, 30, 30, 30, 5))
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(16, 5))
    lo, hi = x - 0.15, x + 0.15
    full, slopes = alpha_crown_with_slopes(net, net.params, lo, hi)
    final_only = bounds.crown(net, net.params, lo, hi, relu_slopes={
        k: v for k, v in slopes.items() if not isinstance(k, tuple)})
    # the final slopes were tuned to the tightened intervals; measured: 5.3% narrower
    assert full.width.mean() < 0.97 * final_only.width.mean()


@pytest.mark.parametrize("value", [1.5, -2.0])
def test_intermediate_slopes_out_of_range_are_clipped(value: float) -> None:
    net = _net(2, (3, 6, 6, 2))
    rng = np.random.default_rng(2)
    c = rng.normal(size=(2, 3))
    lo, hi = c - 0.8, c + 0.8
    g = bounds.as_graph(net, net.params, lo.shape)
    r0, r1 = _relus(net, lo.shape)
    z = r1.args[0]
    wild = bounds.crown(net, net.params, lo, hi,
                        relu_slopes={(z, r0.id): np.full((2, 12, 6), value)})
    clipped = bounds.crown(net, net.params, lo, hi, relu_slopes={
        (z, r0.id): np.full((2, 12, 6), min(max(value, 0.0), 1.0))})
    np.testing.assert_array_equal(wild.lower, clipped.lower)
    assert g.nodes[z].op != "relu"


def test_bad_intermediate_slope_keys_and_shapes_are_refused() -> None:
    net = _net(2, (3, 6, 6, 2))
    lo, hi = np.zeros((2, 3)), np.ones((2, 3))
    r0, r1 = _relus(net, lo.shape)
    z = r1.args[0]
    good = np.full((2, 12, 6), 0.5)
    with pytest.raises(ShapeError, match="shape"):
        bounds.crown(net, net.params, lo, hi, relu_slopes={(z, r0.id): good[:, :6]})
    with pytest.raises(ValueError, match="not a node after"):
        bounds.crown(net, net.params, lo, hi, relu_slopes={(r0.id, r1.id): good})
    with pytest.raises(ValueError, match="not a relu"):
        bounds.crown(net, net.params, lo, hi, relu_slopes={(z, z - 1): good})
    with pytest.raises(ValueError, match="not \\(bounded node, relu node\\)"):
        bounds.crown(net, net.params, lo, hi, relu_slopes={(z, r0.id, 0): good})
    nan = good.copy()
    nan[1, 3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bounds.crown(net, net.params, lo, hi, relu_slopes={(z, r0.id): nan})


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 9), st.integers(1, 9), st.floats(0.0, 0.9))
def test_sparse_maps_multiply_as_their_dense_matrices(seed: int, rows: int, cols: int,
                                                      zeros: float) -> None:
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(rows, cols)) * (rng.uniform(size=(rows, cols)) > zeros)
    r, c = np.nonzero(dense)
    sparse = SparseMap.of((rows, cols), r, c, dense[r, c])
    lam, g = rng.normal(size=(2, 3, rows)), rng.normal(size=(2, 3, cols))
    # the same products summed in another order: equal to 1e-12 (O(10) terms of O(1))
    np.testing.assert_allclose(sparse.left(lam), lam @ dense, atol=1e-12)
    np.testing.assert_allclose(sparse.right(g), g @ dense.T, atol=1e-12)


def test_a_conv_net_gets_alpha_crown_through_sparse_segments() -> None:
    net = nn.build(nn.sequential(nn.conv2d(1, 4, 3), nn.relu(), nn.flatten(),
                                 nn.linear(4 * 14 * 14, 3)), seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 1, 16, 16))
    lo, hi = x - 0.1, x + 0.1
    g = bounds.as_graph(net, net.params, lo.shape)
    chain = relu_chain(g, net.params)
    assert isinstance(chain.weights[0], SparseMap)  # 9 of 256 inputs per output
    b = bounds.alpha_crown(net, net.params, lo, hi)
    assert b.method == "alpha-crown"
    crown = bounds.crown(net, net.params, lo, hi)
    assert np.all(b.lower >= crown.lower) and np.all(b.upper <= crown.upper)
    assert b.width.mean() < crown.width.mean()
    xs = rng.uniform(lo[:, None], hi[:, None], size=(2, 300, 1, 16, 16))
    for i in range(2):
        y = net.apply(net.params, tl.tensor(xs[i])).numpy()
        # float64 evaluation of O(1) values through 3 layers: 1e-12 covers its rounding
        assert np.all(y >= b.lower[i] - 1e-12) and np.all(y <= b.upper[i] + 1e-12)
