"""Zonotope enclosures of a graph's REAL values over an input box, for `verify.rounding`.

A node's real value is enclosed as c + G eps + r zeta: a centre c, generators G over
symbols eps_s in [-1, 1] shared by the whole graph (one per input element, one per
relaxed ReLU), and an independent radius r >= 0 (each zeta in [-1, 1], arbitrary, even
correlated). Linear ops are exact on zonotopes, so the enclosures keep what an interval
forgets: that a hidden unit and the next layer's partial sums depend on the same inputs.
ReLU uses the DeepZ relaxation (Singh et al., "Fast and Effective Robustness
Certification", NeurIPS 2018): relu(z) - lam z lies in [0, max(-lam l, (1 - lam) u)] for
z in [l, u] and any lam in [0, 1]. Every other op falls back to the interval the
rounding pass computed, as fresh symbols. `RULES` holds one rule per op of the table.

Soundness in binary64: every centre and coefficient is computed by round-to-nearest
operations, so the computed zonotope differs from an exact one; the difference is
bounded (Higham's gamma for the sums, U64 per product, 2^-1074 per possible underflow)
and added to r. The module's only output consumers read are `hull` and
`matmul_partial_sums`, both rounded outward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...spec.ops.rules import RuleTable
from ..outward import TINY64, U64, gamma_up, up_nonneg_inplace
from ..outward import next_down as _dn
from ..outward import next_up as _up

__all__ = ["Zono", "Symbols", "Step", "RULES", "ZONO_MAX_ENTRIES", "hull", "step",
           "matmul_partial_sums", "matmul_partial_sums_and_product"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
Index = np.ndarray[Any, np.dtype[np.int64]]
ZONO_MAX_ENTRIES = 1 << 22  # node size * symbols above this: the node gets no zonotope
FRESH_MAX = 4096  # a fallback node larger than this goes into r, not fresh symbols


def _gamma64(m: int) -> float:
    """An upper bound of gamma_m in binary64 (m < 2^50)."""
    return float(gamma_up(m, U64))


def _sumabs(g: Arr) -> Arr:
    """An upper bound of sum_s |g[..., s]| (a float sum of S nonnegatives is at most
    gamma_S relatively below the exact one, Higham 4.2)."""
    s = g.shape[-1]
    if s == 0:
        return np.zeros(g.shape[:-1])
    return _up(np.sum(np.abs(g), axis=-1) * (1.0 + 2.0 * _gamma64(s + 1)))


@dataclass
class Symbols:
    """The graph's symbol counter: how many eps_s exist so far."""

    count: int = 0

    def take(self, n: int) -> int:
        """Reserve n new symbols; the index of the first."""
        first = self.count
        self.count += n
        return first


@dataclass
class Zono:
    """c + G eps + r zeta, elementwise over the node's shape (G has one more axis)."""

    c: Arr
    g: Arr
    r: Arr
    abs_g: Arr | None = field(default=None, repr=False, compare=False)
    """`_sumabs(g)` once computed (g is never changed in place after construction)."""
    one_row: tuple[Index, Arr] | None = field(default=None, repr=False, compare=False)
    """Where known at construction (an input box): per symbol s, the one element (flat
    index into c) where g[..., s] may be nonzero, and g's value there; zero elsewhere."""

    def sumabs(self) -> Arr:
        """An upper bound of sum_s |g[..., s]| (`_sumabs`), computed once."""
        if self.abs_g is None:
            self.abs_g = _sumabs(self.g)
        return self.abs_g

    @property
    def radius(self) -> Arr:
        """An upper bound of |value - c| over all symbol values."""
        return _up(self.sumabs() + self.r)

    def padded(self, count: int) -> Arr:
        """G with zero columns up to `count` symbols."""
        extra = count - self.g.shape[-1]
        if extra <= 0:
            return self.g
        return np.concatenate([self.g, np.zeros(self.g.shape[:-1] + (extra,))], axis=-1)

    def one_row_padded(self, count: int) -> tuple[Index, Arr] | None:
        """`one_row` for `padded(count)` (a zero column's symbol: element 0, value 0)."""
        extra = count - self.g.shape[-1]
        if self.one_row is None or extra <= 0:
            return self.one_row
        rows, vals = self.one_row
        return (np.concatenate([rows, np.zeros(extra, dtype=np.int64)]),
                np.concatenate([vals, np.zeros(extra)]))

    @property
    def is_point(self) -> bool:
        return self.g.shape[-1] == 0 or not (np.any(self.g) or np.any(self.r))


