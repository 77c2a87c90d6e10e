"""IBP and CROWN bounds (verify.bounds): known values, soundness on random networks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.errors import UnsupportedOperation
from torchlean.verify import bounds

# Outward rounding widens the known values by a few ulps of the largest intermediate
# magnitude (~6): 1e-13 is a generous cap that still pins the exact values.
WIDEN = 1e-13


def _known() -> tuple[nn.Built, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    net = nn.build(nn.linear(2, 2, bias=False) >> nn.relu() >> nn.linear(2, 1, bias=False))
    p = {"0.weight": np.array([[1.0, -1.0], [2.0, -1.0]]), "2.weight": np.array([[1.0, -1.0]])}
    return net, p, np.array([[-1.0, -2.0]]), np.array([[2.0, 1.0]])


@pytest.mark.parametrize("method, lo, hi", [("ibp", -6.0, 4.0), ("crown", -3.0, 3.0)])
def test_known_values(method: str, lo: float, hi: float) -> None:
    net, p, xl, xh = _known()
    b = getattr(bounds, method)(net, p, xl, xh)
    assert lo - WIDEN <= b.lower[0, 0] <= lo  # sound: never inside the exact value
    assert hi <= b.upper[0, 0] <= hi + WIDEN


def test_known_values_true_range_inside() -> None:
    net, p, xl, xh = _known()
    g = np.linspace(0, 1, 61)
    xs = np.array([[xl[0, 0] + 3 * a, xl[0, 1] + 3 * c] for a in g for c in g])
    y = net.apply(p and {k: tl.tensor(v) for k, v in p.items()}, tl.tensor(xs)).numpy()
    assert y.min() == pytest.approx(-2.0) and y.max() == pytest.approx(1.0)
    b = bounds.intersect(bounds.ibp(net, p, xl, xh), bounds.crown(net, p, xl, xh))
    assert b.lower[0, 0] <= -3.0 and b.upper[0, 0] >= 3.0 and b.upper[0, 0] < 3.0 + WIDEN


ACTS = {"relu": nn.relu, "tanh": nn.tanh, "sigmoid": nn.sigmoid,
        "leaky": lambda: nn.leaky_relu(0.1)}


@settings(deadline=None, max_examples=40)
@given(act=st.sampled_from(sorted(ACTS)), seed=st.integers(0, 10**6),
       eps=st.floats(1e-3, 1.0), center=st.floats(-2.0, 2.0))
def test_soundness_random_networks(act: str, seed: int, eps: float, center: float) -> None:
    f = ACTS[act]
    net = nn.build(nn.linear(3, 6) >> f() >> nn.linear(6, 5) >> f() >> nn.linear(5, 3), seed=seed)
    rng = np.random.default_rng(seed)
    c = center + rng.normal(size=(2, 3))
    lo, hi = c - eps, c + eps
    C = bounds.margin_matrix(0, 3)
    results = [bounds.ibp(net, net.params, lo, hi, C=C), bounds.crown(net, net.params, lo, hi, C=C)]
    xs = rng.uniform(lo[:, None, :], hi[:, None, :], size=(2, 10_000, 3))  # 10^4 per box
    xs[:, :2] = np.stack([lo, hi], axis=1)  # the corners are among the samples
    for i in range(2):
        y = net.apply(net.params, tl.tensor(xs[i])).numpy() @ C.T
        for b in results:
            # samples are evaluated in float64 (a few ulps off the real value): 1e-12
            assert np.all(y >= b.lower[i] - 1e-12), (b.method, (y.min(0) - b.lower[i]))
            assert np.all(y <= b.upper[i] + 1e-12), (b.method, (b.upper[i] - y.max(0)))


def test_relu_samples_exact_over_fraction() -> None:
    # relu network: the real output at a sample is computed exactly over Fraction
    net = nn.build(nn.linear(2, 4) >> nn.relu() >> nn.linear(4, 1), seed=3)
    lo, hi = np.array([[-0.5, 0.25]]), np.array([[0.5, 0.75]])
    b = bounds.crown(net, net.params, lo, hi)
    W1, b1, W2, b2 = (net.params[k].numpy() for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    rng = np.random.default_rng(0)
    for x in rng.uniform(lo[0], hi[0], size=(100, 2)):
        xq = [Fraction(float(v)) for v in x]
        h = [max(Fraction(0), sum(Fraction(float(W1[r, j])) * xq[j] for j in range(2))
                 + Fraction(float(b1[r]))) for r in range(4)]
        y = sum(Fraction(float(W2[0, r])) * h[r] for r in range(4)) + Fraction(float(b2[0]))
        assert Fraction(float(b.lower[0, 0])) <= y <= Fraction(float(b.upper[0, 0]))


def test_crown_usually_tighter_than_ibp() -> None:
    tighter = total = 0
    rng = np.random.default_rng(1)
    for seed in range(20):
        net = nn.build(nn.linear(4, 8) >> nn.relu() >> nn.linear(8, 8) >> nn.relu()
                       >> nn.linear(8, 3), seed=seed)
        c = rng.normal(size=(1, 4))
        bi = bounds.ibp(net, net.params, c - 0.1, c + 0.1)
        bc = bounds.crown(net, net.params, c - 0.1, c + 0.1)
        tighter += int(np.sum(bc.width < bi.width))
        total += bc.width.size
    assert tighter >= 0.8 * total  # measured: 60 of 60


def test_softmax_crown_falls_back_to_its_interval() -> None:
    # CROWN has no linear relaxation of softmax: it bounds the node by its IBP interval,
    # so on a softmax output CROWN's bounds are IBP's (up to the spec's rounding)
    net = nn.build(nn.linear(2, 3) >> nn.softmax(), seed=0)
    lo, hi = np.zeros((1, 2)), np.full((1, 2), 0.1)
    b = bounds.ibp(net, net.params, lo, hi)
    c = bounds.crown(net, net.params, lo, hi)
    y = net.apply(net.params, tl.tensor(np.array([[0.05, 0.05]]))).numpy()
    assert b.contains(y) and c.contains(y)
    assert np.all(c.lower <= b.lower) and np.all(c.lower >= b.lower - 1e-15)
    assert np.all(c.upper >= b.upper) and np.all(c.upper <= b.upper + 1e-15)


def test_batch_norm_and_residual() -> None:
    model = (nn.linear(3, 4) >> nn.batch_norm(4) >> nn.relu()
             >> nn.residual(nn.linear(4, 4) >> nn.tanh()) >> nn.linear(4, 2))
    net = nn.build(model, seed=5)
    rng = np.random.default_rng(2)
    lo = rng.normal(size=(3, 3))
    hi = lo + 0.3
    bs = [bounds.ibp(net, net.params, lo, hi), bounds.crown(net, net.params, lo, hi)]
    xs = rng.uniform(lo[:, None], hi[:, None], size=(3, 500, 3))
    for i in range(3):
        y = net.apply(net.params, tl.tensor(xs[i])).numpy()
        for b in bs:
            assert np.all(y >= b.lower[i] - 1e-12) and np.all(y <= b.upper[i] + 1e-12)


def test_bad_input() -> None:
    net, p, xl, xh = _known()
    with pytest.raises(ValueError, match="lower <= upper"):
        bounds.ibp(net, p, xh, xl)
    with pytest.raises(ValueError, match="covers"):
        bounds.ibp(net, p, xl, xh, covers="float16")
    with pytest.raises(UnsupportedOperation, match="binary32"):
        bounds.crown(net, {"0.weight": p["0.weight"] / 3, "2.weight": p["2.weight"]}, xl, xh,
                     covers="float32")


def test_float32_mode_covers_float32_execution() -> None:
    net = nn.build(nn.linear(3, 5) >> nn.tanh() >> nn.linear(5, 2), seed=4, dtype="float32")
    lo, hi = np.full((1, 3), -0.5), np.full((1, 3), 0.5)
    real = bounds.crown(net, net.params, lo, hi)
    f32 = bounds.crown(net, net.params, lo, hi, covers="float32")
    assert np.all(f32.lower < real.lower) and np.all(f32.upper > real.upper)
    xs = np.random.default_rng(0).uniform(-0.5, 0.5, size=(300, 3)).astype(np.float32)
    y = net.apply(net.params, tl.tensor(xs, dtype="float32")).numpy().astype(np.float64)
    assert np.all(y >= f32.lower[0]) and np.all(y <= f32.upper[0])
