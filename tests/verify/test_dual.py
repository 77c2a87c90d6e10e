"""Dual numbers as a field: forward-mode derivatives that agree with the tape's
reverse-mode JVP, for many directions at once, with kinks counted."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings

from torchlean.runtime import autograd as ad
from torchlean.spec import exact, float64, interval
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify import strategies as vs
from torchlean.verify.gradients.directions import Directions
from torchlean.verify.gradients.dual import Dual, DualField
from torchlean.verify.gradients.forward import forward_derivatives
from torchlean.verify.gradients.trees import named_leaves


def composite(x: Any, w: Any) -> Any:
    """Most primitives at once: matmul, broadcasting, transcendentals, reductions,
    structure."""
    h = F.gelu(x @ w) + F.softplus(x[:, :2]).sum(axis=1, keepdims=True)
    z = F.concat([F.log_softmax(h, axis=-1), F.erf(h) * F.sin(h)], axis=1)
    return F.mean(F.square(F.transpose(z))) + F.max(F.tanh(z)) + F.sum(F.expm1(w) / (w * w + 1))


@settings(deadline=None, max_examples=15)
@given(
    x=vs.tensors((2, 3), elements=vs.dyadics(-2, 2, 6)),
    w=vs.tensors((3, 2), elements=vs.dyadics(-2, 2, 6)),
    u=vs.tensors((2, 3), elements=vs.dyadics(-1, 1, 4)),
    v=vs.tensors((3, 2), elements=vs.dyadics(-1, 1, 4)),
)
def test_dual_tangent_equals_the_tapes_jvp(x: Tensor, w: Tensor, u: Tensor, v: Tensor) -> None:
    dual = DualField(float64)
    dx = Tensor(Dual(x.data, u.data[None]), dual)
    dw = Tensor(Dual(w.data, v.data[None]), dual)
    out = composite(dx, dw)
    _, jt = ad.jvp(composite, (x, w), (u, v))
    # Two binary64 evaluations of the same derivative in different association orders:
    # a few ulps of the terms' magnitude (<= ~1e2 here), so 1e-11 absolute + 1e-11
    # relative has ample room while any rule error is O(1).
    got = float(np.asarray(out.data.tangent).reshape(()))
    assert abs(got - float(jt.item())) <= 1e-11 * (1 + abs(got))
    assert abs(float(out.data.primal) - float(composite(x, w).item())) <= 1e-12 * (
        1 + abs(float(out.data.primal))
    )


def test_blocks_of_directions_give_the_same_exact_derivatives() -> None:
    x = Tensor(exact.asarray(np.arange(6.0).reshape(2, 3).astype(object) / 4), exact)
    w = Tensor(exact.asarray(np.arange(-3.0, 3.0).reshape(3, 2).astype(object) / 8), exact)

    def f(a: Any, b: Any) -> Any:
        return F.sum(F.square(a @ b) * F.max(a, axis=1, keepdims=True))

    pairs = named_leaves((x, w), (0, 1))
    dirs = Directions.basis([leaf for leaf, _ in pairs])
    values = [v for _, v in pairs]
    one, _ = forward_derivatives(f, (x, w), (0, 1), values, exact, dirs, block=1)
    many, _ = forward_derivatives(f, (x, w), (0, 1), values, exact, dirs, block=64)
    assert list(one) == list(many)
    grads = ad.grad(f, argnums=(0, 1))(x, w)
    assert list(one) == [*grads[0].numpy().reshape(-1), *grads[1].numpy().reshape(-1)]


def test_constants_carry_no_tangent_and_kinks_are_counted() -> None:
    dual = DualField(exact)
    x = Tensor(Dual(exact.asarray(np.array([0, 1, -2], dtype=object)), None), dual)
    y = F.relu(x) + F.abs(x) * 3
    assert y.data.tangent is None  # nothing to differentiate: no tangent arrays made
    assert dual.kinks["maximum"] == 1 and dual.kinks["abs"] == 1


def test_undecided_interval_comparisons_count_as_kinks() -> None:
    dual = DualField(interval)
    ctx = interval.ctx
    wide = np.array([ctx.mpf([-1, 1]), ctx.mpf([2, 3])], dtype=object)
    seed = interval.asarray(np.eye(2).astype(object))
    y = F.relu(Tensor(Dual(wide, seed), dual))
    assert dual.kinks["maximum"] == 1
    # The derivative enclosure of relu over [-1, 1] covers both branches: [0, 1].
    t = np.asarray(y.data.tangent)
    assert t[0, 0].a == 0 and t[0, 0].b == 1 and t[1, 1] == 1