def hull(z: Zono) -> tuple[Arr, Arr]:
    """An interval [lo, hi] containing every value of z."""
    if z.g.shape[-1] == 0 and not np.any(z.r):  # an exact point: c itself
        return z.c, z.c
    rad = z.radius
    return _dn(z.c - rad), _up(z.c + rad)


def _fits(shape: tuple[int, ...], count: int) -> bool:
    return int(np.prod(shape, dtype=np.int64)) * max(count, 1) <= ZONO_MAX_ENTRIES


def point(value: Arr) -> Zono:
    """An exact real value (a binary32 parameter, say)."""
    return Zono(np.asarray(value, dtype=np.float64), np.zeros(np.shape(value) + (0,)),
                np.zeros(np.shape(value)))


def from_interval(lo: Arr, hi: Arr, syms: Symbols, fresh: bool = True) -> Zono | None:
    """The box [lo, hi]: one fresh symbol per element (or, for large or `fresh=False`
    nodes, the radius r alone)."""
    mid = lo + (hi - lo) / 2  # any centre is fine: the radius covers |x - mid|
    mid = np.where(np.isfinite(mid), mid, 0.0)
    rad = np.maximum(_up(hi - mid), _up(mid - lo))
    wide = rad > 0
    if not np.any(wide):
        return point(mid)
    if not fresh or mid.size > FRESH_MAX or not _fits(mid.shape, syms.count + mid.size):
        return Zono(mid, np.zeros(mid.shape + (0,)), rad)
    first = syms.take(mid.size)
    g = np.zeros((mid.size, syms.count))
    g[np.arange(mid.size), first + np.arange(mid.size)] = rad.ravel()
    # symbol first + i lives in element i alone; earlier symbols are zero columns (any
    # element, value 0). So sum_s |g| is |rad| itself, exactly what `_sumabs` sums to
    rows = np.concatenate([np.zeros(first, dtype=np.int64), np.arange(mid.size)])
    vals = np.concatenate([np.zeros(first), rad.ravel()])
    abs_g = _up(rad * (1.0 + 2.0 * _gamma64(syms.count + 1)))
    return Zono(mid, g.reshape(mid.shape + (syms.count,)), np.zeros(mid.shape), abs_g,
                (rows, vals))


def _rounding(c: Arr, g: Arr, flops: int, abs_g: Arr | None = None) -> Arr:
    """A bound of the binary64 error of c and of sum_s |error of g[..., s]| when each was
    computed with `flops` round-to-nearest operations from exact inputs (`abs_g`:
    `_sumabs(g)` if known)."""
    abs_g = _sumabs(g) if abs_g is None else abs_g
    return _up(_gamma64(flops + 1) * _up(np.abs(c) + abs_g) * 2.0
               + (g.shape[-1] + 1) * flops * TINY64)


def _linear(c: Arr, g: Arr, r: Arr, flops: int) -> Zono:
    """A zonotope whose c and g were computed with `flops` operations; r already bounds
    the propagated radius; the computation's error joins r."""
    abs_g = _sumabs(g)
    return Zono(c, g, _up(r + _rounding(c, g, flops, abs_g)), abs_g)


def _add(a: Zono, b: Zono, sign: float, shape: tuple[int, ...], count: int) -> Zono:
    if b.g.shape[-1] == 0 and not np.any(b.r) and a.c.shape == shape and \
            a.g.shape[-1] == count:  # + an exact point (a bias): G + 0 is G itself
        c = np.broadcast_to(a.c + sign * b.c, shape).copy()
        return Zono(c, a.g, _up(np.broadcast_to(_up(a.r + b.r), shape) +
                                _rounding(c, a.g, 1, a.sumabs())), a.sumabs())
    c = a.c + sign * b.c
    g = a.padded(count) + sign * b.padded(count)
    return _linear(np.broadcast_to(c, shape).copy(), np.broadcast_to(g, shape + (count,)).copy(),
                   np.broadcast_to(_up(a.r + b.r), shape).copy(), 1)


