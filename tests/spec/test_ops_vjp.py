"""The op table's VJP rules, evaluated directly on spec tensors (ahead of any tape).

For every op with a `vjp`, `op.vjp(g, inputs, out, attrs)` must return one cotangent per
input with that input's shape (None only for where's condition), and, along a random
direction d, sum_i <vjp_i, d_i> must equal the directional derivative of <g, f(x)>:

- over `float`, against a central difference with h = 1e-5 (tolerance below);
- over `exact`, for ops that are piecewise polynomial of degree <= 2 in their operands
  (add, mul, square, matmul, sums, structural ops, and piecewise-linear relu, max, ...),
  against the central difference quotient (f(x + h d) - f(x - h d)) / (2h), which is EXACTLY
  the directional derivative of a quadratic (its h^2 term cancels) and of a linear piece
  not crossed by [x - h d, x + h d]: zero tolerance. div gets the exact derivative formula.

Operands come from `op_cases(tag, smooth=True)`: away from kinks (|x| >= 1/8), ties (max
over distinct values, maximum/minimum operands >= 1/10 apart) and the steep ends of log,
sqrt and div (operands >= 1/4 from their singularities).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_references import elementwise
from strategies import OpCase, obj_array, op_cases

from torchlean.spec import OPS, Field, Tensor, apply, exact, float64

Q = Fraction
VJP_TAGS = sorted(tag for tag, op in OPS.items() if op.vjp is not None)


def test_ops_without_vjp_are_piecewise_constant() -> None:
    """An op with no VJP rule must declare that gradients do not flow through it."""
    lacking = sorted(t for t, op in OPS.items() if op.vjp is None and not op.piecewise_constant)
    assert not lacking, f"ops with neither a vjp nor piecewise_constant: {lacking}"


def cotangents(
    op_tag: str, xs: tuple[Tensor, ...], g: Tensor, attrs: dict[str, Any]
) -> tuple[Any, ...]:
    """The VJP rule's cotangents, with their count, kind and shapes checked."""
    out = apply(op_tag, *xs, **attrs)
    op = OPS[op_tag]
    assert op.vjp is not None
    grads = op.vjp(g, xs, out, attrs)
    assert len(grads) == len(xs), f"{op_tag}: {len(grads)} cotangents for {len(xs)} inputs"
    for i, (gi, x) in enumerate(zip(grads, xs, strict=True)):
        if op_tag == "where" and i == 0:
            assert gi is None, "where: the condition gets no cotangent"
            continue
        assert isinstance(gi, Tensor) and gi.field is x.field, (i, gi)
        assert gi.shape == x.shape, f"{op_tag}: cotangent {i} has {gi.shape}, input {x.shape}"
    return grads


def directions(
    grads: tuple[Any, ...], xs: tuple[Tensor, ...], draw: Callable[[tuple[int, ...]], Any]
) -> list[Any]:
    """A random direction for each input that has a cotangent (None for the others)."""
    return [None if gi is None else draw(x.shape) for gi, x in zip(grads, xs, strict=True)]


def with_direction(grads: tuple[Any, ...], ds: list[Any]) -> list[tuple[Tensor, Any]]:
    """(cotangent, direction) for the inputs that have both."""
    return [(gi, d) for gi, d in zip(grads, ds, strict=True) if gi is not None]


def perturbed(xs: tuple[Tensor, ...], ds: list[Any], step: Any, fld: Field) -> tuple[Tensor, ...]:
    """x_i + step * d_i for inputs with a direction, x_i unchanged for the others."""
    return tuple(
        x if d is None else Tensor(fld.asarray(x.numpy() + step * d), fld)
        for x, d in zip(xs, ds, strict=True)
    )


# -- float: central differences -----------------------------------------------------------
H = 1e-5


