"""The fast paths of verify.rounding compute the same figures, bit for bit, as the
general code they stand in for: the bit-step next_up/next_down against np.nextafter,
half_ulp's exponent-mask path against frexp/ldexp, the blocked exact-weight matmul fold
against the full-term-array fold, the zonotope's one-row product against a matmul.
Equality is exact (the bits), so there is no tolerance to justify."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from torchlean.verify.bounds import zonotope as zono
from torchlean.verify.outward import dn, next_down, next_up, up
from torchlean.verify.rounding import rules
from torchlean.verify.rounding.model import U32, Bound, Ctx, half_ulp

# (the last two: NaNs with the smallest payload, whose bit step would give an infinity)
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-1074, -(2.0**-1074),
                    2.0**-1022, -(2.0**-1022), np.finfo(np.float64).max,
                    -np.finfo(np.float64).max, 1.0, -1.0, 3 * 2.0**-1074,
                    *np.array([0x7FF0000000000001, -0x000FFFFFFFFFFFFF],
                              dtype=np.int64).view(np.float64)])


def _same_bits(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(b)
    return a.shape == b.shape and bool(np.array_equal(np.isnan(a), nan)) and \
        bool(np.array_equal(a[~nan].view(np.int64), b[~nan].view(np.int64)))


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(0, 300), elements=st.floats(width=64)),
       st.booleans())
def test_next_up_down_are_nextafter(x: np.ndarray, specials: bool) -> None:
    if specials:
        x = np.concatenate([x, np.tile(SPECIAL, 6)])
    if x.size:  # past outward._STEP_MIN (2048), where the bit step takes over
        x = np.tile(x, 2048 // x.size + 1)
    with np.errstate(all="ignore"):
        up_ref, dn_ref = np.nextafter(x, np.inf), np.nextafter(x, -np.inf)
        for fast, ref in ((next_up, up_ref), (up, up_ref), (next_down, dn_ref), (dn, dn_ref)):
            assert _same_bits(fast(x), ref)
        assert _same_bits(next_up(x[::3]), up_ref[::3])  # strided views too


def _half_ulp_reference(m: np.ndarray, u: float) -> np.ndarray:
    _, ex = np.frexp(m)
    out = np.ldexp(np.full_like(m, u), ex - 1)
    return np.where(np.isfinite(m), np.where(m > 0, out, 0.0), np.inf)


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(64, 200),
                  elements=st.floats(2.0**-1022, 1e300) | st.just(np.inf)),
       st.sampled_from([U32, 2.0**-25, 2.0**-53]))
def test_half_ulp_mask_path_is_frexp_path(m: np.ndarray, u: float) -> None:
    assert _same_bits(half_ulp(m, u), _half_ulp_reference(m, u))
    m2 = np.concatenate([m, [0.0, 1e-310, np.nan]])  # the general path
    assert _same_bits(half_ulp(m2, u), _half_ulp_reference(m2, u))


def _general_matmul(a: Bound, b: Bound, c: Ctx, smag: np.ndarray | None) -> Bound:
    """The rule's full-term-array path (as before the blocked one)."""
    def terms(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[..., :, None, :], np.swapaxes(y, -1, -2)[..., None, :, :]

    alo, blo = terms(a.lo, b.lo)
    ahi, bhi = terms(a.hi, b.hi)
    ae, be = terms(a.e, b.e)
    amag, bmag = terms(a.mag, b.mag)
    tlo, thi = rules._mul_enclosure(alo, ahi, blo, bhi,
                                    rules.binary32_values(a.lo, a.hi, b.lo, b.hi))
    te = up(up(up(amag * be) + up(bmag * ae)) + up(ae * be))
    pa, pb = terms(rules.exact_pow2(a), rules.exact_pow2(b))
    return rules._fold(tlo, thi, te, c, products=True,
                       eta_terms=1 if c.mode == "ieee32exec" else 2, smag=smag,
                       exact=np.broadcast_to(pa | pb, tlo.shape))


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 5), st.integers(0, 2**31),
       st.booleans(), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from(["ieee32exec", "float32_any_order"]), st.sampled_from([1, 7, 8192]),
       st.booleans())
