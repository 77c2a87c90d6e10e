"""Convolution, pooling, padding, normalisation, embedding and attention composites:
forward against naive NumPy loops and PyTorch, shapes, ieee32exec summation order,
gradient checks, and eager == compiled."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime.graph import compile_graph, trace
from torchlean.spec import ShapeError, UnsupportedOperation, exact, float64, ieee32exec
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify import gradcheck

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - depends on the machine
    torch = None  # type: ignore[assignment]

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
# float64 results whose only difference is summation order: a few ulps of the terms' size.
TOL = 1e-12


def t64(a: np.ndarray[Any, Any]) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64), float64)


def naive_conv2d(x: np.ndarray[Any, Any], w: np.ndarray[Any, Any], b: Any, s: tuple[int, int],
                 p: tuple[int, int], d: tuple[int, int], groups: int) -> np.ndarray[Any, Any]:
    """The textbook definition, one output at a time."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * p[0], wd + 2 * p[1]))
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + wd] = x
    oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for bi, oc, y, x_ in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oc // og
        acc = 0.0 if b is None else b[oc]
        for ci, i, j in itertools.product(range(cg), range(kh), range(kw)):
            acc += w[oc, ci, i, j] * xp[bi, g * cg + ci, y * s[0] + i * d[0], x_ * s[1] + j * d[1]]
        out[bi, oc, y, x_] = acc
    return out


conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "groups": st.sampled_from([1, 2]), "cg": st.integers(1, 2),
    "og": st.integers(1, 2), "h": st.integers(3, 6), "w": st.integers(3, 6),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "s": st.tuples(st.integers(1, 2),
    st.integers(1, 2)), "p": st.tuples(st.integers(0, 1), st.integers(0, 1)),
    "d": st.tuples(st.integers(1, 2), st.integers(1, 2)), "bias": st.booleans(),
    "seed": st.integers(0, 2**16),
})


def draw_conv(c: dict[str, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["n"], c["groups"] * c["cg"], c["h"], c["w"]))
    w = rng.standard_normal((c["groups"] * c["og"], c["cg"], c["kh"], c["kw"]))
    b = rng.standard_normal(c["groups"] * c["og"])
    return x, w, b


@settings(deadline=None, max_examples=25)
@given(conv_cases)
def test_conv2d_matches_naive_loops(c: dict[str, Any]) -> None:
    x, w, b = draw_conv(c)
    bias = b if c["bias"] else None
    try:
        ref = naive_conv2d(x, w, bias, c["s"], c["p"], c["d"], c["groups"])
    except ValueError:
        ref = None
    if ref is None or 0 in ref.shape:
        with pytest.raises(ShapeError, match="conv2d"):
            F.conv2d(t64(x), t64(w), None, c["s"], c["p"], c["d"], c["groups"])
        return
    y = F.conv2d(t64(x), t64(w), None if bias is None else t64(b), c["s"], c["p"], c["d"],
                 c["groups"])
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=TOL)


