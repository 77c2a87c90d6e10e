"""The fast rounding schemes of IBP and CROWN (issue #20 [15]) against exact rationals:
the one-error-term affine map (a constant matrix times an interval, reshaped, plus a
bias: linear and conv layers), the average pool summed from its windows, the
step-free widening of function values, and the bit-step next_up/next_down on arrays full
of signed zeros. Every check is exact (Fraction) or bit for bit: no tolerance."""

from __future__ import annotations

import importlib
from fractions import Fraction
from typing import Any, cast

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from torchlean.spec import nn
from torchlean.verify import bounds
from torchlean.verify.bounds import backward as bw_mod
from torchlean.verify.bounds.functions import widen
from torchlean.verify.outward import dn, next_down, next_up, up

ibp_mod = importlib.import_module("torchlean.verify.bounds.ibp")

# values spanning binades, signs, zeros, tiny and subnormal numbers (cancellation and
# underflow are where a cheap error term would fail first)
VALUE = st.one_of(st.floats(-8.0, 8.0), st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0**-1074,
                                                          -(2.0**-1060), 2.0**-1022, 1e-300,
                                                          3.0, 0.1, 2.0**40]))


def _frac_matmul(a: list[list[Fraction]], b: list[list[Fraction]]) -> list[list[Fraction]]:
    return [[sum((a[i][t] * b[t][j] for t in range(len(b))), Fraction(0))
             for j in range(len(b[0]))] for i in range(len(a))]


def _exact_range(c: np.ndarray, lo: np.ndarray, hi: np.ndarray, bias: np.ndarray
                 ) -> tuple[list[list[Fraction]], list[list[Fraction]]]:
    """min and max over the box of C @ x + bias (2-D C and x), exactly: sum_k of
    C_ik times lo or hi by the sign of C_ik."""
    m, k = c.shape
    n = lo.shape[1]
    low = [[Fraction(float(bias[i, j])) for j in range(n)] for i in range(m)]
    high = [[Fraction(float(bias[i, j])) for j in range(n)] for i in range(m)]
    for i in range(m):
        for j in range(n):
            for t in range(k):
                w = Fraction(float(c[i, t]))
                a, b = Fraction(float(lo[t, j])), Fraction(float(hi[t, j]))
                low[i][j] += w * (a if w >= 0 else b)
                high[i][j] += w * (b if w >= 0 else a)
    return low, high


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.data())
def test_affine_map_contains_the_exact_range(m: int, k: int, n: int, data: Any) -> None:
    c = data.draw(hnp.arrays(np.float64, (m, k), elements=VALUE))
    x1 = data.draw(hnp.arrays(np.float64, (k, n), elements=VALUE))
    x2 = data.draw(hnp.arrays(np.float64, (k, n), elements=VALUE))
    lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    # a bias that cancels C @ mid (the worst case for a relative error term) or not
    cancel = data.draw(st.booleans())
    bias = -(c @ (0.5 * (lo + hi))) if cancel else data.draw(
        hnp.arrays(np.float64, (m, 1), elements=VALUE))
    bias_full = np.broadcast_to(bias, (m, n))
    low_x, high_x = _exact_range(c, lo, hi, bias_full)
    # C @ [x] (a conv in im2col form), plain and with a reshape and the bias
    for args in ({}, {"bias": bias, "shape": (m, n)}):
        got_lo, got_hi = ibp_mod._matmul_const((lo, hi), c, True, **args)
        b = bias_full if args else np.zeros((m, n))
        want_lo, want_hi = _exact_range(c, lo, hi, b)
        for i in range(m):
            for j in range(n):
                assert Fraction(float(got_lo[i, j])) <= want_lo[i][j]
                assert Fraction(float(got_hi[i, j])) >= want_hi[i][j]
    # [x]^T @ C^T (a linear layer, batch rows x^T), with the bias as a row vector
    got_lo, got_hi = ibp_mod._matmul_const((lo.T.copy(), hi.T.copy()), c.T.copy(), False,
                                           bias=bias_full.T.copy(), shape=(n, m))
    for i in range(m):
        for j in range(n):
            assert Fraction(float(got_lo[j, i])) <= low_x[i][j]
            assert Fraction(float(got_hi[j, i])) >= high_x[i][j]


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 2**31), st.sampled_from([1e-3, 0.05, 1.0]), st.booleans())
def test_fused_ibp_equals_or_contains_node_by_node(seed: int, eps: float, relu: bool) -> None:
    """bounds.ibp (matmul + bias and pooling fused, arrays freed) against the node-by-node
    intervals (whose soundness the other tests check): they differ by rounding terms
    only, ~1e-15 of magnitudes of order 1 here, far inside the stated 1e-9 of the width
    (+1e-12): a wiring slip (a wrong axis, reshape or bias) moves them by O(1)."""
    rng = np.random.default_rng(seed)
    act = nn.relu() if relu else nn.tanh()
    net = nn.build(nn.conv2d(1, 3, 2) >> act >> nn.avg_pool2d(2) >> nn.flatten()
                   >> nn.linear(12, 4) >> nn.relu() >> nn.linear(4, 2), seed=seed % 1000)
    x = rng.uniform(-1, 1, size=(2, 1, 5, 5))
    lo, hi = x - eps, x + eps
    fused = bounds.ibp(net, net.params, lo, hi)
    g = bounds.as_graph(net, net.params, lo.shape)
    plain = ibp_mod.ibp_nodes(g, net.params, lo, hi)[g.outputs[0][1]]
    # the fused bound differs from the node-by-node one by rounding terms only
    width = np.maximum(plain[1] - plain[0], 1e-300)
    tol = 1e-9 * width + 1e-12
    assert np.all(np.abs(fused.lower - plain[0].reshape(fused.lower.shape)) <= tol)
    assert np.all(np.abs(fused.upper - plain[1].reshape(fused.upper.shape)) <= tol)


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=VALUE | st.floats(-1e300, 1e300)),
       st.sampled_from([8.0, 10.0, 12.25, 37.5]))
