"""Soundness of IBP and CROWN on the layers nn builds (conv with stride / padding /
dilation / groups, both pools, batch norm, layer norm, residual blocks) and on smooth
MLPs, over the reals and for the binary32 execution.

Real-number soundness is checked three ways: 10^4 sampled points per box evaluated in
binary64 (those values are within ~1e-14 of the real ones for these small nets, so a
margin of 1e-10 cannot hide a real violation of any size that matters, and is stated
where used); a few points evaluated exactly over Fraction (piecewise-linear CNNs); and a
few points over mpmath intervals (smooth nets), which must lie inside with no margin.
float32: 10^4 binary32 points run bit-exactly in ieee32exec must lie in the
covers="float32" bounds, no margin.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.runtime.graph import interpret, trace
from torchlean.spec import functional as F
from torchlean.spec import nn
from torchlean.spec.errors import UnsupportedOperation
from torchlean.verify import bounds

SAMPLES = 10_000  # per box
# the big runs: `TORCHLEAN_SLOW=1 pytest -m slow tests/verify/test_bounds_layers.py`
BIG = pytest.mark.skipif(not os.environ.get("TORCHLEAN_SLOW"), reason="set TORCHLEAN_SLOW=1")
MARGIN = 1e-10    # binary64 evaluation vs the real value (see the module docstring)


def _cnn(seed: int, dtype: str = "float", pool_pad: bool = True) -> tuple[Any, tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    stride, pad, dil = int(rng.integers(1, 3)), int(rng.integers(0, 2)), int(rng.integers(1, 3))
    groups = int(rng.choice([1, 2]))
    act = [nn.relu, nn.tanh, nn.sigmoid][int(rng.integers(0, 3))]
    pp = int(rng.integers(0, 2)) if pool_pad else 0
    pool = nn.max_pool2d(2, padding=pp) if rng.integers(0, 2) else nn.avg_pool2d(2, padding=pp)
    model = (nn.conv2d(2, 4, 3, stride=stride, padding=pad + dil, dilation=dil, groups=groups)
             >> nn.batch_norm2d(4) >> nn.relu() >> pool
             >> nn.residual(nn.conv2d(4, 4, 3, padding=1) >> act())
             >> nn.global_avg_pool() >> nn.linear(4, 3))
    net = nn.build(model, seed=seed, dtype=dtype)
    # batch norm with non-trivial running statistics (binary32 values)
    buf = {k: tl.tensor(np.float32(rng.uniform(0.5, 1.5, size=v.shape) if "var" in k
                                   else rng.normal(size=v.shape) * 0.3), dtype=dtype)
           for k, v in net.buffers.items()}
    return net.with_state(buffers=buf), (2, 2, 7, 7)


def _mlp(act: str, seed: int, dtype: str = "float") -> tuple[Any, tuple[int, ...]]:
    f = {"tanh": nn.tanh, "sigmoid": nn.sigmoid, "gelu": nn.gelu}[act]
    model = nn.linear(3, 8) >> f() >> nn.linear(8, 8) >> f() >> nn.linear(8, 3)
    return nn.build(model, seed=seed, dtype=dtype), (2, 3)


def _run(net: Any, x: np.ndarray, field: str) -> np.ndarray:
    p = {k: tl.tensor(v.numpy(), dtype=field) for k, v in net.params.items()}
    b = {k: tl.tensor(v.numpy(), dtype=field) for k, v in net.buffers.items()}
    y, _ = net.forward(p, tl.tensor(x, dtype=field), buffers=b, mode="eval")
    return np.asarray(y.numpy())


def _box(seed: int, shape: tuple[int, ...], eps: float) -> tuple[np.ndarray, np.ndarray]:
    c = np.random.default_rng(seed + 1).normal(size=shape) * 0.5
    return c - eps, c + eps


def _samples(lo: np.ndarray, hi: np.ndarray, seed: int) -> np.ndarray:
    """SAMPLES points of each box (batch row), corners of the first two included:
    shape (batch, SAMPLES, *row shape)."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(lo[:, None], hi[:, None], size=(lo.shape[0], SAMPLES) + lo.shape[1:])
    xs[:, 0], xs[:, 1] = lo, hi
    return xs


