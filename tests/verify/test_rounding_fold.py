"""The ieee32exec left fold's bounds against exact rational arithmetic (comparisons of
rationals: no tolerance).

- `fold.running_errors` (fast steps, and the exact steps it falls back to) bounds the
  running-error recurrence E_k = E_(k-1) + t_k + half_ulp(m_k + E_(k-1) + t_k) evaluated
  exactly.
- The split fold of an ieee32exec matmul with an exact weight and an operand with errors
  (verify/rounding/rules.py `_fold_rows(split=True)`): e bounds |computed - real| and
  `local` bounds |computed - exact sum of the computed operand's products|, where the
  computed operand is any binary32 point within the operand's errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec.fields import binary32
from torchlean.verify.rounding import fold, rules
from torchlean.verify.rounding.model import U32, Bound, Ctx

f32 = np.float32


def _fr(v: float) -> Fraction:
    return Fraction(float(v))


def _half_ulp(x: Fraction, u: Fraction) -> Fraction:
    """u 2^floor(log2 x) exactly (0 for x = 0)."""
    if x == 0:
        return Fraction(0)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    return u * Fraction(2) ** e


@settings(deadline=None, max_examples=80)
@given(st.integers(1, 40), st.integers(1, 4), st.integers(0, 2**31), st.booleans(),
       st.sampled_from([2.0**-24, 2.0**-25, 2.0**-53]),
       st.sampled_from(["typical", "large_terms", "tiny_mags", "zero_mags", "near_pow2"]))
def test_running_errors_bound_the_exact_recurrence(rows: int, size: int, seed: int,
                                                   with_prev: bool, u: float,
                                                   kind: str) -> None:
    rng = np.random.default_rng(seed)
    mags = rng.random((rows, size)) * 4
    terms = rng.random((rows, size)) * 1e-7
    if kind == "large_terms":  # errors far above the magnitudes: the check fails
        terms = rng.random((rows, size)) * 1e3
    elif kind == "tiny_mags":
        mags = mags * 2.0**-1000
    elif kind == "zero_mags":
        mags[: rows // 2] = 0.0
    elif kind == "near_pow2":  # m + E just below a power of two
        mags = 2.0 ** np.round(np.log2(mags + 1e-3)) * (1 - 2.0**-45)
    prev = rng.random(size) * 1e-6 if with_prev else None
    got = fold.running_errors(terms, mags, u, prev)
    uq = Fraction(u)
    for j in range(size):
        e = _fr(prev[j]) if prev is not None else None
        for k in range(rows):
            t, m = _fr(terms[k, j]), _fr(mags[k, j])
            if e is None:
                e = t  # 0 + p_0 is exact
            else:
                s = e + t
                e = s + _half_ulp(m + s, uq)
            assert e <= _fr(got[k, j]), (k, j, float(e), got[k, j])


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 5), st.integers(0, 2**31),
       st.booleans(), st.sampled_from(["normal", "pow2", "tiny", "cancel", "zero_real"]),
       st.sampled_from([1e-7, 1e-3, 0.5]), st.sampled_from([U32, 2.0**-25]),
       st.booleans())
def test_split_fold_bounds_the_exact_errors(m: int, k: int, n: int, seed: int, w_first: bool,
                                            kind: str, rel_err: float, u: float,
                                            with_smag: bool) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, k) if w_first else (k, n)).astype(f32)
    if kind == "pow2":
        w = (np.sign(w) * 2.0 ** np.round(np.log2(np.abs(w) + 1e-30))).astype(f32)
    elif kind == "tiny":  # products and partial sums near and below 2^-126
        w = (w * f32(2.0**-120)).astype(f32)
    elif kind == "cancel" and k >= 2:
        w[...] = f32(1.0)
        w[..., 1::2] = f32(-1.0)
    shape_x = (k, m) if w_first else (m, k)
    x = rng.normal(size=shape_x).astype(f32)  # the real operand (binary32 values here)
    rad = np.abs(x.astype(np.float64)) * rel_err + 1e-30
    # the computed operand: any binary32 point within rad of the real one
    xc = (x + (rng.random(shape_x) * 2 - 1) * rad).astype(f32)
    xc = np.where(rng.random(shape_x) < 0.8, xc, x).astype(f32)  # some exact entries
    if kind == "zero_real":  # real operand 0: every computed partial sum is error alone
        xc, x = x, np.zeros(shape_x, dtype=f32)
    e = np.nextafter(np.abs(xc.astype(np.float64) - x.astype(np.float64)), np.inf)
    e = np.where(xc == x, 0.0, e)
    e.flat[0] = max(e.flat[0], 2.0**-149)  # at least one error: the split path
    x64 = x.astype(np.float64)
    xb = Bound(x64, x64.copy(), e)
    wb = Bound(w.astype(np.float64), w.astype(np.float64), np.zeros(w.shape))
    a, b = (wb, xb) if w_first else (xb, wb)
    out_shape = (n, m) if w_first else (m, n)
    smag = None
    if with_smag:  # exact partial-sum magnitudes, rounded up: the tightest sound smag
        w64 = w.astype(np.float64)  # terms in the fold's layout [*out_shape, k]
        terms = w64[:, None, :] * x64.T[None, :, :] if w_first else \
            x64[:, None, :] * w64.T[None, :, :]
        smag = np.nextafter(np.abs(np.cumsum(terms, axis=-1)), np.inf) * (1 + 2.0**-40)
    got = rules._matmul(a, b, Ctx("ieee32exec", u, True, "node"), smag)
    if u != U32:  # a unit roundoff other than binary32's has no binary32 fold to compare
        assert got.local is None or np.all(got.local <= got.e)
        return
    assert got.local is not None
    fl = binary32.matmul_left_fold(w, xc) if w_first else binary32.matmul_left_fold(xc, w)
    for i in np.ndindex(out_shape):
        r, cc = i
        if w_first:
            real = sum(_fr(w[r, j]) * _fr(x[j, cc]) for j in range(k))
            comp = sum(_fr(w[r, j]) * _fr(xc[j, cc]) for j in range(k))
        else:
            real = sum(_fr(x[r, j]) * _fr(w[j, cc]) for j in range(k))
            comp = sum(_fr(xc[r, j]) * _fr(w[j, cc]) for j in range(k))
        done = _fr(fl[i])
        assert abs(done - real) <= _fr(got.e[i]), (i, float(done - real), got.e[i])
        assert abs(done - comp) <= _fr(got.local[i]), (i, float(done - comp), got.local[i])
        assert _fr(got.lo[i]) <= real <= _fr(got.hi[i])


@settings(deadline=None, max_examples=80)
@given(st.integers(1, 70), st.integers(1, 40), st.integers(0, 2**31), st.booleans(),
       st.sampled_from([2.0**-24, 2.0**-25, 2.0**-53]),
       st.sampled_from(["typical", "large_terms", "near_pow2", "tiny_terms"]))
def test_running_errors_at_once_are_the_row_steps(rows: int, size: int, seed: int,
                                                   with_prev: bool, u: float,
                                                   kind: str) -> None:
    """The fast steps by whole-block fixed-point rounds (`fold._steps_at_once`) are the
    row-by-row steps, bit for bit, wherever they settle (compared as bits: no tolerance);
    with terms as large as the magnitudes the steps change often and may not settle."""
    rng = np.random.default_rng(seed)
    mags = rng.random((rows, size)) * 4
    terms = rng.random((rows, size)) * 1e-7
    if kind == "large_terms":
        terms = rng.random((rows, size)) * 4
    elif kind == "near_pow2":  # m + s just below a power of two: the steps' binades flip
        mags = 2.0 ** np.round(np.log2(mags + 1e-3)) * (1 - 2.0**-45)
        terms = rng.random((rows, size)) * 2.0**-44
    elif kind == "tiny_terms":
        terms = terms * 1e-200
    prev = rng.random(size) * 1e-6 if with_prev else None
    inflated = mags * fold._INFLATE
    got = fold._steps_at_once(terms, inflated, u, prev)
    ref_err, ref_sums = fold._steps_by_row(terms, inflated, u, prev)
    if got is None:
        assert rows - (prev is None) < 2 or kind in ("large_terms", "near_pow2")
        return
    for a, b in zip(got, (ref_err, ref_sums), strict=True):
        assert a.shape == b.shape
        assert np.array_equal(a.view(np.int64), b.view(np.int64))
