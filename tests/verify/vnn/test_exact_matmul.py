"""Exact integer products through float64 limbs: the same integers as a plain Python sum
of products, with no tolerance (huge, tiny, negative and zero entries; chunked blocks; the
fallback), and the exact chain's lower bounds unchanged whether its products go through
limbs or through numpy's object product."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.verify.vnn import exact_chain as chain_module
from torchlean.verify.vnn import exact_matmul
from torchlean.verify.vnn.exact_chain import GRID, ChainSlopes, ExactChain
from torchlean.verify.vnn.exact_matmul import exact_dot, limbs_dot, split

# integers from zero and +-1 to well past 2^64 and 2^600, both signs, limb edges included
EDGES = [0, 1, -1, 2**15 - 1, -(2**15), 2**15, 2**16 - 1, -(2**16), 2**16, 2**53 + 1,
         -(2**63), 2**64 - 1]
INTS = st.one_of(st.sampled_from(EDGES), st.integers(-(2**40), 2**40),
                 st.integers(-(2**700), 2**700),
                 st.builds(lambda s, k: s * (1 << k), st.sampled_from([1, -1, 3, -5]),
                           st.integers(0, 900)))


def _matrix(draw: Any, rows: int, cols: int) -> Any:
    a = np.empty((rows, cols), dtype=object)
    for i in range(rows):
        for j in range(cols):
            a[i, j] = draw(INTS)
    return a


def _reference(a: Any, b: Any) -> Any:
    """a . b by Python sums of products (independent of numpy's dot)."""
    a2 = a if a.ndim == 2 else a[None]
    b2 = b if b.ndim == 2 else b[:, None]
    out = np.empty((a2.shape[0], b2.shape[1]), dtype=object)
    for i in range(a2.shape[0]):
        for j in range(b2.shape[1]):
            out[i, j] = sum((int(a2[i, k]) * int(b2[k, j]) for k in range(a2.shape[1])), 0)
    if b.ndim == 1:
        out = out[:, 0]
    if a.ndim == 1:
        out = out[0]
    return out


@st.composite
def products(draw: Any) -> tuple[Any, Any]:
    m, n, p = draw(st.integers(0, 5)), draw(st.integers(0, 6)), draw(st.integers(0, 5))
    a, b = _matrix(draw, m, n), _matrix(draw, n, p)
    if draw(st.booleans()) and m:
        a = a[0]
    if draw(st.booleans()) and p:
        b = b[:, 0]
    return a, b


def _same(got: Any, want: Any) -> None:
    got, want = np.asarray(got, dtype=object), np.asarray(want, dtype=object)
    assert got.shape == want.shape
    assert all(type(g) is int and g == w for g, w in zip(got.flat, want.flat, strict=True))


def _check_limbs(data: Any) -> None:
    """The limb invariant: lower limbs in [0, 2^16), the top one in [-2^15, 2^15)."""
    assert np.all((data[..., :-1] >= 0) & (data[..., :-1] < 2**16))
    assert np.all((data[..., -1] >= -(2**15)) & (data[..., -1] < 2**15))


@settings(max_examples=60, deadline=None)
@given(products())
def test_limb_products_are_the_exact_integer_products(ab: tuple[Any, Any]) -> None:
    a, b = ab
    want = _reference(a, b)
    got = limbs_dot(a, b)
    _same(got.ints(), want)
    _check_limbs(got.data)
    positive, negative = got.signs()
    assert positive.tolist() == (np.asarray(want) > 0).tolist()
    assert negative.tolist() == (np.asarray(want) < 0).tolist()
    _same(limbs_dot(split(a), split(b)).ints(), _reference(a, b))
    _same(exact_dot(a, b), _reference(a, b))


@settings(max_examples=30, deadline=None)
@given(products())
def test_small_blocks_and_the_fallback_give_the_same_integers(ab: tuple[Any, Any]) -> None:
    a, b = ab
    want = _reference(a, b)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exact_matmul, "_CHUNK", 1)  # one row per block
        _same(limbs_dot(a, b).ints(), want)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exact_matmul, "_MAX_TERMS", 0)  # contraction "too long": object product
        _same(limbs_dot(a, b).ints(), want)


