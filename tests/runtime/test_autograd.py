"""The eager tape's gradients against hand-derived NumPy formulas, for every op.

Tolerance: both sides evaluate the same closed-form derivative in binary64 with at most a
few operations of different association order, so they agree to a few ulps; we use
rtol = 1e-12 (about 4500 ulps of headroom, far below any real rule error, which shows
up at O(1) relative size) and atol = 1e-12 for entries near zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import torchlean.spec as S
from torchlean.runtime import autograd as ad
from torchlean.runtime.tape import GradientNaNError
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor

RTOL = ATOL = 1e-12
NP = np.ndarray


def unbroadcast(g: NP, shape: tuple[int, ...]) -> NP:
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, d in enumerate(shape):
        if d == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def sig(a: NP) -> NP:
    return 1 / (1 + np.exp(-a))


def phi_cdf(a: NP) -> NP:
    return np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2)))(a)


def softmax_np(a: NP, axis: int) -> NP:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# Each case: (function of Values, NumPy inputs, hand-derived cotangents given g).
Case = tuple[Callable[..., Any], list[NP], Callable[..., list[NP]]]

UNARY: dict[str, tuple[Callable[[NP], NP], Callable[[NP], NP]]] = {
    # tag: (domain map applied to raw draws, derivative)
    "neg": (lambda a: a, lambda a: -np.ones_like(a)),
    "abs": (lambda a: a, np.sign),
    "square": (lambda a: a, lambda a: 2 * a),
    "sqrt": (lambda a: np.abs(a) + 0.5, lambda a: 0.5 / np.sqrt(a)),
    "exp": (lambda a: a, np.exp),
    "log": (lambda a: np.abs(a) + 0.5, lambda a: 1 / a),
    "log1p": (lambda a: np.abs(a), lambda a: 1 / (1 + a)),
    "expm1": (lambda a: a, np.exp),
    "tanh": (lambda a: a, lambda a: 1 - np.tanh(a) ** 2),
    "sigmoid": (lambda a: a, lambda a: sig(a) * (1 - sig(a))),
    "softplus": (lambda a: a, sig),
    "sin": (lambda a: a, np.cos),
    "cos": (lambda a: a, lambda a: -np.sin(a)),
    "erf": (lambda a: a, lambda a: 2 / math.sqrt(math.pi) * np.exp(-(a**2))),
    "gelu": (lambda a: a, lambda a: phi_cdf(a) + a * np.exp(-(a**2) / 2) / math.sqrt(2 * math.pi)),
    "silu": (lambda a: a, lambda a: sig(a) + a * sig(a) * (1 - sig(a))),
    "relu": (lambda a: a, lambda a: (a > 0).astype(float)),
    "leaky_relu": (lambda a: a, lambda a: np.where(a > 0, 1.0, 0.01)),
}


def unary_case(tag: str, a: NP) -> Case:
    dom, deriv = UNARY[tag]
    x = dom(a)
    fn = getattr(F, tag)
    return fn, [x], lambda g: [g * deriv(x)]


def binary_case(tag: str, a: NP, b: NP) -> Case:
    fn = getattr(F, tag)
    if tag == "div":
        b = np.where(np.abs(b) < 0.5, b + 1.5, b)
    derivs: dict[str, Callable[[NP, NP, NP], tuple[NP, NP]]] = {
        "add": lambda g, a, b: (g, g),
        "sub": lambda g, a, b: (g, -g),
        "mul": lambda g, a, b: (g * b, g * a),
        "div": lambda g, a, b: (g / b, -g * a / b**2),
        "maximum": lambda g, a, b: (g * (a >= b), g * (b > a)),
        "minimum": lambda g, a, b: (g * (a <= b), g * (b < a)),
    }

    def expected(g: NP) -> list[NP]:
        ga, gb = derivs[tag](g, np.broadcast_to(a, g.shape), np.broadcast_to(b, g.shape))
        return [unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)]

    return fn, [a, b], expected


SHAPE = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)
VALUES = st.floats(-3, 3, allow_nan=False).filter(lambda v: abs(v) > 1e-3)


@st.composite
def arrays(draw: st.DrawFn, shape: tuple[int, ...]) -> NP:
    n = int(np.prod(shape)) if shape else 1
    vals = draw(st.lists(VALUES, min_size=n, max_size=n, unique=True))
    return np.asarray(vals, dtype=float).reshape(shape)


@st.composite
def broadcast_pair(draw: st.DrawFn) -> tuple[NP, NP]:
    shape = draw(SHAPE)
    other = tuple(d if draw(st.booleans()) else 1 for d in shape)[draw(st.integers(0, len(shape))):]
    return draw(arrays(shape)), draw(arrays(other))


def check_case(case: Case, make: Callable[[NP], Tensor], seed: int) -> None:
    fn, inputs, expected = case
    rng = np.random.default_rng(seed)
    xs = [make(x) for x in inputs]
    out = fn(*xs)
    g = rng.standard_normal(out.shape)
    # grad of <g, f(x)> is the VJP of f at x applied to g.
    got = ad.grad(lambda *v: F.sum(fn(*v) * make(g)), argnums=tuple(range(len(xs))))(*xs)
    for got_i, exp_i in zip(got, expected(g), strict=True):
        assert got_i.shape == exp_i.shape
        np.testing.assert_allclose(got_i.numpy(), exp_i, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("tag", sorted(UNARY))
@settings(deadline=None, max_examples=15)
@given(data=st.data())
def test_unary_gradients(tag: str, data: st.DataObject, make: Callable[[NP], Tensor]) -> None:
    a = data.draw(arrays(data.draw(SHAPE)))
    check_case(unary_case(tag, a), make, data.draw(st.integers(0, 2**31)))


@pytest.mark.parametrize("tag", ["add", "sub", "mul", "div", "maximum", "minimum"])
@settings(deadline=None, max_examples=15)
@given(data=st.data())
def test_binary_gradients(tag: str, data: st.DataObject, make: Callable[[NP], Tensor]) -> None:
    a, b = data.draw(broadcast_pair())
    if tag in ("maximum", "minimum"):
        assume(not np.any(np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape))
                          == np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape))))
    check_case(binary_case(tag, a, b), make, data.draw(st.integers(0, 2**31)))


def structural_cases(a: NP) -> dict[str, Case]:
    """Hand-derived cotangents of the structural, reduction and normalising ops on `a`."""
    nd = a.ndim
    axis = nd - 1 if nd else 0
    first_max = np.zeros_like(a)
    if a.size:
        first_max.reshape(-1)[np.argmax(a)] = 1.0
    cases: dict[str, Case] = {
        "sum": (lambda x: F.sum(x), [a], lambda g: [np.broadcast_to(g, a.shape).copy()]),
        "mean": (lambda x: F.mean(x), [a], lambda g: [np.broadcast_to(g, a.shape) / a.size]),
        "max": (lambda x: F.max(x), [a], lambda g: [g * first_max]),
        "transpose": (lambda x: F.transpose(x), [a], lambda g: [np.transpose(g)]),
        "reshape": (lambda x: F.reshape(x, (-1,)), [a], lambda g: [g.reshape(a.shape)]),
        "broadcast_to": (lambda x: F.broadcast_to(x, (2, *a.shape)), [a], lambda g: [g.sum(0)]),
        "concat": (
            lambda x, y: F.concat([x, y], axis),
            [a.reshape(a.shape or (1,)), 2 * a.reshape(a.shape or (1,))],
            lambda g: list(np.split(g, 2, axis=axis)),
        ),
        "slice": (lambda x: x[..., :1], [a.reshape(a.shape or (1,))],
                  lambda g: [np.concatenate([g, np.zeros(a.shape[:-1] + (a.shape[-1] - 1,))
                                             if nd else np.zeros((0,))], axis=-1)]),
    }
    if nd:
        ax = nd - 1
        y = softmax_np(a, ax)
        cases["softmax"] = (lambda x: F.softmax(x, ax), [a],
                            lambda g: [y * (g - (g * y).sum(ax, keepdims=True))])
        cases["log_softmax"] = (lambda x: F.log_softmax(x, ax), [a],
                                lambda g: [g - y * g.sum(ax, keepdims=True)])
        cases["unslice"] = (lambda x: F.apply_unslice(x, (a.shape[0] + 2, *a.shape[1:]),
                                                      [(1, a.shape[0] + 1, 1)] +
                                                      [(0, d, 1) for d in a.shape[1:]]),
                            [a], lambda g: [g[1:-1]])
    if nd >= 2:
        b = np.arange(a.shape[-1] * 2, dtype=float).reshape(a.shape[-1], 2) / 7
        cases["matmul"] = (F.matmul, [a, b],
                           lambda g: [g @ b.T, unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape)])
    return cases


PIECEWISE = {"step", "greater", "argmax_mask", "one_hot", "where"}


@settings(deadline=None, max_examples=20)
@given(data=st.data())
def test_structural_gradients(data: st.DataObject, make: Callable[[NP], Tensor]) -> None:
    a = data.draw(arrays(data.draw(SHAPE)))
    for tag, case in structural_cases(a).items():
        try:
            check_case(case, make, data.draw(st.integers(0, 2**31)))
        except AssertionError as e:
            raise AssertionError(f"op {tag}: {e}") from e


def test_every_op_has_a_gradient_test() -> None:
    covered = set(UNARY) | {"add", "sub", "mul", "div", "maximum", "minimum"} | PIECEWISE
    covered |= set(structural_cases(np.ones((2, 3))))
    assert set(S.OPS) <= covered, f"ops without a gradient test: {set(S.OPS) - covered}"


def test_where_and_piecewise_constant_ops(make: Callable[[NP], Tensor]) -> None:
    a, b = np.array([1.0, -2.0, 3.0]), np.array([4.0, 5.0, -6.0])
    cond = make(np.array([1.0, 0.0, 1.0]))
    ga, gb = ad.grad(lambda x, y: F.sum(F.where(cond, x, y) * 2), argnums=(0, 1))(make(a), make(b))
    np.testing.assert_array_equal(ga.numpy(), [2.0, 0.0, 2.0])
    np.testing.assert_array_equal(gb.numpy(), [0.0, 2.0, 0.0])
    # step/greater/one_hot pass no gradient: d/dx sum(step(x) * x) = step(x) only.
    g = ad.grad(lambda x: F.sum(F.step(x) * x + F.greater(x, 0.0)))(make(a))
    np.testing.assert_array_equal(g.numpy(), [1.0, 0.0, 1.0])


# -- exact gradients -------------------------------------------------------------
def test_exact_gradient_equals_exact_difference_quotient() -> None:
    # f is a polynomial of degree 4 in each direction; the exact central difference of a
    # polynomial p at step h is p'(x) + O(h^2) terms that we cancel with Richardson
    # extrapolation of two steps, which is exact for degree <= 4.
    def f(w: Any, x: Any) -> Any:
        h = F.relu(x @ w)
        return F.sum(h * h * h * h) / 3 + F.sum(w * w)

    x = S.tensor([[Fraction(1, 3), Fraction(-2, 5)], [Fraction(3, 7), Fraction(1, 2)]], "exact")
    w0 = [[Fraction(1, 2), Fraction(-1, 3)], [Fraction(2, 3), Fraction(1, 5)]]
    g = ad.grad(f)(S.tensor(w0, "exact"), x).numpy()

    def at(i: int, j: int, h: Fraction) -> Fraction:
        w = [row[:] for row in w0]
        w[i][j] += h
        return Fraction(f(S.tensor(w, "exact"), x).item())

    for i in range(2):
        for j in range(2):
            def d(h: Fraction, i: int = i, j: int = j) -> Fraction:
                return (at(i, j, h) - at(i, j, -h)) / (2 * h)
            h = Fraction(1, 10**6)  # small enough to keep relu's active set fixed
            richardson = (4 * d(h / 2) - d(h)) / 3
            assert richardson == g[i, j], (i, j)


# -- higher order ----------------------------------------------------------------
def test_jvp_and_hvp_match_closed_forms(make: Callable[[NP], Tensor]) -> None:
    x = np.array([0.3, -1.2, 2.0])
    t = np.array([1.0, 0.5, -2.0])
    out, jt = ad.jvp(lambda v: F.tanh(v) * v, (make(x),), (make(t),))
    np.testing.assert_allclose(out.numpy(), np.tanh(x) * x, rtol=RTOL)
    np.testing.assert_allclose(jt.numpy(), (1 - np.tanh(x) ** 2) * x * t + np.tanh(x) * t,
                               rtol=RTOL)
    hv = ad.hessian_vector_product(lambda v: F.sum(F.sin(v) * v), make(x), make(t))
    np.testing.assert_allclose(hv.numpy(), (2 * np.cos(x) - x * np.sin(x)) * t, rtol=RTOL)


def test_grad_of_mapping_keeps_names(make: Callable[[NP], Tensor]) -> None:
    params = {"0.weight": make(np.array([[1.0, 2.0]])), "0.bias": make(np.array([0.5]))}
    x = make(np.array([[3.0], [4.0]]))
    g = ad.grad(lambda p: F.sum(x @ p["0.weight"] + p["0.bias"]))(params)
    assert list(g) == ["0.weight", "0.bias"]
    np.testing.assert_array_equal(g["0.weight"].numpy(), [[7.0, 7.0]])
    np.testing.assert_array_equal(g["0.bias"].numpy(), [4.0])  # broadcast over 2x2


def test_unused_argument_gets_zero_gradient(make: Callable[[NP], Tensor]) -> None:
    g = ad.grad(lambda a, b: F.sum(a * 2), argnums=(0, 1))(make(np.ones(2)), make(np.ones(3)))
    np.testing.assert_array_equal(g[1].numpy(), np.zeros(3))


# -- the tape as a value ---------------------------------------------------------
def test_tape_prints_and_draws() -> None:
    _, tape = ad.trace(lambda w, x: F.sum(F.relu(x @ w)), S.tensor(np.ones((2, 1))),
                       S.tensor(np.ones((3, 2))))
    text = str(tape).splitlines()
    assert text[0].split() == ["#", "op", "inputs", "shape", "attrs"]
    assert [line.split()[1] for line in text[1:]] == ["leaf", "leaf", "matmul", "relu", "sum"]
    assert "matmul" in tape.to_dot() and "n2 -> n3" in tape.to_dot()
    assert [n.tag for n in tape] == ["leaf", "leaf", "matmul", "relu", "sum"]


# -- bad input ----------------------------------------------------------------------
def test_grad_of_non_scalar_is_refused() -> None:
    with pytest.raises(S.ShapeError, match=r"scalar.*\(3,\)"):
        ad.grad(lambda x: x * 2)(S.tensor(np.ones(3)))


def test_op_without_vjp_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    monkeypatch.setitem(S.OPS, "tanh", dataclasses.replace(S.OPS["tanh"], vjp=None))
    with pytest.raises(TypeError, match=r"'tanh' \(tape node #1\) has no VJP"):
        ad.grad(lambda x: F.sum(F.tanh(x)))(S.tensor(np.ones(2)))


def test_nan_in_gradient_raises_or_warns_naming_the_node() -> None:
    x = S.tensor(np.array([4.0, 0.0]))
    f = lambda v: F.sum(F.sqrt(v) * 0.0)  # noqa: E731  0 * d sqrt(0) = 0 * inf = NaN
    with pytest.raises(GradientNaNError, match=r"node #1 \(sqrt"):
        ad.grad(f, nan="raise")(x)
    with pytest.warns(RuntimeWarning, match="NaN in the gradient"):
        ad.grad(f, nan="warn")(x)
    assert np.isnan(ad.grad(f)(x).numpy()[1])


def test_contexts_do_not_leak_between_grad_calls() -> None:
    captured: list[Any] = []
    ad.grad(lambda v: (captured.append(v), F.sum(v))[1])(S.tensor(np.ones(2)))
    with pytest.raises(S.FieldMismatchError, match="independent differentiation contexts"):
        ad.grad(lambda v: F.sum(v * captured[0]))(S.tensor(np.ones(2)))


def test_argnums_out_of_range() -> None:
    with pytest.raises(ValueError, match="argnums"):
        ad.grad(lambda x: F.sum(x), argnums=1)(S.tensor(np.ones(2)))