def _mul(a: Zono, b: Zono, shape: tuple[int, ...], count: int) -> Zono:
    # (ca + Ga e + ra z)(cb + Gb e + rb z') = ca cb + ca Gb e + cb Ga e
    #   + ca rb z' + cb ra z + (Ga e + ra z)(Gb e + rb z')
    c = a.c * b.c
    g = a.padded(count) * b.c[..., None] + b.padded(count) * a.c[..., None]
    rest = _up(_up(np.abs(a.c) * b.r) + _up(np.abs(b.c) * a.r))
    rest = _up(rest + _up(_up(a.sumabs() + a.r) * _up(b.sumabs() + b.r)))
    return _linear(np.broadcast_to(c, shape).copy(), np.broadcast_to(g, shape + (count,)).copy(),
                   np.broadcast_to(rest, shape).copy(), 2)


def _own_rows_times(g: Arr, w: Arr, one_row: tuple[Index, Arr] | None = None) -> Arr | None:
    """G^T-style product for X @ W: out[..., n, s] = sum_k g[..., k, s] w[k, n], when every
    symbol s has at most one nonzero row k (the input box's symbols, say): then each sum
    has one product and zeros, so out is that product, exactly what a matmul computes
    (adding zeros is exact); None otherwise. `one_row` is g's `Zono.one_row`, if known."""
    kdim, sdim = g.shape[-2:]
    if sdim == 0:
        return None
    flat = g.reshape(-1, kdim, sdim)
    if one_row is not None and flat.shape[0] == 1:  # known: no need to scan g
        rows, vals = one_row
        wrows = w if np.array_equal(rows, np.arange(kdim)) else w[rows]  # [S, N]
        # laid out [N, S] in C order, as the scan's product: later sums over s then
        # take the same order
        prod: Arr = np.multiply(wrows.T, vals, order="C")
        return prod.reshape(g.shape[:-2] + (w.shape[1], sdim))
    row = np.argmax(flat != 0, axis=-2)  # [B, S]: a nonzero row (0 when none)
    val = np.take_along_axis(flat, row[:, None, :], axis=-2)[:, 0, :]  # [B, S]
    # each symbol has at most one nonzero row iff the nonzeros are the ones found
    if np.count_nonzero(flat) != np.count_nonzero(val):
        return None
    wt = w.T  # out[b, n, s] = w[row[b, s], n] val[b, s], laid out [B, N, S] directly
    out: Arr = np.stack([wt[:, row[i]] * val[i] for i in range(flat.shape[0])])
    return out.reshape(g.shape[:-2] + (w.shape[1], sdim))


def _matmul(a: Zono, b: Zono, shape: tuple[int, ...], count: int,
            product: Arr | None = None) -> Zono | None:
    """`product`: the generators of a @ b where already computed (X @ W: the partial
    sums' `matmul_partial_sums_and_product`), any order of each dot product."""
    if (b.c if b.is_point else a.c).ndim != 2:
        return None  # batched weights: not needed by the layers, left to intervals
    if b.is_point:  # X @ W
        w = b.c
        kdim = w.shape[-2]
        g = product if product is not None and product.shape[-1] == count else \
            _own_rows_times(a.padded(count), w, a.one_row_padded(count))
        if g is None:  # [..., N, S] = W^T [N, K] @ G [..., K, S]: BLAS reads both in place
            g = np.matmul(w.T, a.padded(count))
        r = np.matmul(a.r, np.abs(w))
        c = np.matmul(a.c, w)
        absin = np.matmul(_up(np.abs(a.c) + a.sumabs()), np.abs(w))
    elif a.is_point:  # W @ X
        w = a.c
        kdim = w.shape[-1]
        gb = b.padded(count)
        g = np.matmul(w, gb.reshape(gb.shape[:-2] + (-1,))).reshape(
            gb.shape[:-3] + (w.shape[-2],) + gb.shape[-2:])
        r = np.matmul(np.abs(w), b.r)
        c = np.matmul(w, b.c)
        absin = np.matmul(np.abs(w), _up(np.abs(b.c) + b.sumabs()))
    else:
        return None
    # a K-term dot product in binary64: |error| <= gamma_K sum |terms| (Higham 3.5), and
    # the binary64 evaluations of |.| @ |W| are themselves within gamma_K of exact
    slack = _up(_gamma64(kdim + 2) * 2.0 * _up(absin * (1.0 + 2.0 * _gamma64(kdim + 2))))
    r = _up(_up(r * (1.0 + 2.0 * _gamma64(kdim + 2))) + slack)
    r = _up(r + kdim * (count + 1) * TINY64)
    # (g is a new array: kept as it is where it has the node's shape already)
    g = g if g.shape == shape + (count,) else np.broadcast_to(g, shape + (count,)).copy()
    return Zono(np.broadcast_to(c, shape).copy(), g, np.broadcast_to(r, shape).copy())


