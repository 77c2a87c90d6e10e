"""max_pool2d as a fold of `maximum` over window offsets: values and gradients on inputs
full of ties, against a naive first-winner reference (every field that orders exactly)
and against PyTorch's CPU kernel, which also picks each window's first maximum."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime import autograd as ad
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor, tensor

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - depends on the machine
    torch = None  # type: ignore[assignment]

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
NP = np.ndarray[Any, Any]


def naive_max_pool(x: NP, w: NP, k: int, s: int, p: int, d: int) -> tuple[NP, NP]:
    """Pooled values and the gradient of sum(pool(x) * w): each window's weight goes to its
    first row-major maximum (padding never wins), summed over overlapping windows."""
    n, c, h, wd = x.shape
    oh, ow = (h + 2 * p - d * (k - 1) - 1) // s + 1, (wd + 2 * p - d * (k - 1) - 1) // s + 1
    y, g = np.zeros((n, c, oh, ow)), np.zeros(x.shape)
    for b, ch, r, q in itertools.product(range(n), range(c), range(oh), range(ow)):
        best: tuple[int, int] | None = None
        for i, j in itertools.product(range(k), range(k)):
            u, v = r * s - p + i * d, q * s - p + j * d
            if 0 <= u < h and 0 <= v < wd and (best is None or x[b, ch, u, v] > x[b, ch, *best]):
                best = (u, v)
        assert best is not None  # padding <= k // 2 leaves a real element in every window
        y[b, ch, r, q] = x[b, ch, *best]
        g[b, ch, *best] += w[b, ch, r, q]
    return y, g


pool_cases = st.fixed_dictionaries({
    "k": st.integers(1, 3), "s": st.integers(1, 3), "d": st.integers(1, 2),
    "p": st.integers(0, 1), "h": st.integers(5, 7), "w": st.integers(5, 7),
    "seed": st.integers(0, 2**32 - 1),
})


def draw(c: dict[str, Any]) -> tuple[NP, NP, tuple[int, int, int, int]]:
    """Small integers (many ties in every window) and the pooling arguments."""
    rng = np.random.default_rng(c["seed"])
    k, s, d = c["k"], c["s"], c["d"]
    p = min(c["p"], k // 2)
    x = rng.integers(-2, 3, (2, 2, c["h"], c["w"])).astype(np.float64)
    oh = (c["h"] + 2 * p - d * (k - 1) - 1) // s + 1
    ow = (c["w"] + 2 * p - d * (k - 1) - 1) // s + 1
    w = rng.integers(1, 5, (2, 2, oh, ow)).astype(np.float64)
    return x, w, (k, s, p, d)


@pytest.mark.parametrize("field", ["float", "exact"])
@settings(deadline=None, max_examples=12)
@given(c=pool_cases)
def test_values_and_gradients_go_to_first_winner(field: str, c: dict[str, Any]) -> None:
    x, w, (k, s, p, d) = draw(c)
    want_y, want_g = naive_max_pool(x, w, k, s, p, d)

    def loss(v: Tensor) -> Tensor:
        return F.sum(F.max_pool2d(v, k, s, p, d) * tensor(w, field))

    y = F.max_pool2d(tensor(x, field), k, s, p, d)
    (g,) = ad.grad(loss, argnums=(0,))(tensor(x, field))
    # small integers: every value and every gradient sum is exact in both fields
    assert np.array_equal(np.asarray(y.numpy(), dtype=np.float64), want_y)
    assert np.array_equal(np.asarray(g.numpy(), dtype=np.float64), want_g)


def test_bench_shape_stride_equals_kernel() -> None:
    """The common case (kernel 2, stride 2, odd size cropped): a tie in every window."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 1, 1] = x[0, 0, 1, 0] = 1.0  # window (0, 0): two winners, first is (1, 0)
    w = np.ones((1, 1, 2, 2))
    (g,) = ad.grad(lambda v: F.sum(F.max_pool2d(v, 2)), argnums=(0,))(tensor(x))
    _, want = naive_max_pool(x, w, 2, 2, 0, 1)
    assert g.numpy().tolist() == want.tolist()
    assert g.numpy()[0, 0, 1, 0] == 1.0 and g.numpy()[0, 0, 1, 1] == 0.0


@needs_torch
@settings(deadline=None, max_examples=10)
@given(c=pool_cases)
def test_ties_match_torch(c: dict[str, Any]) -> None:
    x, w, (k, s, p, d) = draw(c)
    xt = torch.tensor(x, requires_grad=True)
    (TF.max_pool2d(xt, k, s, p, d) * torch.tensor(w)).sum().backward()
    (g,) = ad.grad(lambda v: F.sum(F.max_pool2d(v, k, s, p, d) * tensor(w)),
                   argnums=(0,))(tensor(x))
    assert xt.grad is not None
    # integer data and weights: both sides are exact, so the gradients agree exactly
    assert np.array_equal(g.numpy(), xt.grad.numpy())


def test_a_nan_window_is_nan_and_its_gradient_stops_before_the_nan() -> None:
    # As docs/nn.md states: the value is NaN; the gradient reaches the first maximum of the
    # elements before the first NaN (3 in the first window), or the NaN when it comes first.
    x = np.array([[[[1.0, 3.0], [np.nan, 5.0]]], [[[np.nan, 3.0], [4.0, 5.0]]]])
    out = F.max_pool2d(tensor(x), 2).numpy()
    assert np.isnan(out).all()
    grad = ad.grad(lambda v: F.sum(F.max_pool2d(v, 2)))(tensor(x)).numpy()
    assert grad.reshape(2, 4).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
