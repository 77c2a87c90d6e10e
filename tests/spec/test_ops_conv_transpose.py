"""conv_transpose2d (a composite of unslice and conv2d): forward and backward against
PyTorch, the adjoint identity with conv2d, gradient checks, eager == compiled, errors."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime.graph import compile_graph, trace
from torchlean.spec import ShapeError, exact, float64
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify import gradcheck

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - depends on the machine
    torch = None  # type: ignore[assignment]

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
# float64 results that differ only in summation order over at most ~50 terms of size O(1):
# a few ulps of the terms' size.
TOL = 1e-12


def t64(a: np.ndarray[Any, Any]) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64), float64)


cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "groups": st.sampled_from([1, 2]), "cg": st.integers(1, 2),
    "og": st.integers(1, 2), "h": st.integers(1, 4), "w": st.integers(1, 4),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3),
    "s": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "p": st.tuples(st.integers(0, 2), st.integers(0, 2)),
    "d": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "op": st.tuples(st.integers(0, 2), st.integers(0, 2)), "seed": st.integers(0, 2**16),
})


def draw(c: dict[str, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["n"], c["groups"] * c["cg"], c["h"], c["w"]))
    w = rng.standard_normal((c["groups"] * c["cg"], c["og"], c["kh"], c["kw"]))
    b = rng.standard_normal(c["groups"] * c["og"])
    return x, w, b


@needs_torch
@settings(deadline=None, max_examples=30)
@given(cases)
def test_forward_and_backward_match_torch(c: dict[str, Any]) -> None:
    from torchlean.runtime import autograd as ad

    x, w, b = draw(c)
    args = (c["s"], c["p"], c["op"], c["groups"], c["d"])
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    try:
        yt = TF.conv_transpose2d(xt, wt, bt, *args)
    except RuntimeError:  # torch refuses: output_padding too large, or no output
        with pytest.raises((ValueError, ShapeError)):
            F.conv_transpose2d(t64(x), t64(w), t64(b), *args)
        return
    (yt**2).sum().backward()
    y = F.conv_transpose2d(t64(x), t64(w), t64(b), *args)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=0, atol=TOL)
    grads = ad.grad(lambda x, w, b: F.sum(F.square(F.conv_transpose2d(x, w, b, *args))),
                    argnums=(0, 1, 2))(t64(x), t64(w), t64(b))
    for ours, theirs in zip(grads, (xt, wt, bt), strict=True):
        assert theirs.grad is not None
        # gradients sum a few hundred float64 products: 1e-10 absolute is still ~1e5 ulps
        np.testing.assert_allclose(ours.numpy(), theirs.grad.numpy(), rtol=0, atol=1e-10)


def frac(a: np.ndarray[Any, Any]) -> Tensor:
    return Tensor(exact.asarray(np.vectorize(lambda v: Fraction(round(v * 8), 8))(a)), exact)


def test_is_the_adjoint_of_conv2d_exactly() -> None:
    # <conv2d(u, w), v> == <u, conv_transpose2d(v, w)> for the same stride, padding,
    # dilation and groups: an identity of exact rationals, so equality is exact.
    rng = np.random.default_rng(3)
    u, w = frac(rng.standard_normal((1, 4, 7, 6))), frac(rng.standard_normal((6, 2, 3, 2)))
    s, p, d = (2, 1), (1, 0), (1, 2)
    y = F.conv2d(u, w, stride=s, padding=p, dilation=d, groups=2)
    v = frac(rng.standard_normal(y.shape))
    # These sizes lose no row to the stride (7 -> 4 -> 7), so output_padding is 0.
    back = F.conv_transpose2d(v, w, stride=s, padding=p, output_padding=0, groups=2,
                              dilation=d)
    assert back.shape == u.shape
    assert F.sum(y * v).item() == F.sum(u * back).item()


@pytest.mark.parametrize("method", ["exact", "central"])
def test_gradcheck(method: str) -> None:
    rng = np.random.default_rng(4)
    arrays = (rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 3, 2, 2)),
              rng.standard_normal(3))
    args = tuple(frac(a) if method == "exact" else t64(a) for a in arrays)
    report = gradcheck(lambda x, w, b: F.sum(F.square(F.conv_transpose2d(
        x, w, b, stride=2, padding=1, output_padding=1))), args, method=method)
    assert report.passed, report


def test_unbatched_input_and_eager_equals_compiled() -> None:
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 2, 3, 3)), \
        rng.standard_normal(2)
    batched = F.conv_transpose2d(t64(x[None]), t64(w), t64(b), 2, 1).numpy()
    single = F.conv_transpose2d(t64(x), t64(w), t64(b), 2, 1).numpy()
    assert single.shape == (2, 5, 5) and single.tobytes() == batched[0].tobytes()

    def model(x: Any, w: Any, b: Any) -> Any:
        return F.sum(F.square(F.conv_transpose2d(x, w, b, stride=2, padding=(0, 1))))

    eager = model(t64(x), t64(w), t64(b)).numpy()
    g = trace(model, {"x": x.shape, "w": w.shape, "b": b.shape})
    out = compile_graph(g)({"x": x, "w": w, "b": b})["out"].numpy()
    assert out.tobytes() == eager.tobytes()


def test_bad_arguments_are_named() -> None:
    x, w = t64(np.zeros((1, 2, 3, 3))), t64(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"output_padding \(1, 1\) must be below"):
        F.conv_transpose2d(x, w, output_padding=1)
    with pytest.raises(ShapeError, match=r"weight \(3, 1, 3, 3\)"):
        F.conv_transpose2d(x, t64(np.zeros((3, 1, 3, 3))))
    with pytest.raises(ShapeError, match="leaves no output"):
        F.conv_transpose2d(t64(np.zeros((1, 2, 1, 1))), t64(np.zeros((2, 1, 1, 1))), padding=1)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        F.conv_transpose2d(x, w, groups=0)