def _sum(a: Zono, axes: tuple[int, ...], keepdims: bool, shape: tuple[int, ...],
         count: int) -> Zono:
    m = int(np.prod([a.c.shape[i] for i in axes], dtype=np.int64))
    c = np.sum(a.c, axis=axes, keepdims=keepdims).reshape(shape)
    gaxes = tuple(i if i >= 0 else i - 1 for i in axes)
    g = np.sum(a.padded(count), axis=gaxes, keepdims=keepdims).reshape(shape + (count,))
    r = np.sum(a.r, axis=axes, keepdims=keepdims).reshape(shape)
    absin = np.sum(_up(np.abs(a.c) + a.sumabs()), axis=axes, keepdims=keepdims)
    slack = _up(_gamma64(m + 2) * 2.0 * _up(absin.reshape(shape) * (1.0 + 2.0 * _gamma64(m + 2))))
    r = _up(_up(r * (1.0 + 2.0 * _gamma64(m + 2))) + slack)
    return Zono(c, g, _up(r + m * (count + 1) * TINY64))


def _relu(a: Zono, lo: Arr, hi: Arr, syms: Symbols, shape: tuple[int, ...]) -> Zono | None:
    """DeepZ with lam = hi / (hi - lo) on the unstable units; [lo, hi] encloses a."""
    unstable = (lo < 0) & (hi > 0)
    off = hi <= 0
    lam = np.where(unstable, hi / np.where(unstable, hi - lo, 1.0), np.where(off, 0.0, 1.0))
    lam = np.clip(lam, 0.0, 1.0)  # any lam in [0, 1] is sound; rounding may not leave it
    # relu(z) - lam z over [lo, hi] lies in [0, top] (both ends of a linear piece checked)
    top = np.where(unstable, np.maximum(_up(-lam * lo), _up(_up(1.0 - lam) * hi)), 0.0)
    top = np.where(off, 0.0, top)  # lam = 0 there: relu(z) = 0 exactly
    n_new = int(np.count_nonzero(top > 0))
    count = syms.count + n_new if n_new else a.g.shape[-1]
    if not _fits(shape, count):
        return None
    first = syms.take(n_new)
    half = _up(top / 2)
    c = a.c * lam + np.where(top > 0, half, 0.0)
    g = a.padded(count) * lam[..., None]
    where = np.flatnonzero(top > 0)
    gf = g.reshape(-1, count)
    gf[where, first + np.arange(n_new)] = half.ravel()[where]
    # c: two roundings (lam c, + half) -> 2 flops; half itself is rounded up, so
    # [c - half, c + half] covers [lam c, lam c + top]
    r = _up(a.r * lam)
    return _linear(c, gf.reshape(shape + (count,)), r, 2)