def _check_real(net: Any, shape: tuple[int, ...], lo: np.ndarray, hi: np.ndarray,
                seed: int) -> list[bounds.Bounds]:
    C = bounds.margin_matrix(0, 3)
    bs = [bounds.ibp(net, net.params, lo, hi, C=C), bounds.crown(net, net.params, lo, hi, C=C)]
    xs = _samples(lo, hi, seed)
    for i in range(shape[0]):
        y = _run(net, xs[i], "float") @ C.T
        for b in bs:
            assert np.all(y >= b.lower[i] - MARGIN), (b.method, (y.min(0) - b.lower[i]))
            assert np.all(y <= b.upper[i] + MARGIN), (b.method, (b.upper[i] - y.max(0)))
    return bs


def _check_float32(net: Any, shape: tuple[int, ...], lo: np.ndarray, hi: np.ndarray,
                   seed: int) -> None:
    lo32, hi32 = np.float32(lo).astype(np.float64), np.float32(hi).astype(np.float64)
    lo32, hi32 = np.minimum(lo32, hi32), np.maximum(lo32, hi32)
    bs = [bounds.ibp(net, net.params, lo32, hi32, covers="float32"),
          bounds.crown(net, net.params, lo32, hi32, covers="float32")]
    xs = np.clip(np.float32(_samples(lo32, hi32, seed)), np.float32(lo32)[:, None],
                 np.float32(hi32)[:, None])
    for i in range(shape[0]):
        y = _run(net, xs[i], "ieee32exec").astype(np.float64)
        for b in bs:
            assert np.all(y >= b.lower[i]) and np.all(y <= b.upper[i]), b.method


