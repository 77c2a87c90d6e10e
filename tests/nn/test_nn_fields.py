"""One built model, many fields: float and exact agree exactly on rational models where
binary64 is exact; interval outputs enclose the exact (or high-precision real) ones."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath.libmp import to_rational

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.errors import UnsupportedOperation

# A rational model: linear, relu, leaky_relu with a dyadic slope, residual, dropout (p = 1/2,
# so the scale is 2), and a linear head.
MODEL = (
    nn.linear(3, 4) >> nn.relu() >> nn.leaky_relu(0.25) >> nn.dropout(0.5)
    >> nn.residual(nn.linear(4, 4)) >> nn.linear(4, 2)
)
NET = nn.build(MODEL, seed=0)


def dyadic(denominator: int, bound: int) -> st.SearchStrategy[float]:
    return st.integers(-bound, bound).map(lambda k: k / denominator)


@st.composite
def case(draw: st.DrawFn) -> tuple[dict[str, np.ndarray[Any, Any]], np.ndarray[Any, Any], int]:
    # Weights k/8 with |k| <= 16, inputs k/4 with |k| <= 8, batches of 1, 2 or 4 rows: every
    # intermediate value is a dyadic rational with at most ~30 significant bits, so each
    # binary64 operation is exact, and means divide by a power of two (2 outputs per row).
    params = {
        name: np.array(draw(st.lists(dyadic(8, 16), min_size=t.size, max_size=t.size)))
        .reshape(t.shape)
        for name, t in NET.params.items()
    }
    rows = draw(st.sampled_from([1, 2, 4]))
    x = np.array(draw(st.lists(dyadic(4, 8), min_size=3 * rows, max_size=3 * rows)))
    return params, x.reshape(rows, 3), draw(st.integers(0, 1000))


def in_field(dtype: str, params: dict[str, Any], x: Any) -> tuple[Any, Any]:
    net = NET.with_state({k: tl.tensor(v) for k, v in params.items()}).to(dtype)
    return net, tl.tensor(x, dtype=dtype)


def endpoints(v: Any) -> tuple[Fraction, Fraction]:
    lo, hi = v._mpi_
    return Fraction(*to_rational(lo)), Fraction(*to_rational(hi))


@settings(deadline=None, max_examples=40)
@given(case())
def test_float_equals_exact_and_interval_encloses_it(
    c: tuple[dict[str, Any], Any, int]
) -> None:
    params, x, key = c
    outs = {}
    for dtype in ("float", "exact", "interval"):
        net, xt = in_field(dtype, params, x)
        pred = net.apply(net.params, xt, mode="train", key=key)
        target = tl.tensor(np.full(pred.shape, 0.5), dtype=dtype)
        losses = [nn.mse(pred, target), nn.mae(pred, target, reduction="sum"),
                  nn.huber(pred, target, delta=0.5)]
        outs[dtype] = [pred.numpy().ravel(), *[loss.numpy().ravel() for loss in losses]]
    for f_vals, e_vals, i_vals in zip(outs["float"], outs["exact"], outs["interval"], strict=True):
        for f, e, iv in zip(f_vals, e_vals, i_vals, strict=True):
            assert isinstance(e, Fraction)
            assert Fraction(float(f)) == e  # exactly equal, no tolerance
            lo, hi = endpoints(iv)
            assert lo <= e <= hi


def test_dropout_masks_agree_across_fields() -> None:
    x = np.ones((4, 3))
    outs = []
    for dtype in ("float", "exact"):
        net = nn.build(nn.dropout(0.5), dtype=dtype)
        outs.append(net.apply(net.params, tl.tensor(x, dtype=dtype), mode="train", key=9).numpy())
    assert [Fraction(float(v)) for v in outs[0].ravel()] == list(outs[1].ravel())
    assert set(outs[0].ravel()) <= {0.0, 2.0}


@pytest.mark.parametrize("dtype", ["float32", "ieee32exec"])
def test_binary32_fields_run_the_same_model(dtype: str) -> None:
    # Binary32 rounds: compare against binary64 with a tolerance of a few float32 ulps of
    # the output scale (the model has ~3 roundings per output on O(1) values).
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    ref = NET.apply(NET.params, tl.tensor(x)).numpy()
    net = NET.to(dtype)
    got = net.apply(net.params, tl.tensor(x, dtype=dtype)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_exact_rejects_irrational_layers_by_name() -> None:
    net = nn.build(nn.linear(2, 2) >> nn.layer_norm(2), dtype="exact")
    with pytest.raises(UnsupportedOperation, match="sqrt"):
        net.apply(net.params, tl.tensor([[1, 2]], dtype="exact"))
    net = nn.build(nn.tanh(), dtype="exact")
    with pytest.raises(UnsupportedOperation, match="tanh"):
        net.apply(net.params, tl.tensor([[1, 2]], dtype="exact"))


def _real_forward(params: dict[str, Any], x: Any) -> Any:
    """The transcendental model below in mpmath at 300 bits, as an independent reference."""
    mp = mpmath.mp.clone()
    mp.prec = 300

    def lin(h: Any, w: str, b: str) -> Any:
        W, B = params[w], params[b]
        return [[mp.fsum(mp.mpf(float(W[o, i])) * h[r][i] for i in range(W.shape[1]))
                 + mp.mpf(float(B[o])) for o in range(W.shape[0])] for r in range(len(h))]

    h = [[mp.mpf(float(v)) for v in row] for row in x]
    h = [[mp.tanh(v) for v in row] for row in lin(h, "0.weight", "0.bias")]
    normed = []
    for row in h:
        mean = mp.fsum(row) / len(row)
        var = mp.fsum((v - mean) ** 2 for v in row) / len(row)
        eps = mp.mpf(1e-5)
        normed.append([(v - mean) / mp.sqrt(var + eps) for v in row])  # weight 1, bias 0
    out = lin(normed, "3.weight", "3.bias")
    return [[mp.exp(v) / mp.fsum(mp.exp(u) for u in row) for v in row] for row in out]


def test_interval_encloses_the_real_result_of_a_transcendental_model() -> None:
    # Needs the interval field's transcendental enclosures (tanh, sqrt, exp via softmax).
    model = nn.linear(3, 4) >> nn.tanh() >> nn.layer_norm(4) >> nn.linear(4, 3) >> nn.softmax()
    net = nn.build(model, seed=11)
    x = np.array([[0.5, -1.25, 2.0], [0.0, 0.75, -0.5]])
    real = _real_forward({k: v.numpy() for k, v in net.params.items()}, x)
    inet = net.to("interval")
    enclosure = inet.apply(inet.params, tl.tensor(x, dtype="interval")).numpy()
    # The 300-bit reference is within ~2^-290 of the real value, far inside any 113-bit
    # enclosure's width, so containment of the reference stands for containment of the real.
    for r, row in enumerate(real):
        for c, v in enumerate(row):
            lo, hi = endpoints(enclosure[r, c])
            assert lo <= Fraction(*to_rational(v._mpf_)) <= hi
            assert hi - lo < Fraction(1, 2**80)  # and the enclosure is tight