def _structural(idx: np.ndarray[Any, np.dtype[np.int64]], a: list[Zono],
                shape: tuple[int, ...], count: int) -> Zono:
    """Ops that move elements: `idx` picks, for each output element, an element of the
    arguments laid end to end (1-based; 0 is a zero the op fills in)."""
    if len(a) == 1 and idx.size == a[0].c.size and \
            np.array_equal(idx, np.arange(1, idx.size + 1)):  # a reshape: nothing moves
        z = a[0]
        # the same elements in the same order: sum_s |g| and `one_row` carry over (the
        # former while no zero columns are added, which change `_sumabs`'s factor)
        abs_g = None if z.abs_g is None or count != z.g.shape[-1] else z.abs_g.reshape(shape)
        return Zono(z.c.reshape(shape), z.padded(count).reshape(shape + (count,)),
                    z.r.reshape(shape), abs_g, z.one_row_padded(count))

    def table(parts: list[Arr], width: tuple[int, ...]) -> Arr:
        return np.concatenate([np.zeros((1,) + width)] + [p.reshape((-1,) + width)
                                                          for p in parts])

    c = table([z.c for z in a], ())[idx]
    r = table([z.r for z in a], ())[idx]
    g = table([z.padded(count).reshape(z.c.size, count) for z in a], (count,))[idx] \
        if count else np.zeros(idx.shape + (0,))
    return Zono(c.reshape(shape), g.reshape(shape + (count,)), r.reshape(shape))


@dataclass(frozen=True)
class Step:
    """One node's step: its argument zonotopes (none missing), attributes, output shape,
    the arguments' enclosures, the graph's symbols, the symbol count of the widest
    argument, and for structural ops the index map described in `_structural`."""

    args: list[Zono]
    attrs: dict[str, Any]
    shape: tuple[int, ...]
    hulls: list[tuple[Arr, Arr]]
    syms: Symbols
    count: int
    gather: np.ndarray[Any, np.dtype[np.int64]] | None
    product: Arr | None = None


ZonoRule = Callable[[Step], "Zono | None"]
RULES: RuleTable[ZonoRule] = RuleTable("zonotope")
"""Each op's linear rule, or `_interval` where the node starts afresh from its interval."""


def _interval(s: Step) -> Zono | None:
    return None  # the caller starts afresh from the node's interval: sound for any op


def _moved(s: Step) -> Zono | None:
    assert s.gather is not None, "a structural op needs its gather index"
    return _structural(s.gather, s.args, s.shape, s.count)


def _reduce_sum(s: Step) -> Zono | None:
    return _sum(s.args[0], tuple(s.attrs["axes"]), bool(s.attrs["keepdims"]), s.shape, s.count)


RULES.rule("transpose", "reshape", "broadcast_to", "concat", "slice", "unslice")(_moved)
RULES.add("add", lambda s: _add(s.args[0], s.args[1], 1.0, s.shape, s.count))
RULES.add("sub", lambda s: _add(s.args[0], s.args[1], -1.0, s.shape, s.count))
RULES.add("neg", lambda s: Zono(-s.args[0].c, -s.args[0].g, s.args[0].r))
RULES.add("mul", lambda s: _mul(s.args[0], s.args[1], s.shape, s.count))
RULES.add("square", lambda s: _mul(s.args[0], s.args[0], s.shape, s.count))
RULES.add("matmul", lambda s: _matmul(s.args[0], s.args[1], s.shape, s.count, s.product))
RULES.add("sum", _reduce_sum)
RULES.add("relu", lambda s: _relu(s.args[0], *s.hulls[0], s.syms, s.shape))
RULES.rule(
    "div", "abs", "sqrt", "exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus",
    "erf", "gelu", "silu", "sin", "cos", "leaky_relu", "maximum", "minimum", "mean", "max",
    "softmax", "log_softmax", "step", "greater", "where", "argmax_mask", "one_hot",
)(_interval)


def step(op: str, args: list[Zono | None], attrs: dict[str, Any], shape: tuple[int, ...],
         arg_hulls: list[tuple[Arr, Arr]], syms: Symbols,
         gather: np.ndarray[Any, np.dtype[np.int64]] | None,
         product: Arr | None = None) -> Zono | None:
    """The node's zonotope from its arguments', or None where no linear rule applies (the
    caller then starts afresh from the node's interval). `gather` is, for structural ops,
    the index map described in `_structural`; `product`, for a matmul X @ W, its
    generators where already computed (`matmul_partial_sums_and_product`)."""
    rule = RULES.get(op)
    if any(a is None for a in args):
        return None
    zs = [a for a in args if a is not None]
    count = max(z.g.shape[-1] for z in zs)  # points carry no symbols at all
    if not _fits(shape, count):
        return None
    return rule(Step(zs, attrs, shape, arg_hulls, syms, count, gather, product))