@settings(max_examples=40, deadline=None)
@given(st.lists(INTS, min_size=1, max_size=12))
def test_limbs_round_trip_and_know_their_signs(values: list[int]) -> None:
    x = np.array(values + [0], dtype=object)
    limbs = split(x)
    _same(limbs.ints(), x)
    positive, negative = limbs.signs()
    assert positive.tolist() == [v > 0 for v in x]
    assert negative.tolist() == [v < 0 for v in x]
    _same(limbs.positive(positive).ints(), np.where(x > 0, x, 0))


def test_numpy_integers_are_split_like_python_ints() -> None:
    x = np.array([np.int64(-7), 5, np.int64(2**62)], dtype=object)
    _same(split(x).ints(), np.array([-7, 5, 2**62], dtype=object))


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="do not chain"):
        limbs_dot(np.ones((2, 3), dtype=object), np.ones((4, 2), dtype=object))


# -- the exact chain: bounds identical through limbs and through object products ---------
@st.composite
def chains(draw: Any) -> tuple[ExactChain, list[Fraction], list[Fraction],
                               list[list[Fraction]]]:
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 4))] + [draw(st.integers(1, 5)) for _ in range(depth)]
    weights, biases = [], []
    for k in range(depth):
        scale = draw(st.integers(0, 70))  # tiny (2^-70) to plain weights
        bits = draw(st.integers(1, 60))
        w = np.empty((widths[k + 1], widths[k]), dtype=object)
        for idx in np.ndindex(*w.shape):
            w[idx] = draw(st.one_of(st.just(0), st.integers(-(2**bits), 2**bits)))
        b = np.array([draw(st.integers(-(2**bits), 2**bits)) for _ in range(widths[k + 1])],
                     dtype=object)
        weights.append((w, scale))
        biases.append((b, draw(st.integers(0, 70))))
    lower = [Fraction(draw(st.integers(-(2**20), 2**20)), 2 ** draw(st.integers(0, 30)))
             for _ in range(widths[0])]
    upper = [q + Fraction(draw(st.integers(0, 2**20)), 2 ** draw(st.integers(0, 30)))
             for q in lower]
    rows = [[Fraction(draw(st.integers(-9, 9)), draw(st.integers(1, 7)))
             for _ in range(widths[-1])] for _ in range(draw(st.integers(1, 3)))]
    return ExactChain(tuple(weights), tuple(biases)), lower, upper, rows


class ReferenceChain(ExactChain):
    """The chain with the back-substitution as it was before the limb products: every
    product numpy's object dot, every column kept (the reference the fast one must equal)."""

    def _back(self, k: int, spec: Any, e_spec: int, relax: Any, box: Any,
              slopes: Any = None, terms: Any = None) -> Any:
        shift = chain_module._shift
        A, eA = spec, e_spec
        const = np.zeros(spec.shape[0], dtype=object)
        ec = 0
        for j in range(k, -1, -1):
            (w, ew), (b, eb) = self.weights[j], self.biases[j]
            e_new = max(ec, eA + eb)
            const = shift(const, ec, e_new) + shift(A.dot(b), eA + eb, e_new)
            ec = e_new
            A, eA = A.dot(w), eA + ew
            if j == 0:
                break
            a, s, c, _, ez = relax[j - 1]
            pos = np.where(A > 0, A, 0)
            neg = A - pos
            e_new = max(ec, eA + GRID + ez)
            const = shift(const, ec, e_new) + shift(neg.dot(c), eA + GRID + ez, e_new)
            ec = e_new
            given = None if slopes is None else slopes[j - 1]
            lower = (a * (1 << GRID))[None, :]
            if given is not None:
                lower = np.where((c != 0)[None, :], given, lower)
            A = pos * lower + neg * s[None, :]
            eA = eA + GRID
            if terms and j - 1 in terms:
                t, et = terms[j - 1]
                if et > eA:
                    A, eA = shift(A, eA, et), et
                A = A + shift(t, et, eA)
        xl, xu, ex = box
        pos = np.where(A > 0, A, 0)
        val = pos.dot(xl) + (A - pos).dot(xu)
        e = max(ec, eA + ex)
        return shift(val, eA + ex, e) + shift(const, ec, e), e