FAST = settings(deadline=None, max_examples=3, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


def _cnn_case(seed: int, eps: float) -> None:
    net, shape = _cnn(seed)
    lo, hi = _box(seed, shape, eps)
    _check_real(net, shape, lo, hi, seed)


def _mlp_case(act: str, seed: int, eps: float) -> None:
    net, shape = _mlp(act, seed)
    lo, hi = _box(seed, shape, eps)
    ib, cr = _check_real(net, shape, lo, hi, seed)
    assert np.mean(cr.width) <= np.mean(ib.width)


@FAST
@given(seed=st.integers(0, 10**6), eps=st.sampled_from([0.01, 0.1, 0.5]))
def test_cnn_sound(seed: int, eps: float) -> None:
    _cnn_case(seed, eps)


@FAST
@given(act=st.sampled_from(["tanh", "sigmoid", "gelu"]), seed=st.integers(0, 10**6),
       eps=st.sampled_from([0.01, 0.3, 2.0]))
def test_smooth_mlp_sound(act: str, seed: int, eps: float) -> None:
    _mlp_case(act, seed, eps)


@pytest.mark.slow
@BIG
@SLOW
@given(seed=st.integers(0, 10**6), eps=st.floats(1e-3, 1.0))
def test_cnn_sound_many(seed: int, eps: float) -> None:
    _cnn_case(seed, eps)


@pytest.mark.slow
@BIG
@SLOW
@given(act=st.sampled_from(["tanh", "sigmoid", "gelu"]), seed=st.integers(0, 10**6),
       eps=st.floats(1e-3, 3.0))
def test_smooth_mlp_sound_many(act: str, seed: int, eps: float) -> None:
    _mlp_case(act, seed, eps)


@pytest.mark.parametrize("kind", ["cnn", "cnn2", "tanh", "sigmoid", "gelu"])
def test_float32_cover_contains_ieee32exec(kind: str) -> None:
    seed = 8 if kind == "cnn2" else 7
    net, shape = _cnn(seed, "float32", False) if kind.startswith("cnn") else \
        _mlp(kind, seed, "float32")
    lo, hi = _box(seed, shape, 0.1)
    _check_float32(net, shape, lo, hi, seed)


def test_float32_cover_of_padded_max_pool() -> None:
    # a padded max pool selects with `where`; the float32 cover needs the rounding
    # analysis's rule for it, and reports that analysis's refusal if it has none
    net = nn.build(nn.conv2d(2, 2, 3) >> nn.max_pool2d(2, padding=1) >> nn.flatten()
                   >> nn.linear(8, 2), seed=1, dtype="float32")
    lo, hi = _box(1, (2, 2, 4, 4), 0.1)
    lo, hi = np.float32(lo).astype(np.float64), np.float32(hi).astype(np.float64)
    try:
        _check_float32(net, (2, 2, 4, 4), lo, hi, 1)
    except UnsupportedOperation as e:
        assert e.op == "where" and "rounding" in str(e)
        pytest.skip(f"the rounding analysis has no rule for where yet: {e}")


def test_relu_cnn_exact_points() -> None:
    # no batch norm (its sqrt is irrational): the real output at a few points, over Fraction
    model = (nn.conv2d(2, 3, 3, stride=2, padding=1) >> nn.relu() >> nn.max_pool2d(2, padding=1)
             >> nn.residual(nn.conv2d(3, 3, 3, padding=1) >> nn.relu()) >> nn.avg_pool2d(2)
             >> nn.flatten() >> nn.linear(3, 2))
    net = nn.build(model, seed=11)
    lo, hi = _box(11, (1, 2, 6, 6), 0.2)
    bs = [bounds.ibp(net, net.params, lo, hi), bounds.crown(net, net.params, lo, hi)]
    xs = np.random.default_rng(0).uniform(lo, hi, size=(4,) + lo.shape)
    for x in list(xs) + [lo, hi]:
        y = _run(net, x, "exact")[0]
        for b in bs:
            for j, v in enumerate(y):
                assert float(b.lower[0, j]) <= v <= float(b.upper[0, j])


@pytest.mark.parametrize("kind", ["cnn", "tanh", "layer_norm"])
def test_smooth_interval_points(kind: str) -> None:
    # mpmath intervals enclose the real output: they must lie inside, no margin
    if kind == "cnn":
        net, shape = _cnn(3)
    elif kind == "tanh":
        net, shape = _mlp("tanh", 3)
    else:
        net = nn.build(nn.linear(3, 5) >> nn.layer_norm(5) >> nn.tanh() >> nn.linear(5, 2),
                       seed=3)
        shape = (2, 3)
    lo, hi = _box(3, shape, 0.2)
    bs = [bounds.ibp(net, net.params, lo, hi), bounds.crown(net, net.params, lo, hi)]
    xs = np.random.default_rng(0).uniform(lo, hi, size=(3,) + lo.shape)
    for x in xs:
        y = _run(net, x, "interval")
        for b in bs:
            for i in range(shape[0]):
                for j, v in enumerate(np.asarray(y[i]).reshape(-1)):
                    assert b.lower[i, j] <= float(v.a) and float(v.b) <= b.upper[i, j]


# -- layers built by spec.functional (traced graphs): conv1d, conv_transpose2d, pad,
# adaptive average pooling, embedding with fixed tokens, products, max and quotients of
# input-dependent values, residual broadcasting, softplus / exp / log / sqrt
def _conv1d(p: Any, x: Any) -> Any:
    y = F.conv1d(x, p["w"], p["b"], stride=2, padding=1, dilation=2)
    return F.reshape(F.softplus(y), (y.shape[0], -1))


def _conv_transpose(p: Any, x: Any) -> Any:
    y = F.conv_transpose2d(x, p["w"], p["b"], stride=2, padding=1, output_padding=1)
    y = F.adaptive_avg_pool2d(F.relu(y), 2)
    return F.reshape(y, (y.shape[0], -1))


def _pad_exp_log(p: Any, x: Any) -> Any:
    y = F.pad(x, [(1, 2)])
    z = F.exp(F.matmul(y, p["w"]))
    return F.log(F.add(z, 1.0)) - F.sqrt(F.add(F.square(F.matmul(y, p["w"])), 0.5))


def _products(p: Any, x: Any) -> Any:
    h, k = F.matmul(x, p["w"]), F.matmul(x, p["v"])
    return (F.mul(F.tanh(h), F.sigmoid(k)) + F.maximum(h, k) - F.minimum(h, F.gelu(k))
            + F.div(h, F.add(F.exp(k), 1.0)))


def _broadcast_residual(p: Any, x: Any) -> Any:
    h = F.matmul(x, p["w"])
    return F.relu(h + F.sum(h, 1, keepdims=True)) - F.mean(h, 1, keepdims=True) * 2.0


def _embedding(p: Any, x: Any) -> Any:
    tokens = F.reshape(p["ids"], (1, 3)) + 0.0  # fixed tokens (a constant sum stays exact)
    e = F.embedding(F.broadcast_to(tokens, (x.shape[0], 3)), p["table"])
    return F.matmul(F.reshape(e, (x.shape[0], 6)) + F.matmul(x, p["w"]), p["u"])


def _transpose_broadcast(p: Any, x: Any) -> Any:
    h = F.reshape(F.matmul(x, p["w"]), (x.shape[0], 2, 3))
    t = F.transpose(h, (0, 2, 1))                       # (B, 3, 2)
    wide = F.broadcast_to(F.reshape(t, (x.shape[0], 3, 2, 1)), (x.shape[0], 3, 2, 2))
    return F.reshape(F.tanh(wide) * F.reshape(p["s"], (2, 2)), (x.shape[0], 12))


GRAPHS = {
    "conv1d": (_conv1d, {"w": (3, 2, 3), "b": (3,)}, (2, 7)),
    "conv_transpose": (_conv_transpose, {"w": (2, 3, 3, 3), "b": (3,)}, (2, 3, 3)),
    "pad_exp_log": (_pad_exp_log, {"w": (7, 3)}, (4,)),
    "products": (_products, {"w": (3, 4), "v": (3, 4)}, (3,)),
    "broadcast_residual": (_broadcast_residual, {"w": (3, 4)}, (3,)),
    "transpose_broadcast": (_transpose_broadcast, {"w": (3, 6), "s": (4,)}, (3,)),
    "embedding": (_embedding, {"ids": (3,), "table": (5, 2), "w": (3, 6), "u": (6, 2)}, (3,)),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_functional_layers_sound(name: str) -> None:
    fn, pshapes, row = GRAPHS[name]
    rng = np.random.default_rng(5)
    params = {k: rng.normal(size=s) * 0.7 for k, s in pshapes.items()}
    if "ids" in params:
        params["ids"] = np.array([4.0, 0.0, 2.0])
    g = trace(fn, {"x": (2, *row)}, pshapes, "float")
    lo, hi = _box(5, (2, *row), 0.1)
    bs = [bounds.ibp(g, params, lo, hi), bounds.crown(g, params, lo, hi)]
    big = trace(fn, {"x": (SAMPLES, *row)}, pshapes, "float")
    xs = _samples(lo, hi, 5)
    for i in range(2):
        y = next(iter(interpret(big, {**params, "x": xs[i]}).values())).numpy()
        y = y.reshape(SAMPLES, -1)
        for b in bs:
            assert np.all(y >= b.lower[i] - MARGIN) and np.all(y <= b.upper[i] + MARGIN), b.method
    assert np.mean(bs[1].width) <= 1.05 * np.mean(bs[0].width)


def test_nn_embedding_fixed_tokens() -> None:
    net = nn.build(nn.embedding(5, 3) >> nn.flatten() >> nn.linear(6, 2) >> nn.tanh(), seed=2)
    ids = np.array([[4.0, 1.0], [0.0, 3.0]])
    y = net.apply(net.params, tl.tensor(ids)).numpy()
    for method in (bounds.ibp, bounds.crown):
        b = method(net, net.params, ids, ids)
        assert np.all(b.lower <= y) and np.all(y <= b.upper)
        assert np.all(b.width < 1e-12)  # a point box: only rounding is left
    with pytest.raises(UnsupportedOperation, match="fixed tokens"):
        bounds.ibp(net, net.params, ids, ids + 1.0)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_sound(causal: bool) -> None:
    # q k^T multiplies two input-dependent values: CROWN bounds that node by its interval
    net = nn.build(nn.multi_head_attention(4, 2, causal=causal) >> nn.flatten()
                   >> nn.linear(12, 2), seed=0)
    lo, hi = _box(0, (2, 3, 4), 0.05)
    bs = [bounds.ibp(net, net.params, lo, hi), bounds.crown(net, net.params, lo, hi)]
    xs = _samples(lo, hi, 0)
    for i in range(2):
        y = _run(net, xs[i], "float").reshape(SAMPLES, -1)
        for b in bs:
            assert np.all(y >= b.lower[i] - MARGIN) and np.all(y <= b.upper[i] + MARGIN), b.method
    assert np.mean(bs[1].width) < np.mean(bs[0].width)


def _linear_mix(p: Any, x: Any) -> Any:
    """Only linear ops (conv with padding and stride, transpose, broadcast, slices,
    concat, sums, means, a constant-condition where): CROWN must be exact on it."""
    b = x.shape[0]
    img = F.reshape(x, (b, 1, 4, 4))
    y = F.conv2d(img, p["k"], None, stride=2, padding=1)          # (b, 2, 2, 2)
    t = F.transpose(y, (0, 3, 1, 2))
    s = F.sum(t, 3, keepdims=True) + F.mean(t, (1, 2))[:, :, None, None]
    w = F.broadcast_to(s, (b, 2, 2, 3))
    flat = F.reshape(w, (b, 12))
    mask = F.reshape(p["m"], (12,))
    sel = F.where(F.greater(mask, 0.0), flat, -flat)
    cat = F.concat([sel[:, :5], F.pad(sel[:, 5:], [(1, 0)])], axis=1)
    return F.matmul(cat, p["out"])


def test_crown_exact_on_linear_graphs() -> None:
    pshapes = {"k": (2, 1, 3, 3), "m": (12,), "out": (13, 3)}
    rng = np.random.default_rng(9)
    params = {k: rng.normal(size=s) for k, s in pshapes.items()}
    g = trace(_linear_mix, {"x": (1, 16)}, pshapes, "float")
    lo, hi = _box(9, (1, 16), 0.3)
    crown = bounds.crown(g, params, lo, hi)
    # the exact range of y = J x + c from J (float64, error ~1e-15)
    basis = trace(_linear_mix, {"x": (17, 16)}, pshapes, "float")
    pts = np.vstack([np.zeros((1, 16)), np.eye(16)])
    ys = next(iter(interpret(basis, {**params, "x": pts}).values())).numpy()
    c, J = ys[0], ys[1:] - ys[0]
    mid, rad = (lo[0] + hi[0]) / 2, (hi[0] - lo[0]) / 2
    centre, spread = c + mid @ J, rad @ np.abs(J)
    assert np.all(crown.lower[0] <= centre - spread + 1e-9)
    assert np.all(crown.upper[0] >= centre + spread - 1e-9)
    assert np.allclose(crown.lower[0], centre - spread, atol=1e-9)
    assert np.allclose(crown.upper[0], centre + spread, atol=1e-9)
