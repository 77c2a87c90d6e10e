"""alpha-beta-CROWN's float search in ReLU splitting (`relu_bab.optimize_alpha_betas`):
its objective is a valid lower bound on the subdomain's points for any slopes in [0, 1]
and betas >= 0, its gradients are the objective's, the search never ends below its start,
and the slopes it hands the sound pass sit on the 2^-16 grid."""

from __future__ import annotations

from typing import Any

import numpy as np
from exact_nets import chain_forward, relu_mlp
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.verify.bounds.alpha_crown import relu_chain
from torchlean.verify.vnn.batched import BatchedModel
from torchlean.verify.vnn.relu_bab import (
    _alpha_beta_bound_and_grad,
    adaptive_slopes,
    on_slope_grid,
    optimize_alpha_betas,
)

Arr = np.ndarray[Any, Any]


def _setup(widths: tuple[int, ...], seed: int) -> tuple[Any, ...]:
    graph, params = relu_mlp(widths, seed % 1000)
    m = BatchedModel(graph, params)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0, widths[0])
    hi = lo + rng.uniform(0.5, 2.0)
    width = sum(w for _, w in m.relu_nodes())
    _, zl, zu, _, _, _, _ = m.bound_splits(lo, hi, np.eye(widths[-1]),
                                           np.zeros((1, width), np.int8))
    free = np.flatnonzero((zl[0] < 0) & (zu[0] > 0))
    signs = np.zeros((3, width), np.int8)
    for i in range(3):  # a few unstable neurons split each way
        pick = rng.choice(free, size=min(2, free.size), replace=False)
        signs[i, pick] = rng.choice([-1, 1], size=pick.size)
    C = rng.normal(size=(2, widths[-1]))
    _, zl, zu, _, _, _, _ = m.bound_splits(lo, hi, C, signs)
    return graph, params, relu_chain(graph, params), lo, hi, zl, zu, signs, C, rng


def _layers(chain: Any, zl: Arr, zu: Arr, signs: Arr) -> tuple[list[Any], Arr]:
    """The relaxation layers as `relu_bab._optimize` builds them."""
    widths = [w.shape[0] for w in chain.weights[:-1]]
    cuts = np.cumsum([0, *widths])
    out = []
    for k in range(len(widths)):
        lo, hi = zl[:, cuts[k]: cuts[k + 1]], zu[:, cuts[k]: cuts[k + 1]]
        unst = (lo < 0) & (hi > 0)
        slope = np.where(unst, hi / np.where(unst, hi - lo, 1.0), (lo >= 0) * 1.0)
        out.append((slope, np.where(unst, -slope * lo, 0.0),
                    np.where(unst, (hi >= -lo) * 1.0, (lo >= 0) * 1.0),
                    signs[:, cuts[k]: cuts[k + 1]].astype(np.float64), unst))
    return out, cuts