@pytest.mark.parametrize("tag", VJP_TAGS)
@settings(deadline=None, max_examples=25)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_vjp_matches_central_differences(tag: str, data: st.DataObject, seed: int) -> None:
    case: OpCase = data.draw(op_cases(tag, smooth=True))
    rng = np.random.default_rng(seed)
    xs = case.tensors(float64)
    out = apply(tag, *xs, **case.attrs).numpy()
    g = rng.uniform(-1, 1, out.shape)
    grads = cotangents(tag, xs, Tensor(g, float64), case.attrs)
    ds = directions(grads, xs, lambda shape: rng.uniform(-1, 1, shape))
    predicted = sum(float(np.sum(gi.numpy() * d)) for gi, d in with_direction(grads, ds))

    def pairing(step: float) -> float:
        return float(
            np.sum(g * apply(tag, *perturbed(xs, ds, step, float64), **case.attrs).numpy())
        )

    difference = (pairing(H) - pairing(-H)) / (2 * H)
    # Error of the central difference: truncation h^2/6 |third directional derivative|,
    # at most ~1e-8 sum|g| (1 + |f|) on these domains (e^x <= e^8 is matched by |f|; the
    # steepest others, 2/x^3 for log at 1/4 and 6a/b^4 for div at b = 1/2, are <= 400),
    # plus rounding (n + 2) u sum|g f| / h + u |x| |f'| / h <= 1e-9 of the same scale.
    # 1e-6 of the scale below leaves two orders of margin; a wrong rule is off by O(scale).
    scale = (
        1
        + float(np.sum(np.abs(g) * (1 + np.abs(out))))
        + sum(float(np.sum(np.abs(gi.numpy() * d))) for gi, d in with_direction(grads, ds))
    )
    assert abs(predicted - difference) <= 1e-6 * scale, (predicted, difference)


# -- exact: zero-tolerance difference quotients ----------------------------------------------
PIECEWISE_QUADRATIC = [
    "add",
    "sub",
    "mul",
    "neg",
    "square",
    "matmul",
    "sum",
    "mean",
    "transpose",
    "reshape",
    "broadcast_to",
    "concat",
    "slice",
    "unslice",
    "where",
    "maximum",
    "minimum",
    "relu",
    "abs",
    "leaky_relu",
    "max",
]
# Kinks are >= 1/10 away and |d| <= 1, so [x - h d, x + h d] stays on one linear piece.
H_EXACT = Q(1, 64)


def random_fractions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Rationals in [-1, 1] with denominators up to 30 (dyadic and not)."""
    n = int(np.prod(shape))
    dens = rng.integers(1, 31, n)
    values = [Q(int(rng.integers(-d, d + 1)), int(d)) for d in dens]
    return obj_array(values, shape)


def inner(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> Fraction:
    """<a, b> in exact arithmetic."""
    return sum((x * y for x, y in zip(a.reshape(-1), b.reshape(-1), strict=True)), Q(0))


def all_fractions(t: Tensor) -> bool:
    return all(type(v) is Fraction for v in t.numpy().reshape(-1))


@pytest.mark.parametrize("tag", PIECEWISE_QUADRATIC)
@settings(deadline=None, max_examples=20)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_exact_vjp_equals_difference_quotient(tag: str, data: st.DataObject, seed: int) -> None:
    case: OpCase = data.draw(op_cases(tag, smooth=True, min_side=1))
    rng = np.random.default_rng(seed)
    xs = case.tensors(exact)
    out = apply(tag, *xs, **case.attrs)
    g = random_fractions(rng, out.shape)
    grads = cotangents(tag, xs, Tensor(g, exact), case.attrs)
    ds = directions(grads, xs, lambda shape: random_fractions(rng, shape))
    predicted = sum((inner(gi.numpy(), d) for gi, d in with_direction(grads, ds)), Q(0))
    assert all(all_fractions(gi) for gi in grads if gi is not None)

    def pairing(step: Fraction) -> Fraction:
        return inner(g, apply(tag, *perturbed(xs, ds, step, exact), **case.attrs).numpy())

    assert predicted == (pairing(H_EXACT) - pairing(-H_EXACT)) / (2 * H_EXACT)


@settings(deadline=None, max_examples=30)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_exact_div_vjp_equals_derivative(data: st.DataObject, seed: int) -> None:
    """d(a/b) = da / b - a db / b^2, summed back to each operand's broadcast shape."""
    case: OpCase = data.draw(op_cases("div", smooth=True, min_side=1))
    rng = np.random.default_rng(seed)
    xs = case.tensors(exact)
    a, b = case.inputs
    g = random_fractions(rng, apply("div", *xs).shape)
    grads = cotangents("div", xs, Tensor(g, exact), case.attrs)
    da, db = random_fractions(rng, a.shape), random_fractions(rng, b.shape)
    derivative = elementwise(
        lambda gv, av, bv, dav, dbv: gv * (dav / bv - av * dbv / (bv * bv)), g, a, b, da, db
    )
    expected = sum(derivative.reshape(-1), Q(0))
    assert inner(grads[0].numpy(), da) + inner(grads[1].numpy(), db) == expected
