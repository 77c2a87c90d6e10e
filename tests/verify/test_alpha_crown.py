"""alpha-CROWN slopes: the float chain bound matches CROWN at the adaptive slopes, its
gradient matches central differences, and optimisation only raises the bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean import nn
from torchlean.spec.errors import UnsupportedOperation
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