def _points(chain: Any, lo: Arr, hi: Arr, rng: Any) -> tuple[Arr, Arr]:
    return chain_forward(chain, rng.uniform(lo, hi, size=(4000, lo.size)))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), widths=st.sampled_from([(3, 6, 2), (4, 5, 5, 2)]),
       scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_the_objective_bounds_every_point_of_the_subdomain(
        seed: int, widths: tuple[int, ...], scale: float) -> None:
    _, _, chain, lo, hi, zl, zu, signs, C, rng = _setup(widths, seed)
    layers, cuts = _layers(chain, zl, zu, signs)
    alphas = rng.random((3, 2, signs.shape[1]))
    betas = scale * rng.random(alphas.shape) * (signs != 0)[:, None, :]
    value, _, _ = _alpha_beta_bound_and_grad(chain, layers, cuts, alphas, betas, C,
                                             0.5 * (lo + hi), 0.5 * (hi - lo))
    z, y = _points(chain, lo, hi, rng)
    vals = y @ C.T
    for i in range(3):
        inside = np.all((signs[i] == 0) | (signs[i] * z >= 0), axis=1)
        # float objective, float points: 1e-9 of the magnitudes covers both roundings
        tol = 1e-9 * (1.0 + np.abs(vals).max() + np.abs(value).max())
        assert np.all(vals[inside] >= value[i] - tol)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_the_gradients_are_the_objectives(seed: int) -> None:
    _, _, chain, lo, hi, zl, zu, signs, C, rng = _setup((4, 6, 5, 2), seed)
    layers, cuts = _layers(chain, zl, zu, signs)
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    alphas = rng.random((3, 2, signs.shape[1]))
    betas = rng.random(alphas.shape) * (signs != 0)[:, None, :]
    value, g_beta, g_alpha = _alpha_beta_bound_and_grad(chain, layers, cuts, alphas, betas,
                                                        C, mid, rad)
    unstable = (zl < 0) & (zu > 0)
    eps = 1e-7
    checked = 0
    for i, r, j in zip(*np.nonzero(np.ones(alphas.shape, bool)), strict=True):
        for grad, arr, live in ((g_alpha, alphas, unstable[i, j]),
                                (g_beta, betas, signs[i, j] != 0)):
            bumped = arr.copy()
            bumped[i, r, j] += eps
            a2, b2 = (bumped, betas) if arr is alphas else (alphas, bumped)
            v2 = _alpha_beta_bound_and_grad(chain, layers, cuts, a2, b2, C, mid, rad)[0]
            fd = (v2[i, r] - value[i, r]) / eps
            if not live:
                assert grad[i, r, j] == 0.0
                continue
            # piecewise linear: the difference quotient equals the gradient unless the
            # step crosses a kink (a coefficient changing sign); 1e-4 absorbs rounding
            if abs(fd - grad[i, r, j]) <= 1e-4 * (1.0 + abs(fd)):
                checked += 1
    assert checked >= 0.8 * (np.count_nonzero(unstable) * 2 + np.count_nonzero(signs) * 2)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_the_search_ends_no_lower_than_it_starts(seed: int) -> None:
    _, _, chain, lo, hi, zl, zu, signs, C, rng = _setup((4, 6, 5, 2), seed)
    layers, cuts = _layers(chain, zl, zu, signs)
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    start = rng.random((3, 2, signs.shape[1]))
    alphas, betas = optimize_alpha_betas(chain, zl, zu, signs, C, lo, hi, alphas=start,
                                         iterations=10)
    assert np.all((alphas >= 0) & (alphas <= 1)) and np.all(betas >= 0)
    assert np.all(betas[np.broadcast_to((signs == 0)[:, None], betas.shape)] == 0)
    stable = np.broadcast_to(~((zl < 0) & (zu > 0))[:, None], alphas.shape)
    # only unstable ones move (the search holds slopes in float32)
    assert np.array_equal(alphas[stable], start.astype(np.float32)[stable])
    before = _alpha_beta_bound_and_grad(chain, layers, cuts, start, np.zeros_like(betas), C,
                                        mid, rad)[0]
    after = _alpha_beta_bound_and_grad(chain, layers, cuts, alphas, betas, C, mid, rad)[0]
    # the search compares bounds in float32: its choice of the best step can be off by
    # float32 rounding of the bound (sums of ~100 terms: ~1e-5 of the magnitudes), not
    # by the gains Adam makes (much larger here); 1e-4 of the magnitude covers that
    assert np.all(after >= before - 1e-4 * (1.0 + np.abs(before)))


def test_grid_slopes_are_dyadic_in_the_unit_interval_and_adaptive_where_stable() -> None:
    zl = np.array([[-1.0, 0.0, -2.0, -1.0]])
    zu = np.array([[2.0, 1.0, -0.5, 0.5]])
    raw = np.array([[[0.3, 0.7, 0.9, 1.5], [-0.2, 0.1, 0.2, 0.123456789]]])
    got = on_slope_grid(raw, zl, zu)
    assert np.array_equal(got * 2**16, np.floor(got * 2**16))
    assert got[0, 0, 0] == np.floor(0.3 * 2**16) / 2**16 and got[0, 1, 0] == 0.0
    assert got[0, 0, 3] == 1.0  # clipped to [0, 1]
    assert np.array_equal(got[0, :, 1], [1.0, 1.0]) and np.array_equal(got[0, :, 2], [0, 0])
    assert np.array_equal(adaptive_slopes(zl, zu, 1)[0, 0], [1.0, 1.0, 0.0, 0.0])