def test_blocked_exact_matmul_is_the_general_fold(m: int, k: int, n: int, seed: int,
                                                  w_first: bool, errors: bool,
                                                  with_smag: bool, rounds: bool,
                                                  mode: str, chunk: int,
                                                  f32_ends: bool) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, k) if w_first else (k, n)).astype(np.float32).astype(np.float64)
    w[rng.random(w.shape) < 0.2] = 0.5  # exact powers of two
    w[rng.random(w.shape) < 0.1] = 0.0
    shape_x = (k, m) if w_first else (m, k)
    mid = rng.normal(size=shape_x)
    rad = rng.random(shape_x) * 0.1
    e = rng.random(shape_x) * 1e-7 if errors else np.zeros(shape_x)
    lo, hi = mid - rad, mid + rad
    if f32_ends:  # binary32 ends: products exact in binary64, no step outward
        lo, hi = (v.astype(np.float32).astype(np.float64) for v in (lo, hi))
    x = Bound(lo, hi, e)
    wb = Bound(w, w.copy(), np.zeros_like(w))
    a, b = (wb, x) if w_first else (x, wb)
    c = Ctx(mode, U32, rounds, "node")
    out_shape = (n, m) if w_first else (m, n)
    smag = rng.random(out_shape + (k,)) * 3 if with_smag and mode == "ieee32exec" else None
    saved = rules._CHUNK
    rules._CHUNK = chunk  # small blocks: the carry between blocks is exercised
    try:  # both with the same blocks of fold rows (the fast running-error steps
        # scale once per block, so the figures depend on the blocking)
        fast = rules._matmul(a, b, c, smag)
        ref = _general_matmul(a, b, c, smag)
    finally:
        rules._CHUNK = saved
    assert _same_bits(fast.lo, ref.lo) and _same_bits(fast.hi, ref.hi)
    if not (errors and rounds and mode == "ieee32exec"):
        assert fast.local is None and _same_bits(fast.e, ref.e)
        return
    # An operand with errors takes the split fold: e = P + R with P the propagated errors'
    # sum and R the fold's own rounding (test_rounding_split.py checks both against exact
    # arithmetic). It is the same recurrence as the general fold's (E_k = P_k + R_k), with
    # the binary64 roundings placed elsewhere: a step can differ only where its half-ulp
    # argument lies within a few binary64 ulps of a power of two, which random data does
    # not meet; rtol 2^-40 is a thousand times the binary64 slop of n <= 70 terms.
    assert fast.local is not None and np.all(fast.local <= fast.e)
    assert np.allclose(fast.e, ref.e, rtol=2.0**-40, atol=0.0)


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 2**31), st.booleans())
def test_one_row_symbols_product_is_the_matmul(k: int, n: int, seed: int,
                                               shared: bool) -> None:
    rng = np.random.default_rng(seed)
    g = np.zeros((2, k, k))
    g[:, np.arange(k), rng.permutation(k)] = rng.normal(size=(2, k))
    if shared:
        g[0, :, 0] = 1.0  # a symbol in every row: no fast path
    w = rng.normal(size=(k, n))
    got = zono._own_rows_times(g, w)
    ref = np.swapaxes(np.matmul(np.swapaxes(g, -1, -2), w), -1, -2)
    if shared and k > 1:
        assert got is None
    else:
        assert got is not None and np.array_equal(got, ref)


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**31), st.booleans())
def test_diagonal_block_product_is_the_matmul(k: int, n: int, seed: int, zeros: bool) -> None:
    """X @ W on a diagonal coefficient block (a fresh block, rows scaled) multiplies each
    column of W^T by one coefficient: the matmul's figures, whose other terms are exact
    zeros (compared in magnitude: a zero's sign may differ, and |c| is all that is read)."""
    from torchlean.verify.rounding import affine
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(k, n))
    d = rng.normal(size=k)
    if zeros:
        d[rng.random(k) < 0.5] = 0.0
    cf = np.zeros((1, k, k))
    cf[0, np.arange(k), np.arange(k)] = d
    assert affine._diagonal(cf) is not None
    x = affine.Form(np.zeros((1, k)), np.ones((1, k)), np.ones((1, k)), {7: cf})
    wf = affine.Form(w, w.copy(), np.zeros_like(w), {})
    got = affine._affine_matmul(9, [x, wf], Ctx("ieee32exec", U32, True, "n"), (1, n),
                                np.zeros((1, n)))[7]
    ref = np.matmul(w.T, cf)
    assert np.array_equal(np.abs(got), np.abs(ref))
    cf[0, 0, -1] = 1.0  # off the diagonal: the general product
    assert k == 1 or affine._diagonal(cf) is None


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 40), st.integers(0, 5), st.integers(1, 6), st.integers(0, 2**31),
       st.booleans())