def _cumsum_rows(a: Arr) -> Arr:
    """np.cumsum(a, axis=0) in place, bit for bit (each column is the same sequential
    sum); for wide rows one vector addition per row, which NumPy's strided accumulate
    along axis 0 is several times slower than."""
    if a.ndim != 2 or a.shape[1] < 32:
        return np.cumsum(a, axis=0, out=a)
    for k in range(1, a.shape[0]):
        np.add(a[k - 1], a[k], out=a[k])
    return a


BLOCK = 8  # rows per exact partial sum of the shared symbols (between: a triangle bound)
TILE = 64  # output columns per pass: the running sums (TILE x S) stay in the L2 cache


def _shared_partial_sums(gs: Arr, w: Arr, total: Arr | None = None) -> Arr:
    """[K, N]: bounds of sum_s |sum_{i<=k} w[i, n] gs[i, s]|, exact (up to binary64
    rounding, bounded by the caller) every BLOCK rows; in between, the nearer block
    end's value plus the magnitudes of the rows that separate them. `total` [N, S], if
    given, receives the full sums sum_i w[i, n] gs[i, s] (each a K-term dot product
    evaluated in some order: rank-BLOCK products added in turn)."""
    kdim, ndim = w.shape
    rowmag = np.abs(w) * np.sum(np.abs(gs), axis=1)[:, None]  # |w_i| sum_s |g_is|
    starts = range(0, kdim, BLOCK)
    ends = np.empty((len(starts), ndim))  # sum_s |P| at each block's last row
    # TILE output columns at a time (each column's sums are the same either way): the
    # running sums and the product buffer stay in cache across the blocks
    for n0 in range(0, ndim, TILE):
        n1 = min(ndim, n0 + TILE)
        acc = np.zeros((n1 - n0, gs.shape[1]))
        buf = np.empty_like(acc)  # (reused: large temporaries cost page faults)
        for b, k0 in enumerate(starts):
            k1 = min(k0 + BLOCK, kdim)
            acc += np.matmul(w[k0:k1, n0:n1].T, gs[k0:k1], out=buf)
            if total is not None and k1 == kdim:
                total[n0:n1] = acc
            # sum_s |P_(k1 - 1)| (np.sum's reduction, written in place)
            np.add.reduce(np.abs(acc, out=buf), axis=1, out=ends[b, n0:n1])
    if kdim % BLOCK == 0:  # every block at once (each the same sums as alone)
        rows3 = rowmag.reshape(-1, BLOCK, ndim)
        run = np.cumsum(rows3, axis=1)
        before3 = np.concatenate([np.zeros((1, ndim)), ends[:-1]])[:, None, :]
        # P_k = P_(k1-1) - sum_{k<i<k1} w_i g_i
        from_end = ends[:, None, :] + (np.sum(rows3, axis=1)[:, None, :] - run)
        nearer: Arr = np.minimum(before3 + run, from_end)
        return nearer.reshape(kdim, ndim)
    out = np.empty((kdim, ndim))
    before = np.zeros(ndim)  # sum_s |P| at the end of the previous block
    for b, k0 in enumerate(starts):
        k1 = min(k0 + BLOCK, kdim)
        rows = rowmag[k0:k1]
        from_start = before + np.cumsum(rows, axis=0)
        # P_k = P_(k1-1) - sum_{k<i<k1} w_i g_i
        from_end = ends[b] + (np.sum(rows, axis=0) - np.cumsum(rows, axis=0))
        out[k0:k1] = np.minimum(from_start, from_end)
        before = ends[b]
    return out


