"""The checker can fail: deliberately wrong VJP rules, injected into the op table, are
caught by every method.

Mutations (each installed by the `wrong_rule` fixture as `dataclasses.replace(op,
vjp=wrong)` and restored afterwards): a sign flip in mul, a missing transpose in
matmul, and a dropped broadcast reduction in add (two ways: the unreduced cotangent,
which has the wrong shape, and a "reduction" that keeps one broadcast copy instead of
summing them, which has the right shape and wrong values). Every method must report a
mismatch. Hypothesis draws the point; points where a wrong rule happens to agree with
the true derivative (e.g. zero inputs) are skipped, judged by a forward-mode derivative
computed without any VJP rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from torchlean.runtime import autograd as ad
from torchlean.spec import float64
from torchlean.spec import functional as F
from torchlean.spec.ops import OPS
from torchlean.spec.tensor import Tensor
from torchlean.verify import gradcheck
from torchlean.verify import strategies as vs
from torchlean.verify.gradients.directions import Directions
from torchlean.verify.gradients.forward import forward_derivatives
from torchlean.verify.gradients.trees import named_leaves

METHODS = ("central", "fast", "mpmath", "interval", "exact", "auto")
V = Any


def flipped_mul(g: V, xs: tuple[V, ...], y: V, at: Any) -> tuple[V, ...]:
    a, b = xs
    return F.sum_to_shape(-(g * b), a.shape), F.sum_to_shape(g * a, b.shape)


def untransposed_matmul(g: V, xs: tuple[V, ...], y: V, at: Any) -> tuple[V, ...]:
    a, b = xs
    return F.sum_to_shape(F.matmul(g, b), a.shape), F.sum_to_shape(F.matmul(a, g), b.shape)


def unreduced_add(g: V, xs: tuple[V, ...], y: V, at: Any) -> tuple[V, ...]:
    return g, g


def first_copy_add(g: V, xs: tuple[V, ...], y: V, at: Any) -> tuple[V, ...]:
    a, b = xs

    def pick(t: V, shape: tuple[int, ...]) -> V:
        return F.reshape(t[0], shape) if t.shape != tuple(shape) else t

    return pick(g, a.shape), pick(g, b.shape)


# name: (op tag, wrong rule, f, input shapes)
MUTATIONS: dict[str, tuple[str, Callable[..., Any], Callable[..., Any], list[tuple[int, ...]]]] = {
    "sign flip in mul": ("mul", flipped_mul,
                         lambda a, b, c: F.sum(a * b * c), [(2, 3), (3,)]),
    "missing transpose in matmul": ("matmul", untransposed_matmul,
                                    lambda a, b, c: F.sum((a @ b) * c), [(3, 3), (3, 3)]),
    "unreduced broadcast in add": ("add", unreduced_add,
                                   lambda a, b, c: F.sum(F.square(a + b) * c), [(2, 3), (3,)]),
    "first copy instead of sum in add": ("add", first_copy_add,
                                         lambda a, b, c: F.sum(F.square(a + b) * c),
                                         [(2, 3), (3,)]),
}


@pytest.fixture(params=sorted(MUTATIONS))
def wrong_rule(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, Callable[..., Any], list[Any]]]:
    """Install one wrong VJP rule in OPS for the test, and restore the true one."""
    tag, wrong, f, shapes = MUTATIONS[request.param]
    original = OPS[tag]
    OPS[tag] = dataclasses.replace(original, vjp=wrong)
    try:
        yield request.param, f, shapes
    finally:
        OPS[tag] = original


def true_gradient(f: Callable[..., Any], args: tuple[Any, ...]) -> np.ndarray[Any, Any]:
    """The gradient from forward-mode duals in binary64: no VJP rule involved."""
    leaves = named_leaves(args, (0, 1))
    dirs = Directions.basis([leaf for leaf, _ in leaves])
    values, _ = forward_derivatives(f, args, (0, 1), [v for _, v in leaves], float64, dirs, 64)
    return values.astype(np.float64)


def tape_gradient(f: Callable[..., Any], args: tuple[Any, ...]) -> np.ndarray[Any, Any] | None:
    ga, gb = ad.grad(f, argnums=(0, 1))(*args)
    if ga.shape != args[0].shape or gb.shape != args[1].shape:
        return None  # wrong shape: caught structurally, nothing to compare
    return np.concatenate([ga.numpy().reshape(-1), gb.numpy().reshape(-1)])


# The fixture's state (one installed rule) is the same for every example, so hypothesis's
# warning about function-scoped fixtures does not apply.
@settings(deadline=None, max_examples=10,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_method_catches_a_wrong_rule(
    wrong_rule: tuple[str, Callable[..., Any], list[Any]], data: st.DataObject
) -> None:
    name, f, shapes = wrong_rule
    elements = vs.dyadics(-2, 2, 4)
    a, b = (data.draw(vs.tensors(s, elements=elements)) for s in shapes)
    c = data.draw(vs.tensors((2, 3) if shapes[0] == (2, 3) else (3, 3), elements=elements))
    args = (a, b, c)
    wrong = tape_gradient(f, args)
    # Skip points where the wrong rule agrees with the derivative: nothing to catch there.
    # Tolerance 1e-9: both sides are a few binary64 operations on numbers <= 2^6, and a
    # caught mutation differs by at least 2^-8 (a product of two dyadics with 4 bits).
    assume(wrong is None or not np.allclose(wrong, true_gradient(f, args), rtol=0, atol=1e-9))
    for method in METHODS:
        report = gradcheck(f, args, argnums=(0, 1), method=method)
        assert not report.passed, f"{method} missed the mutation {name!r}:\n{report}"
        primary = report.primary
        assert primary.problem is not None or primary.worst_name is not None
        if wrong is None:
            assert primary.problem is not None and "shape" in primary.problem
        assert "MISMATCH" in str(report) and "FAILED" in str(report)


def test_the_fixture_restores_the_true_rules() -> None:
    # Runs after the parametrised test in file order; a leaked mutation would fail here.
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), float64)
    y = Tensor(np.array([0.5, -1.0]), float64)
    report = gradcheck(lambda p, q: F.sum(F.square(p @ p + q) * q), (x, y), method="exact")
    assert report.passed, str(report)
    assert all(OPS[t].vjp is not w for t, w, _, _ in MUTATIONS.values())