# -- the root's intervals as a floor ----------------------------------------------------
def _root_slopes(m: BatchedModel, lo: Arr, hi: Arr, C: Arr) -> dict[Any, Arr]:
    got = m.alpha_bound(lo[None], hi[None], C)
    assert got is not None
    return got[1]


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_the_float_floor_and_the_exact_intervals_agree_and_hold(seed: int) -> None:
    from fractions import Fraction

    from torchlean.verify.vnn.exact_chain import exact_chain

    graph, params, chain, lo, hi, _, _, _, C, rng = _setup((4, 6, 5, 2), seed)
    m = BatchedModel(graph, params)
    slopes = _root_slopes(m, lo, hi, C)
    zl, zu = m.split_floor(lo, hi, slopes)
    ex = exact_chain(graph, params)
    inner = m.chain_slopes(slopes, (0,))
    got = ex.intervals([Fraction(float(v)) for v in lo], [Fraction(float(v)) for v in hi],
                       type(inner)((None, None), inner.inner))
    el = np.concatenate([[float(Fraction(int(v), 1 << e)) for v in a] for a, _, e in got])
    eu = np.concatenate([[float(Fraction(int(v), 1 << e)) for v in b] for _, b, e in got])
    # the same procedure in float (outward rounded) and exactly: they differ by roundings
    # (2^-48 grid, float slack), far below 1e-9 of the magnitudes; a different procedure
    # (other slopes, or CROWN on other neurons) moves bounds by far more
    tol = 1e-9 * (1.0 + np.abs(el).max() + np.abs(eu).max())
    assert np.all(np.abs(zl - el) <= tol) and np.all(np.abs(zu - eu) <= tol)
    z, _ = _points(chain, lo, hi, rng)
    assert np.all(z >= zl - 1e-12) and np.all(z <= zu + 1e-12)
    assert np.all(z >= el - 1e-12) and np.all(z <= eu + 1e-12)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_bounds_with_the_floor_hold_on_the_subdomain(seed: int) -> None:
    graph, params, chain, lo, hi, _, _, signs, C, rng = _setup((4, 6, 5, 2), seed)
    m = BatchedModel(graph, params)
    floor = m.split_floor(lo, hi, _root_slopes(m, lo, hi, C))
    low, zl, zu, _, _, _, _ = m.bound_splits(lo, hi, C, signs, 5, floor=floor)
    some = ~np.isposinf(low).all(axis=1)  # rows not claimed empty (those hold a point 0)
    assert np.all(zl[some] >= floor[0]) and np.all(zu[some] <= floor[1])
    z, y = _points(chain, lo, hi, rng)
    vals = y @ C.T
    for i in range(signs.shape[0]):
        inside = np.all((signs[i] == 0) | (signs[i] * z >= 0), axis=1)
        if not some[i]:  # claimed empty: no point may meet the signs
            assert not inside.any()
            continue
        tol = 2.0**-40 * (1.0 + np.abs(vals).max())  # binary64 evaluation of the points
        assert np.all(vals[inside] >= low[i] - tol)


def test_bad_floors_are_refused() -> None:
    import pytest

    from torchlean.spec.errors import ShapeError
    from torchlean.verify import bounds

    graph, params, _, lo, hi, _, _, _, C, _ = _setup((3, 6, 2), 3)
    relu = next(n.id for n in graph.nodes if n.op == "relu")
    splits = {relu: np.zeros((1, 6), np.int8)}
    with pytest.raises(ShapeError):
        bounds.crown_with_layers(graph, params, lo[None], hi[None], C=C, relu_splits=splits,
                                 relu_floor={relu: (np.zeros((1, 5)), np.ones((1, 5)))})
    with pytest.raises(ValueError, match="lower > upper"):
        bounds.crown_with_layers(graph, params, lo[None], hi[None], C=C, relu_splits=splits,
                                 relu_floor={relu: (np.ones((1, 6)), np.zeros((1, 6)))})
    with pytest.raises(ValueError, match="go with relu_splits"):
        bounds.crown_with_layers(graph, params, lo[None], hi[None], C=C,
                                 relu_floor={relu: (np.zeros((1, 6)), np.ones((1, 6)))})


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_tuning_live_pairs_alone_finds_what_tuning_all_finds_there(seed: int) -> None:
    _, _, chain, lo, hi, zl, zu, signs, C, rng = _setup((4, 6, 5, 2), seed)
    start = rng.random((3, 2, signs.shape[1]))
    live = rng.random((3, 2)) < 0.5
    full_a, full_b = optimize_alpha_betas(chain, zl, zu, signs, C, lo, hi, alphas=start,
                                          iterations=8)
    part_a, part_b = optimize_alpha_betas(chain, zl, zu, signs, C, lo, hi, alphas=start,
                                          live=live, iterations=8)
    # each row's bound depends on its own slopes and betas only: the same search, up to
    # float32 summation order in the products (1e-3 absorbs a step's worth of it)
    assert np.allclose(part_a[live], full_a[live], atol=1e-3)
    assert np.allclose(part_b[live], full_b[live], atol=1e-3)
    assert np.array_equal(part_a[~live], start[~live]) and np.all(part_b[~live] == 0)