def test_input_box_one_row_hint_is_the_scan(k: int, earlier: int, n: int, seed: int,
                                             points: bool) -> None:
    """An input box's zonotope knows where its symbols live (`Zono.one_row`): the product,
    sum |g|, the one-row verdict and a reshape's carried figures are the scan's, bit for
    bit (a product's zero may differ in sign only; |.| is compared there)."""
    from torchlean.verify.rounding.propagate import _one_row_symbols
    rng = np.random.default_rng(seed)
    lo = rng.normal(size=k)
    hi = lo if points else lo + rng.random(k) * np.where(rng.random(k) < 0.3, 0.0, 1.0)
    syms = zono.Symbols(earlier)  # symbols made before the box: zero columns
    z = zono.from_interval(lo, hi, syms)
    if z is None or z.g.shape[-1] == 0:
        assert points or not np.any(hi > lo)
        return
    assert z.one_row is not None and z.abs_g is not None
    assert _same_bits(z.abs_g, zono._sumabs(z.g))
    extra = 2  # later symbols: the hint pads like g
    flat = z.g.reshape(k, -1)
    rows, vals = z.one_row_padded(flat.shape[-1] + extra)
    padded = z.padded(flat.shape[-1] + extra).reshape(k, -1)
    assert np.array_equal(padded[rows, np.arange(rows.size)], vals)
    assert np.count_nonzero(padded) == np.count_nonzero(vals)
    x = zono.step("reshape", [z], {"shape": (1, k)}, (1, k), [(lo, hi)], syms,
                  np.arange(1, k + 1))
    assert x is not None and x.one_row is not None and x.abs_g is not None
    assert _same_bits(x.abs_g, zono._sumabs(x.g))
    assert _one_row_symbols(x) and _one_row_symbols(zono.Zono(x.c, x.g, x.r))
    w = rng.normal(size=(k, n))
    got = zono._own_rows_times(x.g, w, x.one_row)
    ref = zono._own_rows_times(x.g, w)
    assert got is not None and ref is not None and np.array_equal(np.abs(got), np.abs(ref))
    assert got.flags.c_contiguous  # (the layout decides the order of later sums over s)


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 30), st.integers(0, 2**31))
def test_shared_partial_sums_by_tiles_are_the_whole(k: int, n: int, s: int, seed: int) -> None:
    """The shared symbols' partial sums taken TILE output columns at a time are the same
    sums as all columns at once: each entry is the same binary64 dot products of 8 and
    the same additions (equal bits on OpenBLAS; a BLAS that ordered a dot of 8 otherwise
    for another width could differ by its rounding, which the caller's gamma bounds, so
    the stated tolerance is 4 gamma_(K+S) binary64 of the magnitudes summed)."""
    rng = np.random.default_rng(seed)
    gs, w = rng.normal(size=(k, s)), rng.normal(size=(k, n))
    old = zono.TILE
    try:
        zono.TILE = 10**9
        whole = zono._shared_partial_sums(gs, w)
        zono.TILE = 3
        tiled = zono._shared_partial_sums(gs, w)
    finally:
        zono.TILE = old
    mags = np.abs(w).T @ np.abs(gs).sum(axis=1)  # [N]: sum_i |w_in| sum_s |g_is|
    tol = 4 * (k + s) * 2.0**-53 / (1 - (k + s) * 2.0**-53) * mags
    assert np.all(np.abs(tiled - whole) <= tol[None, :])