def matmul_partial_sums(x: Zono, w: Arr) -> Arr:
    """Upper bounds of |sum_{i<=k} x_i w_i,n| for x @ w with x 1- or 2-D ([..., K]) and w an
    exact [K, N] matrix: shape x.shape[:-1] + (N, K), the layout of the rounding pass's
    matmul terms. Symbols used by one row i only (the input box, relaxed units) are
    summed in magnitude at once; the shared ones are accumulated row by row."""
    return matmul_partial_sums_and_product(x, w, False)[0]


def matmul_partial_sums_and_product(x: Zono, w: Arr,
                                    with_product: bool = True) -> tuple[Arr, Arr | None]:
    """`matmul_partial_sums`, and with `with_product` the generators of x @ w
    ([..., N, S], sum_k g[..., k, s] w[k, n]) that its row-by-row accumulation of the
    shared symbols ends with, so `_matmul` need not multiply them again: each entry a
    K-term dot product in some order (within `_matmul`'s gamma_(K+2) slack, as BLAS's
    own), and for a symbol of one row its one product, as exact as the matmul's."""
    c2 = x.c.reshape(-1, x.c.shape[-1])
    g3 = x.g.reshape(c2.shape + (x.g.shape[-1],))
    r2 = x.r.reshape(c2.shape)
    kdim, ndim = w.shape
    absw = np.abs(w)
    out = np.empty((c2.shape[0], ndim, kdim))
    prod = np.empty((c2.shape[0], ndim, g3.shape[-1])) if with_product else None
    for m in range(c2.shape[0]):
        g = g3[m]
        shared = np.count_nonzero(g, axis=0) > 1
        sum_g = x.sumabs().reshape(c2.shape)[m]  # (the same rows' sums)
        own = _sumabs(g[:, ~shared]) if shared.any() else sum_g  # [K]
        # the three running sums down the rows side by side, [K, 3N]: c w, |w| (own + r)
        # and |w| (|c| + sum |g| + r) (each column the same sequential sum as alone; in
        # place: large temporaries cost more than the arithmetic)
        runs = np.empty((kdim, 3, ndim))
        np.multiply(c2[m][:, None], w, out=runs[:, 0])
        np.multiply(absw, _up(own + r2[m])[:, None], out=runs[:, 1])
        np.multiply(absw, _up(np.abs(c2[m]) + sum_g + r2[m])[:, None], out=runs[:, 2])
        _cumsum_rows(runs.reshape(kdim, 3 * ndim))
        mag = np.abs(runs[:, 0])  # |c partial sums|, [K, N]
        mag += runs[:, 1]
        cols = np.flatnonzero(shared)
        # a run of columns (the input box's symbols come first, say): a view, no copy
        pick: slice | np.ndarray[Any, np.dtype[np.bool_]] = shared
        if cols.size and int(cols[-1]) - int(cols[0]) + 1 == cols.size:
            pick = slice(int(cols[0]), int(cols[-1]) + 1)
        gs = g[:, pick]
        total = np.empty((ndim, gs.shape[1])) if prod is not None else None
        if gs.shape[1]:
            mag += _shared_partial_sums(gs, w, total)
        if prod is not None and total is not None:
            prod[m][:, pick] = total
            gown = g[:, ~shared]  # at most one nonzero row per symbol: that product
            row = np.argmax(gown != 0, axis=0)
            prod[m][:, ~shared] = np.multiply(w[row].T, gown[row, np.arange(row.size)],
                                              order="C")
        # every figure above is a binary64 evaluation of at most K + S + 2 operations per
        # entry on |c| |w|, |G| |w| and r |w| terms: bounded by gamma of that count times
        # their cumulative magnitude (Higham 3.1), plus underflows
        steps = kdim + g.shape[1] + 2
        slack = runs[:, 2]  # absin
        slack *= _gamma64(steps) * 4.0
        slack += steps * kdim * TINY64
        mag *= 1.0 + 2.0 * _gamma64(steps)
        # (magnitudes and their slack, >= +0: up steps the bits in place)
        out[m] = up_nonneg_inplace(up_nonneg_inplace(mag) + up_nonneg_inplace(slack)).T
    return (out.reshape(x.c.shape[:-1] + (ndim, kdim)),
            None if prod is None else prod.reshape(x.c.shape[:-1] + (ndim, g3.shape[-1])))
