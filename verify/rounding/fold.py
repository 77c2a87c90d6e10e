"""The running-error recurrence of ieee32exec's zero-seeded left fold, one vector step per
term across all folds at once (`running_errors`), used by `rules._fold_rows`.

For a fold S_k = S_(k-1) + p_k whose computed terms err by at most t_k and whose real
partial sums satisfy |S_k| <= m_k, the computed partial sums err by at most E_k:

    E_k = E_(k-1) + t_k + half_ulp(m_k + E_(k-1) + t_k),

half_ulp(x) = u 2^floor(log2 x) bounding the rounding of a normal sum of magnitude <= x (a
subnormal sum of binary32 numbers is exact). Any sequence B with B_(-1) >= E_(-1) and
B_k >= B_(k-1) + t_k + half_ulp(m_k + B_(k-1) + t_k) bounds E (half_ulp is
non-decreasing). Two ways to compute one:

- exact steps: every binary64 operation stepped up to the next binary64 number (the
  bit pattern plus one: every quantity is positive);
- fast steps, five vector operations per term instead of nine: round-to-nearest
  throughout, the magnitudes inflated to m~_k = m_k (1 + 2^-30), and the result scaled
  by F = 1 + 2 gamma_(2r+2) (r rows in the block, binary64's gamma). Then B^_k, the
  round-to-nearest recursive sum of B_(-1), t and the steps h_k = half_ulp(a^_k),
  a^_k = fl(m~_k + fl(B^_(k-1) + t_k)), is within a factor 1 - gamma_(2r+2) below
  the exact sum X_k of the same terms (Higham, Accuracy and Stability of Numerical
  Algorithms, 2nd ed., section 4.2: nonnegative terms), and X bounds E as long as every
  a^_k >= m_k + F B^_(k-1) + t_k. Expanding the roundings, that holds when
  s^_k (1 + 2u) D <= m_k 2^-31 with s^_k = fl(B^_(k-1) + t_k) and D = F - (1 - u)^2;
  it is checked after the block (a block that fails it, or has a magnitude below
  2^-900, or a non-power-of-two unit, takes the exact steps).
"""

from __future__ import annotations

import numpy as np

from ..outward import U64, gamma_up
from ..outward import next_up as _up
from .model import Arr, half_ulp, up_nonneg_inplace

__all__ = ["running_errors"]

_NORMAL64 = 2.0**-1022  # smallest normal binary64
_EXPONENT = np.int64(0x7FF0000000000000)  # a binary64's exponent bits
_INFLATE = 1.0 + 2.0**-30  # the fast steps' magnitude inflation
_FAST_MIN_MAG = 2.0**-900  # smaller magnitudes: exact steps (their scaled check is normal)


def running_errors(terms: Arr, mags: Arr, u: float, prev: Arr | None) -> Arr:
    """Upper bounds B_k of E_k (module docstring) for terms t and partial-sum magnitudes m
    laid out [rows, size], E_(-1) <= `prev`; or, where `prev` is None (the fold's first
    term, 0 + p_0 exact), E_0 = t_0. All B_k, [rows, size]. A NaN or infinite B means
    an overflow (the caller refuses the bound)."""
    fast = _fast_steps(terms, mags, u, prev)
    return fast if fast is not None else exact_steps(terms, mags, u, prev)


def _is_power_of_two(u: float) -> bool:
    mant, _ = np.frexp(u)
    return bool(mant == 0.5)


def _fast_steps(terms: Arr, mags: Arr, u: float, prev: Arr | None) -> Arr | None:
    """The fast steps (module docstring), or None where their check fails."""
    rows = terms.shape[0]
    if not _is_power_of_two(u) or not bool(np.all(mags >= _FAST_MIN_MAG)):
        return None
    big = float(_up(1.0 + 2.0 * gamma_up(2 * rows + 2, U64)))  # F
    # D = F - (1 - u)^2 <= F - 1 + 2u; times 1 + 2u, and 4x for the check's own roundings
    d_check = float(_up(4.0 * _up(_up(big - 1.0 + 2.0 * U64) * (1.0 + 2.0 * U64))))
    inflated = mags * _INFLATE
    # narrow blocks (a classifier's few outputs): whole-block rounds, not a Python-level
    # step per row; wide ones: by row (cheaper there than the rounds' extra passes)
    steps = _steps_at_once(terms, inflated, u, prev) if terms.shape[1] <= _AT_ONCE_MAX_SIZE \
        else None
    err, sums = steps if steps is not None else _steps_by_row(terms, inflated, u, prev)
    first = 1 if prev is None else 0
    if not bool(np.all(np.isfinite(err))):
        return None
    # s^_k (1 + 2u) D <= m_k 2^-31, with room for the roundings of both products
    if not bool(np.all(sums[first:] * d_check <= mags[first:] * 2.0**-32)):
        return None
    # err >= +0 (sums of the nonnegative terms and steps): up steps the bits in place
    return up_nonneg_inplace(err * big)


