"""alpha-CROWN slopes: the float chain bound matches CROWN at the adaptive slopes, its
gradient matches central differences, and optimisation only raises the bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean import nn
from torchlean.spec.errors import ShapeError, UnsupportedOperation
from torchlean.verify import bounds
from torchlean.verify.bounds.alpha_crown import (
    _bound_and_grad,
    _relaxation,
    optimize_slopes,
    relu_chain,
)

Arr = np.ndarray[Any, Any]


def _setup(seed: int, batch: int = 3) -> tuple[Any, Any, Arr, Arr, Arr, list[tuple[Arr, Arr]]]:
    net = nn.build(nn.sequential(nn.linear(4, 16), nn.relu(), nn.linear(16, 16), nn.relu(),
                                 nn.linear(16, 3)), seed=seed)
    chain = relu_chain(bounds.as_graph(net, net.params, (1, 4)), net.params)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 4))
    lo, hi = x - 0.4, x + 0.4
    spec = np.broadcast_to(np.eye(3), (batch, 3, 3)).copy()
    _, pre = bounds.crown_with_layers(net, net.params, lo, hi, C=spec)
    g = bounds.as_graph(net, net.params, (batch, 4))
    flat = [tuple(a.reshape(batch, -1) for a in pre[g.nodes[r].args[0]]) for r in chain.relus]
    return net, chain, lo, hi, spec, flat  # type: ignore[return-value]


def _adaptive(pre: list[tuple[Arr, Arr]], rows: int) -> list[Arr]:
    return [np.broadcast_to((h >= -lo).astype(float)[:, None, :],
                            (lo.shape[0], rows, lo.shape[1])).copy() for lo, h in pre]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_float_chain_bound_is_crown_at_the_adaptive_slopes(seed: int) -> None:
    net, chain, lo, hi, spec, pre = _setup(seed)
    relax = [_relaxation(a, b) for a, b in pre]
    value, _ = _bound_and_grad(chain, relax, _adaptive(pre, 3), spec, 0.5 * (lo + hi),
                               0.5 * (hi - lo))
    sound = bounds.crown(net, net.params, lo, hi, C=spec).lower
    # the sound bound is the same computation rounded outward: equal within 1e-9 relative
    # to the magnitudes involved (a few hundred float64 roundings of O(10) values)
    assert np.all(sound <= value + 1e-9)
    np.testing.assert_allclose(value, sound, atol=1e-9)


def test_gradient_matches_central_differences() -> None:
    _, chain, lo, hi, spec, pre = _setup(5)
    relax = [_relaxation(a, b) for a, b in pre]
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    alphas = [np.full_like(a, 0.5) for a in _adaptive(pre, 3)]
    _, grads = _bound_and_grad(chain, relax, alphas, spec, mid, rad)
    checked = 0
    for k in range(len(alphas)):
        for b, r, n in np.argwhere(relax[k][2][:, None, :] & np.ones((1, 3, 1), bool))[:8]:
            h = 1e-6
            up = [a.copy() for a in alphas]
            dn = [a.copy() for a in alphas]
            up[k][b, r, n] += h
            dn[k][b, r, n] -= h
            fd = (_bound_and_grad(chain, relax, up, spec, mid, rad)[0][b, r]
                  - _bound_and_grad(chain, relax, dn, spec, mid, rad)[0][b, r]) / (2 * h)
            # the bound is piecewise linear in each slope: away from kinks the central
            # difference is exact up to rounding (1e-6 relative to O(1) terms)
            assert fd == pytest.approx(grads[k][b, r, n], abs=1e-6)
            checked += 1
    assert checked > 0


def test_optimised_slopes_stay_in_range_and_never_lower_the_bound() -> None:
    _, chain, lo, hi, spec, pre = _setup(7)
    relax = [_relaxation(a, b) for a, b in pre]
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    before, _ = _bound_and_grad(chain, relax, _adaptive(pre, 3), spec, mid, rad)
    slopes = optimize_slopes(chain, pre, spec, lo, hi, iterations=20)
    assert all(np.all((0 <= a) & (a <= 1)) for a in slopes)
    after, _ = _bound_and_grad(chain, relax, slopes, spec, mid, rad)
    assert np.all(after >= before)
    assert np.any(after > before + 1e-6)


def test_graphs_that_are_not_relu_chains_are_refused() -> None:
    tanh_net = nn.build(nn.sequential(nn.linear(2, 4), nn.tanh(), nn.linear(4, 1)), seed=0)
    with pytest.raises(UnsupportedOperation, match="alpha-crown"):
        relu_chain(bounds.as_graph(tanh_net, tanh_net.params, (1, 2)), tanh_net.params)


# -- the sound alpha-CROWN bound (bounds.alpha_crown, crown(relu_slopes=...)) ---------
def _mlp(seed: int, dtype: str = "float64") -> Any:
    return nn.build(nn.sequential(nn.linear(3, 12), nn.relu(), nn.linear(12, 12), nn.relu(),
                                  nn.linear(12, 3)), seed=seed, dtype=dtype)


def _samples(rng: Any, lo: Arr, hi: Arr) -> Arr:
    xs = rng.uniform(lo[:, None, :], hi[:, None, :], size=(lo.shape[0], 10_000, lo.shape[1]))
    xs[:, :2] = np.stack([lo, hi], axis=1)  # the corners are among the samples
    return xs  # type: ignore[no-any-return]


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10**6), st.floats(0.05, 1.0))
def test_alpha_crown_is_sound_and_never_looser_than_crown(seed: int, eps: float) -> None:
    net = _mlp(seed)
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(2, 3))
    lo, hi = c - eps, c + eps
    C = bounds.margin_matrix(0, 3)
    crown = bounds.crown(net, net.params, lo, hi, C=C)
    alpha = bounds.alpha_crown(net, net.params, lo, hi, C=C, iterations=10)
    assert alpha.method == "alpha-crown"
    assert np.all(alpha.lower >= crown.lower) and np.all(alpha.upper <= crown.upper)
    xs = _samples(rng, lo, hi)
    for i in range(2):
        y = net.apply(net.params, tl.tensor(xs[i])).numpy() @ C.T
        # samples are evaluated in float64 (a few ulps off the real value): 1e-12
        assert np.all(y >= alpha.lower[i] - 1e-12), y.min(0) - alpha.lower[i]
        assert np.all(y <= alpha.upper[i] + 1e-12), alpha.upper[i] - y.max(0)


def test_alpha_crown_usually_tighter_than_crown() -> None:
    tighter = total = 0
    for seed in range(8):
        net = _mlp(seed)
        c = np.random.default_rng(seed).normal(size=(2, 3))
        crown = bounds.crown(net, net.params, c - 0.5, c + 0.5)
        alpha = bounds.alpha_crown(net, net.params, c - 0.5, c + 0.5)
        tighter += int(np.sum(alpha.width < crown.width - 1e-9))
        total += alpha.width.size
    assert tighter >= total // 2  # measured: 48 of 48


def test_alpha_crown_covers_float32_execution() -> None:
    net = _mlp(3, "float32")
    rng = np.random.default_rng(3)
    c = rng.uniform(-1, 1, size=(1, 3))
    lo, hi = c - 0.3, c + 0.3
    b = bounds.alpha_crown(net, net.params, lo, hi, covers="float32")
    assert b.method == "alpha-crown+float32"
    xs = _samples(rng, lo, hi)[0].astype(np.float32)
    y = net.apply(net.params, tl.tensor(xs, dtype="float32")).numpy().astype(np.float64)
    assert np.all(y >= b.lower[0]) and np.all(y <= b.upper[0])


def _uniform_slopes(net: Any, lo: Arr, value: float) -> dict[int, Arr]:
    g = bounds.as_graph(net, net.params, lo.shape)
    return {n.id: np.full((lo.shape[0], 6) + n.shape[1:], value)
            for n in g.nodes if n.op == "relu"}


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0, 1.5, -2.0, 1e300])
def test_any_given_slope_is_sound_after_clipping(value: float) -> None:
    net = _mlp(11)
    rng = np.random.default_rng(11)
    c = rng.normal(size=(2, 3))
    lo, hi = c - 0.8, c + 0.8
    b = bounds.crown(net, net.params, lo, hi, relu_slopes=_uniform_slopes(net, lo, value))
    clipped = bounds.crown(net, net.params, lo, hi,
                           relu_slopes=_uniform_slopes(net, lo, min(max(value, 0.0), 1.0)))
    np.testing.assert_array_equal(b.lower, clipped.lower)  # out-of-range slopes are clipped
    xs = _samples(rng, lo, hi)
    for i in range(2):
        y = net.apply(net.params, tl.tensor(xs[i])).numpy()
        assert np.all(y >= b.lower[i] - 1e-12) and np.all(y <= b.upper[i] + 1e-12)


def test_nan_slopes_wrong_nodes_and_shapes_are_refused() -> None:
    net = _mlp(2)
    lo, hi = np.zeros((2, 3)), np.ones((2, 3))
    slopes = _uniform_slopes(net, lo, 0.5)
    bad = {k: v.copy() for k, v in slopes.items()}
    next(iter(bad.values()))[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bounds.crown(net, net.params, lo, hi, relu_slopes=bad)
    with pytest.raises(ValueError, match="not a relu"):
        bounds.crown(net, net.params, lo, hi, relu_slopes={0: next(iter(slopes.values()))})
    with pytest.raises(ShapeError):
        bounds.crown(net, net.params, lo, hi,
                     relu_slopes={k: v[:, :3] for k, v in slopes.items()})


def test_graphs_that_are_not_relu_chains_get_plain_crown() -> None:
    net = nn.build(nn.sequential(nn.linear(2, 4), nn.gelu(), nn.linear(4, 1)), seed=0)
    lo, hi = np.zeros((1, 2)), np.ones((1, 2))
    b = bounds.alpha_crown(net, net.params, lo, hi)
    assert b.method == "crown (alpha-crown: not an affine-activation chain)"
    c = bounds.crown(net, net.params, lo, hi)
    np.testing.assert_array_equal(b.lower, c.lower)
    np.testing.assert_array_equal(b.upper, c.upper)
