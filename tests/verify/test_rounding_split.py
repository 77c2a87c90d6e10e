"""The split fold of an ieee32exec matmul with an exact weight and an operand with errors
(verify/rounding/rules.py `_fold_rows(split=True)`): against exact rational arithmetic,
e bounds |computed - real| and `local` bounds |computed - exact sum of the computed
operand's products|, where the computed operand is any binary32 point within the
operand's errors. Equality of rationals: no tolerance."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec.fields import binary32
from torchlean.verify.rounding import rules
from torchlean.verify.rounding.model import U32, Bound, Ctx

f32 = np.float32


def _fr(v: float) -> Fraction:
    return Fraction(float(v))


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 5), st.integers(0, 2**31),
       st.booleans(), st.sampled_from(["normal", "pow2", "tiny", "cancel"]),
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