def test_widen_holds_ulps_spacings_each_side(v: np.ndarray, ulps: float) -> None:
    lo, hi = widen(v, ulps)
    sp = np.spacing(np.abs(v))
    for i in range(v.size):
        budget = Fraction(ulps) * Fraction(float(sp[i]))
        if np.isfinite(lo[i]):
            assert Fraction(float(lo[i])) <= Fraction(float(v[i])) - budget
        else:
            assert lo[i] == -np.inf
        if np.isfinite(hi[i]):
            assert Fraction(float(hi[i])) >= Fraction(float(v[i])) + budget
        else:
            assert hi[i] == np.inf


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(64, 400),
                  elements=st.sampled_from([0.0, -0.0, 1.0, -2.5, 2.0**-1074, -(2.0**-1074),
                                            np.finfo(np.float64).max]) | st.floats(-1e3, 1e3)))
def test_bit_steps_across_zero_are_nextafter(x: np.ndarray) -> None:
    """Finite arrays with signed zeros take the bit-step path (no special values in the
    input; tiled past outward's 2048-entry threshold); stepping across 0 must still give
    np.nextafter's bits."""
    x = np.tile(x, 2048 // x.size + 1)
    for fast, toward in ((next_up, np.inf), (up, np.inf), (next_down, -np.inf), (dn, -np.inf)):
        with np.errstate(over="ignore"):
            got, want = fast(x), np.nextafter(x, toward)
        assert np.array_equal(got.view(np.int64), want.view(np.int64))


@settings(deadline=None, max_examples=40)
@given(st.integers(2, 6), st.integers(1, 5), st.data())
def test_pool_sum_contains_the_exact_mean(parts_n: int, width: int, data: Any) -> None:
    """The average of window parts, summed part by part (no concat), contains the exact
    mean of any values in the parts' intervals (checked at the ends: the mean is monotone)."""
    nonneg = data.draw(st.booleans())
    elements = st.floats(0.0, 1e6) if nonneg else VALUE
    parts = []
    for _ in range(parts_n):
        a = data.draw(hnp.arrays(np.float64, (2, 1, width), elements=elements))
        b = data.draw(hnp.arrays(np.float64, (2, 1, width), elements=elements))
        parts.append((np.minimum(a, b), np.maximum(a, b)))

    class _Node:
        op = "mean"

        @staticmethod
        def attr(name: str) -> Any:
            return False

    lo, hi = ibp_mod._pool_sum(_Node(), parts, 1)
    for i in range(2):
        for j in range(width):
            exact_lo = sum((Fraction(float(p[0][i, 0, j])) for p in parts), Fraction(0))
            exact_hi = sum((Fraction(float(p[1][i, 0, j])) for p in parts), Fraction(0))
            assert Fraction(float(lo[i, j])) <= exact_lo / parts_n
            assert Fraction(float(hi[i, j])) >= exact_hi / parts_n


def test_fused_ibp_leaves_shared_operands_alone() -> None:
    """A layer's output used twice (relu and a residual add) must not be clipped in place
    for the relu: the fused bound equals the node-by-node one up to rounding."""
    net = nn.build(nn.linear(3, 4) >> nn.residual(nn.relu()) >> nn.linear(4, 2), seed=3)
    x = np.random.default_rng(3).uniform(-1, 1, size=(5, 3))
    lo, hi = x - 0.3, x + 0.3
    fused = bounds.ibp(net, net.params, lo, hi)
    g = bounds.as_graph(net, net.params, lo.shape)
    plain = ibp_mod.ibp_nodes(g, net.params, lo, hi)[g.outputs[0][1]]
    # rounding terms only (~1e-15 of values of order 1); an in-place clip moves O(0.1)
    assert np.allclose(fused.lower, plain[0], rtol=0, atol=1e-12)
    assert np.allclose(fused.upper, plain[1], rtol=0, atol=1e-12)


def test_bit_steps_of_odd_nans_and_infinities_are_nextafter() -> None:
    """NaNs whose bit step would land on a number (payload 1 steps to inf, the all-ones
    payload wraps to -0.0) and infinities, among ordinary values (the bit-step path)."""
    odd = np.array([0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF, -0x0010000000000001,
                    -1], dtype=np.int64).view(np.float64)  # the last two: negative NaNs
    for extra in (odd, np.array([np.inf, -np.inf]), np.array([0.0, -0.0, np.inf])):
        x = np.concatenate([np.linspace(-3.0, 3.0, 3000), extra])
        for fast, toward in ((up, np.inf), (dn, -np.inf)):
            with np.errstate(invalid="ignore", over="ignore"):
                got, want = fast(x), np.nextafter(x, toward)
            nan = np.isnan(want)
            assert np.array_equal(np.isnan(got), nan)
            assert np.array_equal(got[~nan].view(np.int64), want[~nan].view(np.int64))


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**31), st.booleans(), st.integers(1, 200))
def test_blocked_line_application_matches_the_plain_one(seed: int, per_row: bool,
                                                        block: int) -> None:
    """CROWN's blocked pass over large coefficient arrays (`_apply_lines`) gives the same
    new coefficient, bit for bit, and the same column sums up to summation order (the
    error terms built on them allow any order), as the plain pass; forced here on small
    arrays with blocks of a few rows."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, 7, 2, 5)) * (rng.uniform(size=(3, 7, 2, 5)) < 0.8)
    lower = rng.uniform(0, 1, size=(3, 7 if per_row else 1, 2, 5))
    upper = rng.uniform(0, 1, size=(3, 1, 2, 5))
    p_cols = [rng.uniform(size=(3, 2, 5))]
    n_cols = [rng.uniform(size=(3, 2, 5)), rng.normal(size=(1, 2, 5))]

    class _Scratch:
        @staticmethod
        def scratch(tag: str, shape: tuple[int, ...]) -> np.ndarray:
            return np.empty(shape)

    old = bw_mod.BLOCK_ENTRIES
    try:
        bw_mod.BLOCK_ENTRIES = 10**9  # one block: the plain pass
        plain = bw_mod._apply_lines(cast(Any, _Scratch()), a, lower, upper, p_cols, n_cols)
        bw_mod.BLOCK_ENTRIES = block  # blocks of batch rows, or of a few spec rows
        blocked = bw_mod._apply_lines(cast(Any, _Scratch()), a, lower, upper, p_cols, n_cols)
    finally:
        bw_mod.BLOCK_ENTRIES = old
    assert np.array_equal(plain[0], blocked[0])
    for x, y in ((plain[1], blocked[1]), (plain[2], blocked[2])):
        # sums of 10 terms of order 1: orders differ by a few ulps at most
        assert x is not None and y is not None
        assert np.allclose(x, y, rtol=1e-13, atol=1e-13)


def _exact_mlp(ws: list[np.ndarray], bs: list[np.ndarray], x: np.ndarray) -> list[Fraction]:
    """The relu MLP x -> W x + b (relu between layers) over Fraction, from float weights."""
    v = [Fraction(float(t)) for t in x]
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        v = [sum((Fraction(float(w[j, k])) * v[k] for k in range(len(v))), Fraction(0))
             + Fraction(float(b[j])) for j in range(w.shape[0])]
        if i < len(ws) - 1:
            v = [max(t, Fraction(0)) for t in v]
    return v


@settings(deadline=None, max_examples=15)
@given(st.integers(0, 2**31), st.sampled_from([1e-3, 0.03, 0.3]))
def test_sparse_relu_pass_is_sound(seed: int, eps: float) -> None:
    """CROWN's relu pass that moves only the unstable neurons (`_relu_sparse`), forced on a
    small MLP, against exact rational outputs at the box's corners and random points;
    and never looser than the general pass by more than rounding (it charges less)."""
    rng = np.random.default_rng(seed)
    net = nn.build(nn.linear(4, 12) >> nn.relu() >> nn.linear(12, 12) >> nn.relu()
                   >> nn.linear(12, 3), seed=seed % 997)
    x = rng.uniform(-1, 1, size=(3, 4))
    lo, hi = x - eps, x + eps
    general = bounds.crown(net, net.params, lo, hi)
    old = (bw_mod.BLOCK_ENTRIES, bw_mod.SPARSE_FRACTION)
    try:
        bw_mod.BLOCK_ENTRIES, bw_mod.SPARSE_FRACTION = 0, 1.0
        sparse = bounds.crown(net, net.params, lo, hi)
    finally:
        bw_mod.BLOCK_ENTRIES, bw_mod.SPARSE_FRACTION = old
    scale = 1e-12 * (1.0 + np.abs(general.lower) + np.abs(general.upper))
    assert np.all(sparse.lower >= general.lower - scale)
    assert np.all(sparse.upper <= general.upper + scale)
    ws = [net.params[f"{i}.weight"].numpy() for i in (0, 2, 4)]
    bs = [net.params[f"{i}.bias"].numpy() for i in (0, 2, 4)]
    corners = [np.where(rng.integers(0, 2, size=4) == 1, hi[r], lo[r]) for r in range(3)]
    for r in range(3):
        for pt in (corners[r], rng.uniform(lo[r], hi[r]), lo[r], hi[r]):
            y = _exact_mlp(ws, bs, pt)
            for j in range(3):
                low, high = float(sparse.lower[r, j]), float(sparse.upper[r, j])
                assert Fraction(low) <= y[j] <= Fraction(high)
