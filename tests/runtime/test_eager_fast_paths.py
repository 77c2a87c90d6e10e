"""The eager step's fast paths give what the general paths give.

Covers the remembered broadcast shapes of elementwise ops, the plain-matrix shape rule of
matmul, the layout of weight gradients (the matmul VJP hands them back in the weight's own
row-major layout, so flattening is a plain copy) and `FlatLayout.flatten`'s NumPy path.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean import nn
from torchlean.runtime import autograd as ad
from torchlean.runtime.flat import FlatLayout
from torchlean.spec import float32, get_field
from torchlean.spec import functional as F
from torchlean.spec.errors import ShapeError
from torchlean.spec.tensor import Tensor, tensor

SHAPES = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@settings(deadline=None, max_examples=60)
@given(a=SHAPES, b=SHAPES)
def test_add_broadcasts_as_numpy_every_time(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """Asked twice (the second answer may come from the cache), the same as NumPy's."""
    try:
        want: tuple[int, ...] | None = np.broadcast_shapes(a, b)
    except ValueError:
        want = None
    x, y = tensor(np.ones(a)), tensor(np.ones(b))
    for _ in range(2):
        if want is None:
            with pytest.raises(ShapeError, match="do not broadcast"):
                F.add(x, y)
        else:
            assert F.add(x, y).shape == want


def test_a_cached_pair_does_not_excuse_a_bad_one() -> None:
    ok = F.mul(tensor(np.ones((2, 3))), tensor(np.ones(3)))
    assert ok.shape == (2, 3)
    for _ in range(2):
        with pytest.raises(ShapeError, match=r"mul: shapes \(2, 3\), \(4,\)"):
            F.mul(tensor(np.ones((2, 3))), tensor(np.ones(4)))


def test_matmul_shapes_still_checked() -> None:
    assert F.matmul(tensor(np.ones((2, 3))), tensor(np.ones((3, 5)))).shape == (2, 5)
    with pytest.raises(ShapeError, match="inner dims differ"):
        F.matmul(tensor(np.ones((2, 3))), tensor(np.ones((4, 5))))
    assert F.matmul(tensor(np.ones((4, 2, 3))), tensor(np.ones((3, 5)))).shape == (4, 2, 5)


def test_linear_weight_gradients_come_in_the_weights_layout() -> None:
    """gᵀx itself, row-major like the weight (not a transposed view of xᵀg)."""
    built = nn.build(nn.sequential(nn.linear(5, 4), nn.relu(), nn.linear(4, 3)), seed=1,
                     dtype="float32")
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((6, 5)), "float32")
    target = tensor(rng.standard_normal((6, 3)), "float32")

    def loss(p: dict[str, Tensor]) -> Tensor:
        out, _ = built.forward(p, x)
        return nn.mse(out, target)

    grads = ad.grad(loss)(dict(built.params))
    for name in ("0.weight", "2.weight"):
        assert grads[name].data.flags["C_CONTIGUOUS"], name
    # The values: the closed form in float64. Tolerance 1e-5 relative: float32 roundings
    # of a few dozen operations (each 6e-8) on O(1) values, far below a wrong rule's O(1).
    w0, b0 = (built.params[k].numpy().astype(np.float64) for k in ("0.weight", "0.bias"))
    w2, b2 = (built.params[k].numpy().astype(np.float64) for k in ("2.weight", "2.bias"))
    xs, ts = x.numpy().astype(np.float64), target.numpy().astype(np.float64)
    h = np.maximum(xs @ w0.T + b0, 0)
    g_out = 2 * (h @ w2.T + b2 - ts) / ts.size
    g_h = (g_out @ w2) * (h > 0)
    np.testing.assert_allclose(grads["2.weight"].numpy(), g_out.T @ h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["0.weight"].numpy(), g_h.T @ xs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field_name", ["float32", "exact"])
def test_flatten_is_the_concatenation_in_layout_order(field_name: str) -> None:
    field = get_field(field_name)
    params = {"a": tensor(np.arange(6.0).reshape(2, 3), field),
              "b": tensor(np.array([7.0]), field)}
    # A transposed view must come out in its logical (row-major) order.
    params["c"] = Tensor(field.permute(tensor(np.arange(4.0).reshape(2, 2), field).data,
                                       (1, 0)), field)
    flat = FlatLayout.of(params, field).flatten(params)
    assert [float(v) for v in flat.numpy()] == [0, 1, 2, 3, 4, 5, 7, 0, 2, 1, 3]


def test_flatten_on_another_namespace() -> None:
    xp = pytest.importorskip("array_api_strict")
    dev = xp.Device("device1")
    params = {k: Tensor(xp.asarray(np.asarray(v, dtype=np.float32), device=dev), float32)
              for k, v in {"a": [[1.0, 2.0]], "b": [3.0]}.items()}
    flat = FlatLayout.of(params, float32).flatten(params)
    assert type(flat.data) is type(params["a"].data)
    assert flat.numpy().tolist() == [1.0, 2.0, 3.0]