def _steps_by_row(terms: Arr, inflated: Arr, u: float, prev: Arr | None) -> tuple[Arr, Arr]:
    """The fast steps' recurrence one vector step per row: (B^, s^), [rows, size] each;
    s^_0 = 0 where `prev` is None (the first term is exact)."""
    err = np.empty_like(terms)
    sums = np.empty_like(terms)  # s^_k
    first = 0
    if prev is None:
        err[0] = terms[0]
        sums[0] = 0.0
        prev, first = err[0], 1
    a = np.empty(terms.shape[1:])
    abits = a.view(np.int64)
    for k in range(first, terms.shape[0]):
        np.add(prev, terms[k], out=sums[k])
        np.add(inflated[k], sums[k], out=a)
        np.bitwise_and(abits, _EXPONENT, out=abits)  # 2^floor(log2 a), a normal
        np.multiply(a, u, out=a)  # exact: u is a power of two
        np.add(sums[k], a, out=err[k])
        prev = err[k]
    return err, sums


_AT_ONCE_ROUNDS = 4  # fixed-point rounds before the row-by-row steps take over
_AT_ONCE_MAX_SIZE = 64  # wider blocks take the row-by-row steps (measured: equal at ~128)


def _steps_at_once(terms: Arr, inflated: Arr, u: float,
                   prev: Arr | None) -> tuple[Arr, Arr] | None:
    """`_steps_by_row`'s figures, bit for bit, by whole-block passes, or None.

    The recurrence is a running sum of B_(-1), t_0, h_0, t_1, h_1, ... (s^_k after t_k,
    B^_k after h_k: the same additions in the same order as by row), where the step h_k
    depends on s^_k alone, i.e. on h_0..h_(k-1). Guess h (zeros), take the running sums,
    recompute h from them; a guess that reproduces itself is the recurrence's own h
    (by induction over k: h_0 needs no guess, and each next h_k follows from the
    earlier ones), so the running sums are the row-by-row figures. One round fixes at
    least one more h_k; a step changes only where m + s crosses a power of two, so two
    or three rounds settle a block."""
    rows, size = terms.shape
    first = 1 if prev is None else 0
    n = rows - first
    if n < 2:
        return None
    start = terms[0] if prev is None else prev
    runs = np.empty((size, 2 * n + 1))  # each row one fold, contiguous: one pass each
    tt, infl = terms[first:].T, inflated[first:].T
    h = np.zeros((size, n))
    for _ in range(_AT_ONCE_ROUNDS):
        runs[:, 0] = start
        runs[:, 1::2] = tt
        runs[:, 2::2] = h
        np.add.accumulate(runs, axis=1, out=runs)
        step = np.add(infl, runs[:, 1::2])
        sbits = step.view(np.int64)
        np.bitwise_and(sbits, _EXPONENT, out=sbits)  # 2^floor(log2 a), a normal
        step *= u  # exact: u is a power of two
        if np.array_equal(step.view(np.int64), h.view(np.int64)):
            break
        h = step
    else:
        return None
    err, sums = np.empty_like(terms), np.empty_like(terms)
    if prev is None:
        err[0], sums[0] = terms[0], 0.0
    err[first:] = runs[:, 2::2].T
    sums[first:] = runs[:, 1::2].T
    return err, sums


def exact_steps(terms: Arr, mags: Arr, u: float, prev: Arr | None) -> Arr:
    """E_k = up(s + half_ulp(up(m_k + s), u)) with s = up(E_(k-1) + t_k), every binary64
    operation stepped up (the bit pattern plus one: every quantity is positive, and an
    overflow becomes NaN); E_0 = up(t_0) where `prev` is None."""
    n = terms.shape[0]
    err = np.empty_like(terms)
    first = 0
    if prev is None:
        np.nextafter(terms[0], np.inf, out=err[0])
        prev, first = err[0], 1
    # half_ulp(m) = u 2^floor(log2 m) is u times m's exponent bits for a normal m (and
    # inf for inf); a subnormal m (never seen in practice) takes the general path
    fast = bool(np.all(mags[first:] >= _NORMAL64))
    step = np.empty(terms.shape[1:])
    m = np.empty(terms.shape[1:])
    sbits, mbits = step.view(np.int64), m.view(np.int64)
    for k in range(first, n):
        np.add(prev, terms[k], out=step)
        sbits += 1
        np.add(mags[k], step, out=m)
        mbits += 1
        if fast:
            np.bitwise_and(mbits, _EXPONENT, out=mbits)
            np.multiply(m, u, out=m)
        else:
            m[...] = half_ulp(m, u)
        np.add(step, m, out=err[k])
        err[k].view(np.int64)[...] += 1
        prev = err[k]
    return err
