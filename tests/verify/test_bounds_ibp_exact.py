"""IBP's linear layer against its exact range over Fraction: the cheap outward rounding of
`_ibp_matmul` (no per-element nextafter) must still contain the real range, including
for cancelling sums, wide magnitudes and tiny (subnormal-scale) values."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from torchlean.spec import nn
from torchlean.spec.tensor import tensor
from torchlean.verify import bounds

K, M = 7, 3


def _exact_range(W: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 j: int) -> tuple[Fraction, Fraction]:
    """min / max of b_j + sum_k W_jk x_k over the box, exactly (at the box's corners)."""
    low = high = Fraction(float(b[j]))
    for k in range(W.shape[1]):
        w = Fraction(float(W[j, k]))
        a, c = w * Fraction(float(lo[k])), w * Fraction(float(hi[k]))
        low, high = low + min(a, c), high + max(a, c)
    return low, high


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 10**6), scale=st.sampled_from([1e-300, 1e-8, 1.0, 1e8, 1e150]),
       spread=st.sampled_from([0.0, 1e-12, 1e-3, 1.0]))
@example(seed=389, scale=1.0, spread=0.0)  # found by hypothesis (weights span 1e-6..1e6)
def test_ibp_linear_contains_exact_range(seed: int, scale: float, spread: float) -> None:
    rng = np.random.default_rng(seed)
    net = nn.build(nn.linear(K, M), seed=0)
    W = rng.normal(size=(M, K)) * 10.0 ** rng.integers(-6, 7, size=(M, K))
    W[0] = [1.0, -1.0] * (K // 2) + [0.5]          # a row that cancels exactly
    b = rng.normal(size=M)
    params = {k: tensor(v) for k, v in zip(sorted(net.params), (b, W), strict=True)}
    x = rng.normal(size=(1, K)) * scale
    lo, hi = x - spread * np.abs(x), x + spread * np.abs(x)
    out = bounds.ibp(net, params, lo, hi)
    for j in range(M):
        el, eh = _exact_range(W, b, lo[0], hi[0], j)
        assert Fraction(float(out.lower[0, j])) <= el
        assert Fraction(float(out.upper[0, j])) >= eh
        # and not loose: a few ulps of the magnitude the bound's error term uses, the cheap
        # gamma_k ||x||_1 max_k |W_kj| (not sum_k |W_kj| |x_k|, which is smaller by up to the
        # weights' dynamic range); 2^-40 leaves 2^8 over gamma_k for these k
        xmax = np.maximum(np.abs(lo[0]), np.abs(hi[0]))
        mag = float(xmax.sum() * np.abs(W[j]).max() + abs(b[j]))
        assert float(el) - out.lower[0, j] <= 2.0**-40 * mag + 1e-300
