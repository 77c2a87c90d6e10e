"""IBP's memory-saving paths (issue #20 [15]) against exact rationals: the affine map
formed a block of rows (and of |C| columns) at a time, a conv's im2col patches built by
rows inside the layer fusion, and sums and means finished in place. Each bound must hold
the exact (Fraction) value of the graph at points of the box; the block sizes are forced
down to one row so that every block boundary is crossed. No tolerance: containment is
exact."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any
from unittest.mock import patch

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from torchlean.runtime.graph import interpret
from torchlean.spec import nn
from torchlean.verify import bounds

ibp_mod = importlib.import_module("torchlean.verify.bounds.ibp")
plan_mod = importlib.import_module("torchlean.verify.bounds.ibp_plan")

VALUE = st.one_of(st.floats(-8.0, 8.0), st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0**-1074,
                                                          -(2.0**-1060), 1e-300, 0.1, 2.0**40]))


@contextmanager
def _tiny_blocks() -> Iterator[None]:
    """One row per block and one |C| column per block."""
    with patch.object(ibp_mod, "_BLOCK", 1), patch.object(ibp_mod, "_IN_BLOCK", 1), \
            patch.object(ibp_mod, "_COL_BLOCK", 1):
        yield


def _fr(a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    return np.asarray([Fraction(float(v)) for v in arr.ravel()], dtype=object).reshape(arr.shape)


def _exact_products(c: np.ndarray, lo: np.ndarray, hi: np.ndarray, left: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
    """min and max over the box of C @ x (left) or x @ C, exactly: each term takes lo or
    hi by the sign of its coefficient."""
    cf, lf, hf = _fr(c), _fr(lo), _fr(hi)
    pos = np.vectorize(lambda v: max(v, Fraction(0)), otypes=[object])(cf)
    neg = cf - pos
    if left:
        return pos @ lf + neg @ hf, pos @ hf + neg @ lf
    return lf @ pos + hf @ neg, hf @ pos + lf @ neg


@settings(deadline=None, max_examples=30)
@given(st.integers(2, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3),
       st.booleans(), st.data())
def test_affine_map_by_blocks_contains_the_exact_range(
        batch: int, m: int, k: int, n: int, left: bool, data: Any) -> None:
    """C @ [x] over a batch of (k, n) intervals (a conv in im2col form, C broadcast over
    the batch) and [x] @ C over (batch, k) rows (a linear layer, |C| by columns), one
    row per block, with a bias added per row: the exact range is inside."""
    x_shape = (batch, k, n) if left else (batch, k)
    c_shape = (1, m, k) if left else (k, m)
    c = data.draw(hnp.arrays(np.float64, c_shape, elements=VALUE))
    x1 = data.draw(hnp.arrays(np.float64, x_shape, elements=VALUE))
    x2 = data.draw(hnp.arrays(np.float64, x_shape, elements=VALUE))
    lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    out_shape = (batch, m, n) if left else (batch, m)
    bias = data.draw(hnp.arrays(np.float64, out_shape, elements=VALUE))
    with _tiny_blocks():
        got_lo, got_hi = ibp_mod._matmul_const((lo, hi), c, left, bias=bias, shape=out_shape)
    want_lo, want_hi = _exact_products(c, lo, hi, left)
    b = _fr(bias)
    assert got_lo.shape == got_hi.shape == out_shape
    for i in np.ndindex(out_shape):
        assert Fraction(float(got_lo[i])) <= want_lo[i] + b[i]
        assert Fraction(float(got_hi[i])) >= want_hi[i] + b[i]


def _exact_at(g: Any, params: Any, x: np.ndarray) -> np.ndarray:
    """The graph's exact (Fraction) output at the point x."""
    values = {k: _fr(np.asarray(v.numpy() if hasattr(v, "numpy") else v))
              for k, v in params.items()}
    values[g.inputs[0].name] = _fr(x)
    return np.asarray(interpret(g, values, field="exact")[g.outputs[0][0]].data)


@settings(deadline=None, max_examples=12)
@given(st.integers(0, 2**31), st.sampled_from([0.0, 1e-3, 0.3]), st.integers(2, 4))
def test_conv_by_rows_contains_exact_values(seed: int, eps: float, batch: int) -> None:
    """A conv (its im2col concat built by rows in the layer fusion), relu, average pool
    (summed and finished in place), flatten, linear: IBP's bounds hold the exact outputs
    at the box's corners and at random points."""
    net = nn.build(nn.conv2d(1, 2, 2) >> nn.relu() >> nn.avg_pool2d(2) >> nn.flatten()
                   >> nn.linear(8, 3), seed=seed % 1000)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(batch, 1, 5, 5))
    lo, hi = x - eps, x + eps
    g = bounds.as_graph(net, net.params, lo.shape)
    fusions = plan_mod.plan_fusions(g, g.outputs[0][1])
    assert any(f.rows_from >= 0 for f in fusions.values())  # the path under test is taken
    with _tiny_blocks():
        b = bounds.ibp(net, net.params, lo, hi)
    for t in (0.0, 1.0, *rng.random(2)):
        point = lo + (hi - lo) * t
        out = _exact_at(g, net.params, point).reshape(batch, -1)
        for i in np.ndindex(out.shape):
            assert Fraction(float(b.lower[i])) <= out[i] <= Fraction(float(b.upper[i]))


@settings(deadline=None, max_examples=40)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, max_side=4),
                  elements=VALUE),
       hnp.arrays(np.float64, 1, elements=st.floats(0.0, 4.0)), st.booleans())
@example(np.array([[2.0**40, 0.1, -(2.0**40)]]), np.array([0.0]), False)  # cancellation:
@example(np.array([[2.0**40, 0.1, -(2.0**40)]]), np.array([0.0]), True)   # a step is not enough
def test_sum_and_mean_in_place_contain_the_exact_value(x: np.ndarray, r: np.ndarray,
                                                       mean: bool) -> None:
    """sum / mean over the last axis of [x - r, x + r]: the result (finished in place on
    the fresh sums) holds the exact sum (mean) of the ends."""
    lo, hi = x - r[0], x + r[0]
    lo, hi = np.minimum(lo, x), np.maximum(hi, x)
    node = type("N", (), {"op": "mean" if mean else "sum",
                          "attr_dict": {"axes": (-1,), "keepdims": False}})()
    got_lo, got_hi = ibp_mod._sum_mean(node, [(lo, hi)])
    cnt = x.shape[-1]
    flo, fhi = _fr(lo), _fr(hi)
    for i in np.ndindex(x.shape[:-1]):
        s_lo, s_hi = sum(flo[i], Fraction(0)), sum(fhi[i], Fraction(0))
        if mean:
            s_lo, s_hi = s_lo / cnt, s_hi / cnt
        assert Fraction(float(got_lo[i])) <= s_lo
        assert Fraction(float(got_hi[i])) >= s_hi