EDGES = np.array([0.0, 2.0**-1074, 3 * 2.0**-1074, 2.0**-1022, 2.0**-1017, 2.0**-1017 * 1.5,
                  2.0**-1016, 2.0**-150, 2.0**-149, 2.0**-127, 2.0**-126,
                  np.nextafter(2.0**-126, 0.0), np.nextafter(2.0**-126, 1.0), 2.0**-125,
                  0.5, 1.0, 1.5, 3.0, 2.0**100, 2.0**127])


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 2**31), st.integers(64, 200), st.sampled_from([U32, 2.0**-25, 2.0**-53]),
       st.booleans())
def test_error_free_product_rounding_is_the_general_rule(seed: int, size: int, u: float,
                                                          with_exact: bool) -> None:
    """The error-free exact-product fast path of the blocked matmul (rules.
    `_exact_product_rounding`) is `_own_rounding` with the general rule's te, bit for
    bit, including enclosures at and around the subnormal threshold and 2^-1017."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate([EDGES, -EDGES, rng.normal(size=20) * 2.0 ** rng.integers(-140, 20, 20)])
    a, b = rng.choice(pool, size), rng.choice(pool, size)
    tlo, thi = np.minimum(a, b), np.maximum(a, b)
    if rng.random() < 0.5:  # also arrays with no possibly subnormal product
        far = np.abs(tlo) > 2.0**-120
        tlo, thi = np.where(far, tlo, 1.0), np.where(far, thi, 2.0)
        tlo, thi = np.minimum(tlo, thi), np.maximum(tlo, thi)
        tlo = np.where((tlo < 0) & (thi > 0), thi, tlo)
    exact = rng.random(size) < 0.3 if with_exact else np.zeros(size, dtype=bool)
    c = Ctx("ieee32exec", u, True, "node")
    five_tiny = float(next_up(next_up(next_up(0.0) + next_up(0.0)) + next_up(0.0)))
    te = np.full(size, five_tiny)
    tmag = np.maximum(np.abs(tlo), np.abs(thi))
    ref = rules._own_rounding(tlo, thi, te, next_up(tmag + te), c, exact)
    got = rules._exact_product_rounding(tlo, thi, tmag, c, exact, five_tiny)
    assert _same_bits(got, ref)


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(0, 300),
                  elements=st.floats(0.0, allow_nan=False, allow_infinity=False)),
       st.booleans())
def test_up_nonneg_inplace_is_nextafter(x: np.ndarray, specials: bool) -> None:
    """The in-place step for arrays with no negative element and no -0.0 (model.
    `up_nonneg_inplace`) is np.nextafter(x, inf), also with infinities, NaNs and sums
    that overflow among them."""
    from torchlean.verify.rounding.model import up_nonneg_inplace
    x = np.abs(x)  # (+0.0 for a -0.0 the strategy may give)
    if specials:
        x = np.concatenate([x, [0.0, 2.0**-1074, np.finfo(np.float64).max, np.inf, np.nan]])
    with np.errstate(all="ignore"):
        ref = np.nextafter(x, np.inf)
        assert _same_bits(up_nonneg_inplace(x.copy()), ref)
        for scalar in (np.float64(0.0), np.array(1.5), 2.0**-1074):  # no place to step in
            assert _same_bits(up_nonneg_inplace(scalar), np.nextafter(scalar, np.inf))
        if x.size:
            big = np.full(4, np.finfo(np.float64).max)  # finite, but the sum overflows
            assert _same_bits(up_nonneg_inplace(big.copy()), np.nextafter(big, np.inf))


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**31), st.sampled_from([1.0, -1.0]))
def test_zonotope_plus_exact_point_is_the_general_add(k: int, n: int, seed: int,
                                                      sign: float) -> None:
    """x + b and x - b for an exact point b (a bias) keep x's generators: the general
    rule's centre, radius and sum |g|, bit for bit (G + 0 equals G; a zero's sign aside)."""
    rng = np.random.default_rng(seed)
    syms = zono.Symbols()
    x = zono.from_interval(rng.normal(size=(1, k)), rng.normal(size=(1, k)) + 3.0, syms)
    assert x is not None
    w = rng.normal(size=(k, n))
    z = zono.step("matmul", [x, zono.point(w)], {}, (1, n), [], syms, None)
    assert z is not None
    b = rng.normal(size=(1, n))
    fast = zono._add(z, zono.point(b), sign, (1, n), z.g.shape[-1])
    general_b = zono.Zono(b, np.zeros((1, n, 1)), np.zeros((1, n)))  # one zero column
    ref = zono._add(z, general_b, sign, (1, n), z.g.shape[-1])
    assert fast.g is z.g
    assert _same_bits(fast.c, ref.c) and _same_bits(fast.r, ref.r)
    assert _same_bits(fast.sumabs(), ref.sumabs()) and np.array_equal(fast.g, ref.g)


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(0, 60), elements=st.floats(width=64)),
       st.booleans())
def test_power_of_two_bits_are_frexp(w: np.ndarray, pow2: bool) -> None:
    """The exact-weight matmul's power-of-two test read from the bits is frexp's, also
    with zeros, subnormals, infinities and NaNs among the values."""
    if pow2:
        w = np.concatenate([w, 2.0 ** np.arange(-1074, 1024, 37.0), [-(2.0**-1050), -0.0]])
    mant, _ = np.frexp(w)
    assert np.array_equal(rules._zero_or_power_of_two(w), (w == 0) | (np.abs(mant) == 0.5))
    assert np.array_equal(rules._zero_or_power_of_two(w[np.isfinite(w) & (np.abs(w) >= 1.0)]),
                          ((w == 0) | (np.abs(mant) == 0.5))[np.isfinite(w) & (np.abs(w) >= 1.0)])


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.float64, st.integers(1, 80), elements=st.floats(width=64)),
       hnp.arrays(np.float64, st.integers(1, 80), elements=st.floats(width=64)),
       st.integers(0, 2**31))
def test_may_be_subnormal_is_the_stepped_test(a: np.ndarray, b: np.ndarray, seed: int) -> None:
    """may_be_subnormal's comparison without the step is down(absmin - slack) < 2^-126,
    also at the threshold, for infinities and NaNs."""
    from torchlean.verify.rounding.model import SUBNORMAL, absmin, may_be_subnormal
    rng = np.random.default_rng(seed)
    n = min(a.size, b.size)
    edge = np.array([SUBNORMAL, np.nextafter(SUBNORMAL, 0), np.nextafter(SUBNORMAL, 1), 0.0])
    lo = np.where(rng.random(n) < 0.3, rng.choice(edge, n), np.minimum(a[:n], b[:n]))
    hi = np.where(rng.random(n) < 0.3, lo, np.maximum(a[:n], b[:n]))
    slack = np.where(rng.random(n) < 0.5, 0.0, np.abs(rng.choice(np.concatenate([a, edge]), n)))
    with np.errstate(all="ignore"):
        ref = next_down(absmin(lo, hi) - slack) < SUBNORMAL
        assert np.array_equal(may_be_subnormal(lo, hi, slack), ref)
