"""Each layer's forward pass against a NumPy reference in binary64, and train/eval state.

Tolerance: reference and layer evaluate the same formula in binary64; they may associate
sums differently (matmul, means), so they agree to a few ulps of the operands' scale.
rtol = atol = 1e-12 leaves ample room for that and is far below any real formula error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.tensor import Tensor

TOL = {"rtol": 1e-12, "atol": 1e-12}
NP = np.ndarray[Any, Any]

floats = st.floats(-4, 4, allow_nan=False, width=64)


def batch(n: int, d: int) -> st.SearchStrategy[NP]:
    return hnp.arrays(np.float64, (n, d), elements=floats)


def run(model: Any, x: NP, seed: int = 0, **kw: Any) -> tuple[NP, Any]:
    net = nn.build(model, seed=seed)
    return net.apply(net.params, tl.tensor(x), **kw).numpy(), net


def p(net: Any, name: str) -> NP:
    return np.asarray(net.params[name].numpy())


@settings(deadline=None, max_examples=30)
@given(batch(5, 3))
def test_linear(x: NP) -> None:
    y, net = run(nn.linear(3, 4), x)
    np.testing.assert_allclose(y, x @ p(net, "weight").T + p(net, "bias"), **TOL)
    y, net = run(nn.linear(3, 2, bias=False), x)
    assert list(net.params) == ["weight"]
    np.testing.assert_allclose(y, x @ p(net, "weight").T, **TOL)


def test_linear_keeps_leading_batch_axes() -> None:
    x = np.arange(24.0).reshape(2, 3, 4) / 10
    y, net = run(nn.linear(4, 5), x)
    assert y.shape == (2, 3, 5)
    np.testing.assert_allclose(y, x @ p(net, "weight").T + p(net, "bias"), **TOL)
    y1, _ = run(nn.linear(4, 5), x[0, 0])
    assert y1.shape == (5,)


def sig(a: NP) -> NP:
    return np.asarray(1 / (1 + np.exp(-a)))


ACTIVATIONS: dict[str, tuple[Any, Any]] = {
    "relu": (nn.relu(), lambda a: np.maximum(a, 0)),
    "leaky_relu": (nn.leaky_relu(0.2), lambda a: np.where(a > 0, a, 0.2 * a)),
    "sigmoid": (nn.sigmoid(), sig),
    "tanh": (nn.tanh(), np.tanh),
    "silu": (nn.silu(), lambda a: a * sig(a)),
    "softmax": (nn.softmax(), lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    "softmax0": (nn.softmax(axis=0), lambda a: np.exp(a) / np.exp(a).sum(0, keepdims=True)),
    "log_softmax": (
        nn.log_softmax(), lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True))
    ),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(deadline=None, max_examples=15)
@given(x=batch(3, 4))
def test_activations(name: str, x: NP) -> None:
    layer, ref = ACTIVATIONS[name]
    y, net = run(layer, x)
    assert net.params == {} and y.shape == x.shape
    np.testing.assert_allclose(y, ref(x), **TOL)


def test_gelu_is_the_erf_form() -> None:
    from math import erf, sqrt

    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    y, _ = run(nn.gelu(), x)
    want = [v * 0.5 * (1 + erf(v / sqrt(2))) for v in x[0]]
    np.testing.assert_allclose(y[0], want, **TOL)


@settings(deadline=None, max_examples=30)
@given(batch(4, 6))
def test_layer_norm(x: NP) -> None:
    model = nn.linear(6, 6) >> nn.layer_norm(6, eps=1e-3)
    net = nn.build(model, seed=1)
    params = dict(net.params)
    params["1.weight"] = tl.tensor(np.linspace(0.5, 2, 6))
    params["1.bias"] = tl.tensor(np.linspace(-1, 1, 6))
    y = net.apply(params, tl.tensor(x)).numpy()
    h = x @ p(net, "0.weight").T + p(net, "0.bias")
    mean = h.mean(-1, keepdims=True)
    var = ((h - mean) ** 2).mean(-1, keepdims=True)
    want = (h - mean) / np.sqrt(var + 1e-3) * np.linspace(0.5, 2, 6) + np.linspace(-1, 1, 6)
    np.testing.assert_allclose(y, want, **TOL)


@settings(deadline=None, max_examples=30)
@given(batch(5, 3), st.sampled_from([0.1, 0.5, 1.0]))
def test_batch_norm_train_updates_running_stats_and_eval_uses_them(
    x: NP, momentum: float
) -> None:
    net = nn.build(nn.batch_norm(3, eps=1e-5, momentum=momentum))
    before = {k: v.numpy().copy() for k, v in net.buffers.items()}
    y, new = net.apply_with_buffers(net.params, tl.tensor(x), mode="train")
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y.numpy(), (x - mean) / np.sqrt(var + 1e-5), **TOL)
    unbiased = x.var(0, ddof=1)
    np.testing.assert_allclose(new["running_mean"].numpy(), momentum * mean, **TOL)
    np.testing.assert_allclose(
        new["running_var"].numpy(), (1 - momentum) + momentum * unbiased, **TOL
    )
    # Nothing was mutated: the package still holds the initial buffers.
    for k, v in net.buffers.items():
        assert np.array_equal(v.numpy(), before[k])
    # Eval mode uses (and returns unchanged) the buffers it is given.
    z, same = net.apply_with_buffers(net.params, tl.tensor(x), mode="eval", buffers=new)
    rm, rv = new["running_mean"].numpy(), new["running_var"].numpy()
    np.testing.assert_allclose(z.numpy(), (x - rm) / np.sqrt(rv + 1e-5), **TOL)
    assert same == new
    # apply drops the buffer updates; eval with the initial buffers is (x - 0) / sqrt(1 + eps).
    e = net.apply(net.params, tl.tensor(x))
    np.testing.assert_allclose(e.numpy(), x / np.sqrt(1 + 1e-5), **TOL)


def test_two_batch_norms_update_their_own_buffers() -> None:
    net = nn.build(nn.batch_norm(2) >> nn.linear(2, 2) >> nn.batch_norm(2))
    x = tl.tensor([[1.0, 2.0], [3.0, 5.0], [0.0, -1.0]])
    _, new = net.apply_with_buffers(net.params, x, mode="train")
    assert list(new) == ["0.running_mean", "0.running_var", "2.running_mean", "2.running_var"]
    np.testing.assert_allclose(new["0.running_mean"].numpy(), 0.1 * x.numpy().mean(0), **TOL)
    assert not np.allclose(new["2.running_mean"].numpy(), new["0.running_mean"].numpy())


@settings(deadline=None, max_examples=20)
@given(batch(3, 4))
def test_residual(x: NP) -> None:
    y, net = run(nn.residual(nn.linear(4, 4) >> nn.tanh()), x)
    inner = np.tanh(x @ p(net, "block.0.weight").T + p(net, "block.0.bias"))
    np.testing.assert_allclose(y, x + inner, **TOL)
    same, _ = run(nn.residual(nn.relu()), x)
    np.testing.assert_allclose(same, x + np.maximum(x, 0), **TOL)


def test_flatten_and_reshape_keep_the_batch_axis() -> None:
    x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    y, _ = run(nn.flatten(), x)
    assert np.array_equal(y, x.reshape(2, 12))
    z, _ = run(nn.flatten() >> nn.reshape(4, 3), x)
    assert np.array_equal(z, x.reshape(2, 4, 3))
    w, _ = run(nn.reshape(12), x)
    assert w.shape == (2, 12)


def test_mlp_end_to_end_matches_numpy() -> None:
    model = nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(8, 1))
    x = np.array([[0.5, -1.0], [2.0, 0.25], [0.0, 0.0]])
    y, net = run(model, x, seed=4)
    h = np.maximum(x @ p(net, "0.weight").T + p(net, "0.bias"), 0)
    np.testing.assert_allclose(y, h @ p(net, "2.weight").T + p(net, "2.bias"), **TOL)
    np.testing.assert_allclose(net(tl.tensor(x)).numpy(), y, rtol=0, atol=0)


def test_repr_is_the_constructor_call() -> None:
    model = nn.linear(2, 4) >> nn.relu() >> nn.residual(nn.linear(4, 4, bias=False))
    assert repr(model) == "sequential(linear(2, 4), relu(), residual(linear(4, 4, bias=False)))"
    assert "param 0.weight: (4, 2)" in repr(nn.build(model))


def test_forward_is_generic_over_value_kinds() -> None:
    # The same layer code runs on tape values: gradients of a loss through a model with
    # every parameterised layer match central differences.
    from torchlean.runtime import autograd as ad

    model = (
        nn.linear(3, 4) >> nn.tanh() >> nn.layer_norm(4) >> nn.residual(nn.linear(4, 4))
        >> nn.batch_norm(4) >> nn.linear(4, 2)
    )
    net = nn.build(model, seed=3)
    x = tl.tensor(np.linspace(-1, 1, 15).reshape(5, 3))
    y = tl.tensor(np.linspace(0, 1, 10).reshape(5, 2))

    def loss(params: dict[str, Tensor]) -> Any:
        out, _ = net.forward(params, x, mode="train")
        return nn.mse(out, y)

    grads = ad.grad(loss)(dict(net.params))
    h = 1e-6
    for name in ("0.weight", "2.weight", "3.block.bias", "4.weight", "5.bias"):
        base = net.params[name].numpy()
        idx = (0,) * base.ndim
        up, down = base.copy(), base.copy()
        up[idx] += h
        down[idx] -= h
        f_up = loss({**net.params, name: tl.tensor(up)}).item()
        f_down = loss({**net.params, name: tl.tensor(down)}).item()
        # Central differences have O(h^2) truncation and O(eps/h) rounding error: about
        # 1e-10 here, so 1e-7 is a safe bound for an O(0.1..1) derivative.
        assert abs(grads[name].numpy()[idx] - (f_up - f_down) / (2 * h)) < 1e-7
