"""verify.rounding: the bound holds on random and adversarial models and points, a bound
with u halved is caught, and bad input is refused with a typed error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from torchlean.runtime.graph import trace
from torchlean.spec import functional as F
from torchlean.spec import nn
from torchlean.spec.errors import UnsupportedOperation
from torchlean.verify.rounding.bound import (
    U32,
    RoundingBoundError,
    error_bound,
    error_bound_at,
    observed_error,
)

ACTS = {"relu": nn.relu, "tanh": nn.tanh, "sigmoid": nn.sigmoid}
f32 = np.float32


def _mlp(sizes: list[int], act: str, head: bool, seed: int, special: str) -> object:
    layers: list[object] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTS[act]())
    if head:
        layers.append(nn.softmax())
    net = nn.build(nn.sequential(*layers), seed=seed, dtype="ieee32exec")
    rng = np.random.default_rng(seed)
    params = {}
    for k, v in net.params.items():
        w = v.numpy().astype(np.float64)
        if special == "pow2":  # exact powers of two: products exact, sums near ties
            w = np.sign(w) * 2.0 ** np.round(np.log2(np.abs(w) + 1e-30))
        elif special == "tiny":  # products in the subnormal range
            w = w * 2.0**-70
        elif special == "cancel" and k.endswith("weight") and w.shape[1] >= 2:
            w[:, 0], w[:, 1] = 1.0, -1.0  # (1, -1) on nearly equal inputs
        params[k] = w.astype(f32)
        assert np.all(np.isfinite(params[k])), rng
    return net, params


def _points(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, n: int) -> list:
    pts = [lo, hi]
    for _ in range(n):
        pts.append(np.clip((lo + (hi - lo) * rng.random(lo.shape)).astype(f32), lo, hi))
    return [{"x": p.astype(np.float64)} for p in pts]


@settings(deadline=None, max_examples=80)
@given(
    st.lists(st.integers(1, 4), min_size=2, max_size=3),
    st.sampled_from(sorted(ACTS)),
    st.booleans(),
    st.integers(0, 10**6),
    st.sampled_from(["normal", "pow2", "tiny", "cancel"]),
    st.sampled_from([0.0, 2.0**-20, 0.01, 1.0]),
    st.sampled_from(["ieee32exec", "float32_any_order"]),
    st.sampled_from(["affine", "elementwise"]),
)
# found by hypothesis: interval enclosures of x - max lost softmax's exact exp(0) = 1 term
@example(sizes=[4, 3, 2], act="relu", head=True, seed=0, special="cancel", radius=1.0,
         mode="ieee32exec", method="affine")
def test_observed_error_never_exceeds_the_bound(sizes, act, head, seed, special, radius,
                                                mode, method):
    net, params = _mlp(sizes, act, head and sizes[-1] > 1, seed, special)
    rng = np.random.default_rng(seed)
    c = rng.normal(size=sizes[0]).astype(f32)
    if special == "cancel" and sizes[0] >= 2:
        c[1] = np.nextafter(c[0], f32(np.inf))  # nearly equal inputs
    lo, hi = (c - f32(radius)).astype(f32), (c + f32(radius)).astype(f32)
    rep = error_bound(net, params, (lo, hi), mode, attribute=False, method=method)
    assert rep.method == method
    obs = observed_error(_graph(net, sizes[0]), params, _points(lo, hi, rng, 4))
    for name, b in rep.bounds.items():
        # no tolerance: the bound is a proven upper bound, observed errors are exact
        assert np.all(obs[name] <= b), (name, obs[name], b)


def _graph(net: object, n: int) -> object:
    return trace(lambda p, x: net.forward(p, x)[0], {"x": (n,)},
                 {k: v.shape for k, v in net.params.items()}, field="ieee32exec")


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 10**6), st.booleans())
def test_native_numpy_float32_matmul_within_any_order_bound(k, m, seed, cancel):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(m, k)).astype(f32)
    x = rng.normal(size=k).astype(f32)
    if cancel and k >= 2:
        w[:, :2] = [1, -1]
        x[1] = np.nextafter(x[0], f32(np.inf))
    g = trace(lambda p, v: F.matmul(p["w"], v), {"x": (k,)}, {"w": (m, k)}, field="ieee32exec")
    rep = error_bound_at(g, {"w": w}, x, "float32_any_order", attribute=False)
    native = (w @ x).astype(np.float64)  # BLAS / NumPy order, FMA or not
    from fractions import Fraction
    for i in range(m):
        exact = sum(Fraction(float(w[i, j])) * Fraction(float(x[j])) for j in range(k))
        assert abs(Fraction(float(native[i])) - exact) <= Fraction(float(rep.bounds["out"][i]))


def test_halving_u_is_caught():
    # The tests bite: with u/2 the "bound" fails on a deterministic search of sums whose
    # exact value lies just below a rounding boundary.
    g = trace(lambda v: F.sum(v, 0), {"x": (2,)}, field="ieee32exec")
    w: dict[str, np.ndarray] = {}
    found = []
    for k in range(1, 9):
        x = np.array([1.0, k * 2.0**-27], dtype=f32)
        half = error_bound_at(g, w, x, u=U32 / 2, attribute=False).bounds["out"]
        full = error_bound_at(g, w, x, attribute=False).bounds["out"]
        obs = observed_error(g, w, [{"x": x.astype(np.float64)}])["out"]
        assert np.all(obs <= full)
        if np.any(obs > half):
            found.append(k)
    assert found, "no counterexample to the u/2 bound: the soundness tests would not bite"


def test_report_names_the_top_node_and_samples():
    net, params = _mlp([3, 4, 2], "tanh", True, 0, "normal")
    x = np.array([0.5, -0.25, 1.0], dtype=f32)
    rep = error_bound(net, params, (x - f32(0.01), x + f32(0.01)), samples=8)
    assert rep.top_node is not None and rep.top_node[1] <= rep.bound
    assert 0 < rep.max_observed <= rep.bound and rep.ratio >= 1
    assert "bound / observed" in str(rep)


def test_binary64_box_includes_input_rounding():
    g = trace(lambda v: v * 1, {"x": (1,)}, field="ieee32exec")
    x = np.array([0.1])  # not a binary32
    with pytest.raises(RoundingBoundError, match="not binary32"):
        error_bound_at(g, {}, x)
    rep = error_bound_at(g, {}, x, inputs_are_float32=False)
    exact_err = abs(float(np.float32(0.1)) - 0.1)
    # one rounding on entry and one for the product, each <= u |x|; 3u leaves room for
    # the outward rounding of the bound itself
    assert exact_err <= rep.bound <= 3 * U32 * 0.1


def test_bad_box_names_the_index():
    net, params = _mlp([3, 2], "relu", False, 0, "normal")
    lo = np.zeros(3, f32)
    hi = np.array([1, -1, 1], dtype=f32)
    with pytest.raises(RoundingBoundError, match=r"at index \(1,\)"):
        error_bound(net, params, (lo, hi))


def test_nan_parameter_refused():
    net, params = _mlp([3, 2], "relu", False, 0, "normal")
    params["0.bias"] = params["0.bias"].copy()
    params["0.bias"][1] = np.nan
    with pytest.raises(RoundingBoundError, match=r"0.bias.*\(1,\)"):
        error_bound_at(net, params, np.zeros(3, f32))


def test_overflow_refused_naming_the_node():
    net, params = _mlp([3, 2], "relu", False, 0, "normal")
    params["0.weight"] = np.full((2, 3), 3e38, dtype=f32)
    with pytest.raises(RoundingBoundError, match="node %.*overflow"):
        error_bound(net, params, (np.zeros(3, f32), np.full(3, 2, f32)))


def test_op_without_rule_refused():
    g = trace(lambda v: F.where(F.step(v), v, v * 2), {"x": (2,)}, field="ieee32exec")
    with pytest.raises(UnsupportedOperation, match="step"):
        error_bound_at(g, {}, np.ones(2, f32))


def test_division_by_possible_zero_refused():
    g = trace(lambda v: 1 / v, {"x": (1,)}, field="ieee32exec")
    with pytest.raises(RoundingBoundError, match="divisor"):
        error_bound(g, {}, (np.array([-1], f32), np.array([1], f32)))


def test_affine_lets_a_shared_error_cancel():
    # s = x0 + x1 rounds once; s broadcast to two entries and combined with (1, -1) is
    # exactly 0: the affine bound keeps the one symbol and its cancellation, the
    # elementwise bound adds the two copies' magnitudes.
    g = trace(lambda p, v: F.matmul(p["w"], F.broadcast_to(F.sum(v, 0, keepdims=True), (2,))),
              {"x": (2,)}, {"w": (2,)}, field="ieee32exec")
    w = {"w": np.array([1, -1], dtype=f32)}
    box = (np.array([1, 2], dtype=f32), np.array([1.5, 2.5], dtype=f32))
    aff = error_bound(g, w, box, attribute=False)
    ele = error_bound(g, w, box, attribute=False, method="elementwise")
    # the rounding of s (s in [3, 5], bound 2^-24 * 4) enters the elementwise bound
    # twice (|1| + |-1|) and the affine bound not at all (1 - 1 = 0); the matmul's own
    # rounding enters both alike, so the gap is 2 * 2^-22 less binary64 slop (< 2^-40)
    assert ele.bound - aff.bound >= 2.0**-21 - 2.0**-40, (aff.bound, ele.bound)


def test_affine_mlp_bound_is_tighter_and_sound():
    net, params = _mlp([6, 8, 8, 3], "relu", False, 3, "normal")
    rng = np.random.default_rng(3)
    c = rng.random(6).astype(f32)
    lo, hi = c - f32(0.01), c + f32(0.01)
    aff = error_bound(net, params, (lo, hi), attribute=False)
    ele = error_bound(net, params, (lo, hi), attribute=False, method="elementwise")
    obs = observed_error(_graph(net, 6), params, _points(lo, hi, rng, 6))["out"]
    assert np.all(aff.bounds["out"] <= ele.bounds["out"])  # min of both by construction
    assert np.all(obs <= aff.bounds["out"])


def test_unknown_method_refused():
    g = trace(lambda v: v * 1, {"x": (1,)}, field="ieee32exec")
    with pytest.raises(ValueError, match="method"):
        error_bound_at(g, {}, np.ones(1, f32), method="zonotope")