def _bounds(chain: ExactChain, limb_work: int, *args: Any, **kwargs: Any) -> Any:
    fresh = ExactChain(chain.weights, chain.biases)  # no limbs cached from another run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chain_module, "LIMB_WORK", limb_work)
        return fresh.lower_bound_split(*args, **kwargs)


@settings(max_examples=25, deadline=None)
@given(chains(), st.data())
def test_chain_bounds_are_identical_through_limbs(chain_case: Any, data: Any) -> None:
    _same_bounds(chain_case, data)


@settings(max_examples=300, deadline=None)
@given(chains(), st.data())
@pytest.mark.slow
def test_chain_bounds_are_identical_through_limbs_many(chain_case: Any, data: Any) -> None:
    _same_bounds(chain_case, data)


def _same_bounds(chain_case: Any, data: Any) -> None:
    """The bounds of a random chain with random sign constraints, betas and slopes: the
    same Fractions through limbs, through object products and by the reference."""
    chain, lower, upper, rows = chain_case
    widths = chain.layer_widths()
    signs = {}
    for k, w in enumerate(widths):
        for j in range(w):
            sign = data.draw(st.sampled_from([0, 0, 1, -1]))
            if sign:
                signs[(k, j)] = sign
    betas = [{key: Fraction(data.draw(st.integers(0, 40)), 2 ** data.draw(st.integers(0, 9)))
              for key in signs} for _ in rows]
    slopes = None
    if data.draw(st.booleans()):
        e = data.draw(st.integers(0, GRID))
        final = tuple((np.array([[data.draw(st.integers(0, 1 << e)) for _ in range(w)]
                                 for _ in rows], dtype=object), e) for w in widths)
        inner = tuple(None if k == 0 else tuple(
            (np.array([[data.draw(st.integers(0, 1 << e)) for _ in range(widths[i])]
                       for _ in range(2 * widths[k])], dtype=object), e) for i in range(k))
            for k in range(len(widths)))
        slopes = ChainSlopes(final, inner)
    args = (lower, upper, rows, signs, betas, slopes)
    by_objects = _bounds(chain, 1 << 62, *args)  # every product numpy's object dot
    by_limbs = _bounds(chain, 0, *args)  # every product through float64 limbs
    reference = ReferenceChain(chain.weights, chain.biases).lower_bound_split(*args)
    assert by_objects == by_limbs == reference
    if by_objects is not None:
        assert all(type(q) is Fraction for q in by_limbs)


def test_a_split_term_on_a_dead_neuron_still_counts() -> None:
    """z = (x, x) on x in [-1, 1], y = -relu(z_1); z_0 constrained <= 0 is dead after
    the clamp, but its beta term (y >= y + z_0 / 2 there) gives its column a coefficient
    that must reach the input: the bound is -1/2, not -1."""

    def ints(rows: list[Any]) -> Any:
        return np.array(rows, dtype=object)

    chain = ExactChain(((ints([[1], [1]]), 0), (ints([[0, -1]]), 0)),
                       ((ints([0, 0]), 0), (ints([0]), 0)))
    args = ([Fraction(-1)], [Fraction(1)], [[Fraction(1)]], {(0, 0): -1},
            [{(0, 0): Fraction(1, 2)}], None)
    want = ReferenceChain(chain.weights, chain.biases).lower_bound_split(*args)
    without = ReferenceChain(chain.weights, chain.biases).lower_bound_split(
        *args[:4], [{(0, 0): Fraction(0)}], None)
    assert want == [Fraction(-1, 2)] and without == [Fraction(-1)]
    for limb_work in (0, 1 << 62):
        assert _bounds(chain, limb_work, *args) == want