def test_conv2d_ieee32exec_is_a_left_fold_over_c_i_j() -> None:
    """Each output is round(round(...round(0 + w0 x0) + w1 x1...)) in (c, i, j) order, then
    + bias with one more rounding: computed here term by term in float32."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    w = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    y = F.conv2d(Tensor(x, ieee32exec), Tensor(w, ieee32exec), Tensor(b, ieee32exec))
    out = y.numpy()
    for o, r, q in itertools.product(range(2), range(3), range(3)):
        acc = np.float32(0)
        for ci, i, j in itertools.product(range(3), range(2), range(2)):
            acc = np.float32(acc + np.float32(w[o, ci, i, j] * x[0, ci, r + i, q + j]))
        assert out[0, o, r, q] == np.float32(acc + b[o])


def test_shape_errors_name_the_op() -> None:
    x = t64(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ShapeError, match="conv2d.*groups=2"):
        F.conv2d(x, t64(np.zeros((2, 2, 1, 1))), groups=2)
    with pytest.raises(ShapeError, match="conv2d: kernel span 5"):
        F.conv2d(x, t64(np.zeros((1, 2, 5, 1))))
    with pytest.raises(ValueError, match="max_pool2d: padding"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ShapeError, match="pad"):
        F.pad(x, [(-1, 0)])


def naive_pool(x: np.ndarray[Any, Any], k: int, s: int, p: int, how: str) -> np.ndarray[Any, Any]:
    fill = -np.inf if how == "max" else 0.0
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p, w + 2 * p), fill)
    xp[:, :, p:p + h, p:p + w] = x
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((n, c, oh, ow))
    for r, q in itertools.product(range(oh), range(ow)):
        win = xp[:, :, r * s:r * s + k, q * s:q * s + k]
        out[:, :, r, q] = win.max(axis=(2, 3)) if how == "max" else win.mean(axis=(2, 3))
    return out


@settings(deadline=None, max_examples=20)
@given(k=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 1), seed=st.integers(0, 99))
def test_pools_match_naive_loops(k: int, s: int, p: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((2, 2, 5, 4))
    p = min(p, k // 2)
    for how, fn in (("max", F.max_pool2d), ("avg", F.avg_pool2d)):
        y = fn(t64(x), k, s, p)
        np.testing.assert_allclose(y.numpy(), naive_pool(x, k, s, p, how), rtol=0, atol=TOL)


def test_max_pool_gradient_goes_to_first_row_major_winner() -> None:
    from torchlean.runtime import autograd as ad

    x = t64(np.array([[[[1.0, 3.0], [3.0, 0.0]]]]))
    (g,) = ad.grad(lambda v: F.sum(F.max_pool2d(v, 2)), argnums=(0,))(x)
    assert g.numpy().tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


def test_adaptive_and_global_pool() -> None:
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 7))
    y = F.adaptive_avg_pool2d(t64(x), (2, 3)).numpy()
    for i, j in itertools.product(range(2), range(3)):
        r0, r1 = (i * 5) // 2, -((-(i + 1) * 5) // 2)
        c0, c1 = (j * 7) // 3, -((-(j + 1) * 7) // 3)
        np.testing.assert_allclose(y[0, :, i, j], x[0, :, r0:r1, c0:c1].mean(axis=(1, 2)),
                                   rtol=0, atol=TOL)
    np.testing.assert_allclose(F.global_avg_pool(t64(x)).numpy(), x.mean(axis=(2, 3)),
                               rtol=0, atol=TOL)


def test_embedding_picks_rows_and_rejects_bad_ids() -> None:
    w = np.arange(12.0).reshape(4, 3)
    ids = t64(np.array([[3.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_array_equal(F.embedding(ids, t64(w)).numpy(), w[[[3, 0], [1, 1]]])
    with pytest.raises(ValueError, match=r"label .*4\.0"):
        F.embedding(t64(np.array([4.0])), t64(w))


def frac(a: np.ndarray[Any, Any]) -> Tensor:
    """Dyadic Fractions: exact inputs for the exact gradient check."""
    return Tensor(exact.asarray(np.round(a * 8) / 8), exact)


GRAD_FUNCS = {
    "conv2d": (lambda x, w, b: F.sum(F.square(F.conv2d(x, w, b, 1, 1, (1, 2), 2))),
               [(1, 4, 4, 4), (4, 2, 2, 2), (4,)]),
    "conv1d": (lambda x, w: F.sum(F.square(F.conv1d(x, w, None, 2, 1))),
               [(2, 2, 5), (3, 2, 3)]),
    "max_pool2d": (lambda x: F.sum(F.square(F.max_pool2d(x, 3, 2, 1))), [(1, 2, 4, 5)]),
    "avg_pool2d": (lambda x: F.sum(F.square(F.avg_pool2d(x, 2, 1, 1))), [(1, 2, 3, 3)]),
    "adaptive": (lambda x: F.sum(F.square(F.adaptive_avg_pool2d(x, (2, 2)))), [(1, 1, 3, 5)]),
    "pad": (lambda x: F.sum(F.square(F.pad(x, [(1, 2), (0, 1)]))), [(2, 3)]),
    "embedding": (lambda w: F.sum(F.square(F.embedding(
        Tensor(w.field.asarray([[2.0, 0.0, 2.0]]), w.field), w))), [(3, 2)]),
}


@pytest.mark.parametrize("name", sorted(GRAD_FUNCS))
@pytest.mark.parametrize("method", ["exact", "central"])
def test_gradients(name: str, method: str) -> None:
    fn, shapes = GRAD_FUNCS[name]
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal(s) for s in shapes]
    # unrounded float64 draws for central differences: no ties, so no max-pool kinks
    args = tuple(frac(a) for a in arrays) if method == "exact" else tuple(
        t64(a) for a in arrays)
    report = gradcheck(fn, args, method=method)
    assert report.passed, report


@pytest.mark.parametrize("causal", [False, True])
def test_attention_and_norm_gradients(causal: bool) -> None:
    rng = np.random.default_rng(5)
    q, k, v = (t64(rng.standard_normal((2, 3, 4))) for _ in range(3))

    def f(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return F.sum(F.square(F.scaled_dot_product_attention(q, k, v, causal=causal)))

    assert gradcheck(f, (q, k, v), method="central").passed
    x, w = t64(rng.standard_normal((2, 4, 3))), t64(rng.standard_normal(4))
    report = gradcheck(lambda x, w: F.sum(F.square(F.group_norm(x, 2, w, w) + F.rms_norm(
        x, F.reshape(w[:3], (3,))))), (x, w), method="central")
    assert report.passed, report


def test_eager_equals_compiled_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((4, 2, 3, 3)), \
        rng.standard_normal(4)
    q = rng.standard_normal((2, 3, 4))

    def model(x: Any, w: Any, b: Any, q: Any) -> Any:
        h = F.relu(F.conv2d(x, w, b, padding=1))
        h = F.avg_pool2d(F.max_pool2d(h, 2, 1, 1), 2)
        a = F.scaled_dot_product_attention(q, q, q, causal=True)
        return F.sum(F.square(h)) + F.sum(F.group_norm(h, 2)) + F.sum(a)

    eager = model(t64(x), t64(w), t64(b), t64(q)).numpy()
    g = trace(model, {"x": x.shape, "w": w.shape, "b": b.shape, "q": q.shape})
    out = compile_graph(g)({"x": x, "w": w, "b": b, "q": q})["out"].numpy()
    assert out.tobytes() == eager.tobytes()


@needs_torch
@settings(deadline=None, max_examples=10)
@given(conv_cases)
def test_conv2d_forward_and_backward_match_torch(c: dict[str, Any]) -> None:
    from torchlean.runtime import autograd as ad

    x, w, b = draw_conv(c)
    args = (c["s"], c["p"], c["d"], c["groups"])
    try:
        yt = TF.conv2d(*(torch.tensor(a, requires_grad=True) for a in (x, w, b)), *args)
    except RuntimeError:
        return  # torch rejects sizes that leave no output; covered by the naive test
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = TF.conv2d(xt, wt, bt, *args)
    (yt**2).sum().backward()
    grads = ad.grad(lambda x, w, b: F.sum(F.square(F.conv2d(x, w, b, *args))),
                    argnums=(0, 1, 2))(t64(x), t64(w), t64(b))
    y = F.conv2d(t64(x), t64(w), t64(b), *args)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=0, atol=TOL)
    for ours, theirs in zip(grads, (xt, wt, bt), strict=True):
        assert theirs.grad is not None
        # gradients sum a few hundred float64 products: 1e-10 absolute is still ~1e5 ulps
        np.testing.assert_allclose(ours.numpy(), theirs.grad.numpy(), rtol=0, atol=1e-10)


@needs_torch
def test_pools_norms_attention_match_torch() -> None:
    from torchlean.runtime import autograd as ad

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 6))
    cases: list[tuple[Any, Any]] = [
        (lambda v: F.max_pool2d(v, 3, 2, 1), lambda v: TF.max_pool2d(v, 3, 2, 1)),
        (lambda v: F.avg_pool2d(v, 2, 1, 1), lambda v: TF.avg_pool2d(v, 2, 1, 1)),
        (lambda v: F.adaptive_avg_pool2d(v, (2, 4)), lambda v: TF.adaptive_avg_pool2d(v, (2, 4))),
        (lambda v: F.group_norm(v, 2), lambda v: TF.group_norm(v, 2)),
        (lambda v: F.rms_norm(v, None, 1e-6), lambda v: TF.rms_norm(v, (6,), None, 1e-6)),
        (lambda v: F.scaled_dot_product_attention(v, v, v, causal=True),
         lambda v: TF.scaled_dot_product_attention(v, v, v, is_causal=True)),
        (lambda v: F.pad(v, [(1, 2), (3, 0)]), lambda v: TF.pad(v, (3, 0, 1, 2))),
    ]
    for ours, theirs in cases:
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        (yt**2).sum().backward()
        (g,) = ad.grad(lambda v, f=ours: F.sum(F.square(f(v))), argnums=(0,))(t64(x))
        np.testing.assert_allclose(ours(t64(x)).numpy(), yt.detach().numpy(), rtol=0, atol=TOL)
        assert xt.grad is not None
        np.testing.assert_allclose(g.numpy(), xt.grad.numpy(), rtol=0, atol=1e-10)


def test_exact_attention_refuses_exp() -> None:
    """Attention needs exp, which has no rational value: exact says so by name."""
    q = frac(np.random.default_rng(0).standard_normal((2, 4)))
    mask = Tensor(exact.asarray(np.array([[1, 0], [1, 1]])), exact)
    with pytest.raises(UnsupportedOperation, match="exp"):
        F.scaled_dot_product_attention(q, q, q, mask=mask)
