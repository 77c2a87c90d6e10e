"""Compiled == eager, bit for bit, for max pooling's values and gradients (ties, signed
zeros and NaNs included) in every field that is reproducible, and for the lowered
`argmax_mask` (a pass per group position) over several axes and layouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_cases import field_tensor, same_bits

from torchlean.runtime import autograd as ad
from torchlean.runtime.graph import compile_graph, grad_graph, trace
from torchlean.spec import functional as F
from torchlean.spec.value import Value

NP = np.ndarray[Any, Any]


def tied(rng: np.random.Generator, shape: tuple[int, ...], specials: bool) -> NP:
    """Values from a tiny set (ties everywhere); with specials also ±0, ±inf and NaN."""
    pool = [-1.0, 0.0, 0.5, 1.0]
    if specials:
        pool += [-0.0, np.inf, -np.inf, np.nan]
    return np.asarray(rng.choice(pool, size=shape), dtype=np.float64)


POOLS = {  # (kernel, stride, padding): the bench's case, overlapping windows, padding
    "k2s2": (2, 2, 0), "k3s1": (3, 1, 0), "k3s2p1": (3, 2, 1),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("field", ["float", "float32", "ieee32exec", "exact"])
@settings(deadline=None, max_examples=4)
@given(seed=st.integers(0, 2**32 - 1), specials=st.booleans())
def test_max_pool_grads_compiled_equal_eager(pool: str, field: str, seed: int,
                                             specials: bool) -> None:
    k, s, p = POOLS[pool]
    specials = specials and field != "exact"  # exact has no NaN, inf or -0
    rng = np.random.default_rng(seed)
    x = field_tensor(tied(rng, (2, 2, 7, 6), specials), field)
    out_shape = F.max_pool2d(x, k, s, p).shape
    w = field_tensor(tied(rng, out_shape, False), field)

    def loss(w: Value, x: Value) -> Value:
        return F.sum(F.max_pool2d(x, k, s, p) * w)

    with np.errstate(all="ignore"):
        want = ad.grad(loss, argnums=(1,))(w, x)[0]
        graph = grad_graph(trace(loss, {"w": out_shape, "x": x.shape}, field=field), ["x"])
        got = compile_graph(graph)({"w": w, "x": x})["grad:x"]
    assert same_bits(got, want), (got, want)


@pytest.mark.parametrize("axes", [(1,), (0, 2), (1, 2), (0, 1, 2)])
@pytest.mark.parametrize("layout", ["C", "F"])
@settings(deadline=None, max_examples=6)
@given(seed=st.integers(0, 2**32 - 1), specials=st.booleans())
def test_argmax_mask_lowered_equals_eager(axes: tuple[int, ...], layout: str, seed: int,
                                          specials: bool) -> None:
    rng = np.random.default_rng(seed)
    host = tied(rng, (3, 4, 5), specials)
    for field in ("float", "float32"):
        x = field_tensor(host, field, layout)
        want = F.argmax_mask(x, axes)
        graph = trace(lambda a: F.argmax_mask(a, axes), {"a": x.shape}, field=field)
        run = compile_graph(graph)
        got = run({"a": x})["out"]
        assert same_bits(got, want), (field, got.numpy(), want.numpy())
        prog = run.program([x.data])
        # groups of 3..60 elements take the per-position pass, not the field's primitive
        assert "fmm" in prog.source, prog.source


def test_argmax_mask_large_groups_fall_back() -> None:
    """A group over 64 elements is left to the field's primitive (same mask)."""
    host = tied(np.random.default_rng(3), (2, 100), True)
    x = field_tensor(host, "float")
    run = compile_graph(trace(lambda a: F.argmax_mask(a, 1), {"a": x.shape}))
    assert same_bits(run({"a": x})["out"], F.argmax_mask(x, 1))
    assert "fmm" not in run.program([x.data]).source
