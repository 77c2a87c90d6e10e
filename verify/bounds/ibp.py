"""Interval bound propagation: one rule per op (the table named "ibp") mapping enclosures
of the operands to an enclosure of the result, over the reals, with outward rounding
(every rounded result stepped outward, or widened by a stated error bound)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...spec.errors import ShapeError, UnsupportedOperation
from ...spec.fields import float64
from ...spec.ops.registry import get_op
from ...spec.ops.rules import RuleTable
from ..outward import (
    TINY_NORMAL,
    U64,
    dn,
    gamma64,
    magnitude,
    mul_dn,
    mul_up,
    next_down,
    next_up,
    up,
)
from .functions import SMOOTH, ULPS, enclose, gelu_enclosure, silu_enclosure, widen
from .ibp_plan import Fusion, plan_fusions, use_counts
from .problem import LEAVES, Array, describe, leaf_value

__all__ = ["IBP", "ibp_nodes", "Interval"]

Interval = tuple[Array, Array]
IbpRule = Callable[[Any, list[Interval]], Interval]
IBP: RuleTable[IbpRule] = RuleTable("ibp")


def ibp_nodes(g: Graph, params: Mapping[str, Any], lo: Array, hi: Array, *,
              only: int | None = None) -> list[Any]:
    """Interval bounds (lo, hi) for every node of `g` over the input box [lo, hi].

    With `only` (a node id) just that node's interval is sure to be in the list: the
    others are dropped once used (less memory), and a layer's matmul and bias add, or an
    average pool's windows and their sum, are bounded in one step (`ibp_plan`)."""
    IBP.check_ops(g.nodes, skip=LEAVES, describe=lambda n: g.describe(g.nodes[n.id]))
    out: list[Any] = [None] * len(g.nodes)
    fusions = plan_fusions(g, only) if only is not None else {}
    inner = {k for f in fusions.values() for k in f.inner}
    uses = use_counts(g)
    left = list(uses)
    fresh: set[int] = set()  # nodes whose arrays nothing else refers to

    def done(k: int) -> None:
        for a in g.nodes[k].args:
            left[a] -= 1
            if only is not None and left[a] == 0 and a != only:
                out[a] = None

    for n in g.nodes:
        if n.id in inner:
            continue
        if n.op == "input":
            if lo.shape != n.shape or hi.shape != n.shape:
                raise ShapeError(f"input box has shape {lo.shape}/{hi.shape}, graph input "
                                 f"{n.name!r} has {n.shape}")
            out[n.id] = (lo, hi)
            continue
        if n.is_leaf or n.is_constant:
            out[n.id] = leaf_value(n, params)
            continue
        fusion = fusions.get(n.id)
        got = None if fusion is None else _fused(g, n, fusion, out)
        if got is not None:
            fresh.add(n.id)
        else:
            for k in () if fusion is None else fusion.inner:  # bounded node by node
                out[k] = IBP.rules[g.nodes[k].op](g.nodes[k], [out[a] for a in g.nodes[k].args])
        if fusion is not None:
            for k in fusion.inner:
                done(k)
        if got is None:
            arg = n.args[0] if n.args else -1
            if n.op == "relu" and arg in fresh and uses[arg] == 1 and arg != only:
                # the operand's arrays are this node's alone (no view of them elsewhere):
                # clipped in place
                a_lo, a_hi = out[arg]
                got = np.maximum(a_lo, 0.0, out=a_lo), np.maximum(a_hi, 0.0, out=a_hi)
            else:
                got = IBP.rules[n.op](n, [out[a] for a in n.args])
        out[n.id] = got
        done(n.id)
    return out


def _fused(g: Graph, n: Any, fusion: Fusion, out: list[Any]) -> Interval | None:
    """Node `n` bounded together with its fusion's inner nodes, or None where the values
    do not fit (an operand that is not a constant)."""
    if fusion.kind == "pool":
        parts = [out[a] for a in g.nodes[fusion.inner[0]].args]
        return _pool_sum(n, parts, int(g.nodes[fusion.inner[0]].attr("axis")))
    m = next(g.nodes[k] for k in fusion.inner if g.nodes[k].op == "matmul")
    b = out[fusion.other]
    if not _point(b):
        return None
    ops: list[Interval | RowSource] = []
    for a in m.args:
        got = _rows_source(g, fusion.rows_from, out) if a == fusion.rows_from else out[a]
        if got is None:
            return None
        ops.append(got)
    x, w = ops

    def point(v: Interval | RowSource) -> bool:
        return not isinstance(v, RowSource) and _point(v)

    def rank(v: Interval | RowSource) -> int:
        return len(v.shape) if isinstance(v, RowSource) else int(np.ndim(v[0]))

    if point(w) and rank(w) == 2 and rank(x) >= 1 and not isinstance(w, RowSource):
        xin, c, left = x, np.asarray(w[0]), False
    elif point(x) and rank(x) >= 2 and rank(w) >= 2 and not isinstance(x, RowSource):
        xin, c, left = w, np.asarray(x[0]), True
    else:
        return None
    x_shape = xin.shape if isinstance(xin, RowSource) else tuple(np.shape(xin[0]))
    if left:
        made = np.broadcast_shapes(c.shape[:-2], x_shape[:-2]) + (c.shape[-2], x_shape[-1])
    else:
        made = x_shape[:-1] + (c.shape[1],)
    inner_shape = tuple(g.nodes[fusion.inner[-1]].shape)
    if made != tuple(m.shape) or inner_shape != tuple(n.shape) or \
            np.broadcast_shapes(inner_shape, np.shape(b[0])) != inner_shape:
        return None
    return _matmul_const(xin, c, left, bias=b[0], shape=inner_shape)


def _rows_source(g: Graph, node: int, out: list[Any]) -> RowSource | None:
    """The interval of `node` (a concat along a non-leading axis, or a reshape of one
    keeping the leading axis) made from the concat's operands a block of rows at a time;
    None where an operand's arrays do not have its node's shape."""
    src = g.nodes[node]
    cat = src if src.op == "concat" else g.nodes[src.args[0]]
    axis = int(cat.attr("axis")) % len(cat.shape)
    parts = [out[a] for a in cat.args]
    for a, p in zip(cat.args, parts, strict=True):
        want = tuple(g.nodes[a].shape)
        if p is None or np.shape(p[0]) != want or np.shape(p[1]) != want:
            return None
    shape = tuple(src.shape)

    def rows(s: slice) -> Interval:
        lo = np.concatenate([p[0][s] for p in parts], axis=axis)
        hi = np.concatenate([p[1][s] for p in parts], axis=axis)
        block = (lo.shape[0],) + shape[1:]
        return lo.reshape(block), hi.reshape(block)
    return RowSource(shape, rows)


def _pool_sum(n: Any, parts: list[Interval], axis: int) -> Interval:
    """sum / mean over `axis` of the concat of `parts` (each one wide on it), from the
    parts: the float sum in any order is off by <= gamma_cnt sum |x| (Higham eq. 3.5)."""
    sl, sh = parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    for p_lo, p_hi in parts[2:]:
        sl += p_lo
        sh += p_hi
    if not n.attr("keepdims"):
        sl, sh = np.squeeze(sl, axis=axis), np.squeeze(sh, axis=axis)
    nonneg = all(bool(np.min(p_lo) >= 0) for p_lo, _ in parts if p_lo.size)
    if nonneg:
        msum = sh
    else:
        msum = magnitude(*parts[0])
        for p in parts[1:]:
            msum = msum + magnitude(*p)
        if not n.attr("keepdims"):
            msum = np.squeeze(msum, axis=axis)
    return _finish_sum(n.op, sl, sh, msum, len(parts))


def _point(x: Interval) -> bool:
    lo, hi = x
    if lo is hi:
        return True
    if np.shape(lo) != np.shape(hi) or (np.size(lo) and np.asarray(lo).flat[0] !=
                                         np.asarray(hi).flat[0]):
        return False  # the usual answer for a wide interval, without a pass over it
    return bool(np.array_equal(lo, hi))


def _exact_forward(n: Any, xs: list[Interval]) -> Array:
    """The op applied to point operands in binary64, for ops whose result is exact
    (selections, comparisons, one_hot)."""
    op = get_op(n.op)
    return np.asarray(op.forward(float64, tuple(x[0] for x in xs), n.attr_dict),
                      dtype=np.float64)


# -- structural ---------------------------------------------------------------------
@IBP.rule("reshape", "transpose", "broadcast_to", "slice", "unslice")
def _structural(n: Any, xs: list[Interval]) -> Interval:
    op, at = n.op, n.attr_dict
    (al, ah) = xs[0]

    def f(a: Array) -> Array:
        if op == "reshape":
            return np.reshape(a, at["shape"])
        if op == "transpose":
            return np.transpose(a, at["axes"])
        if op == "broadcast_to":
            return np.broadcast_to(a, at["shape"])
        sl = tuple(slice(s, e, k) for s, e, k in at["spec"])
        if op == "slice":
            return a[sl]
        z = np.zeros(tuple(at["shape"]))
        z[sl] = a
        return z
    return f(al), f(ah)


@IBP.rule("concat")
def _concat(n: Any, xs: list[Interval]) -> Interval:
    ax = int(n.attr("axis"))
    return (np.concatenate([x[0] for x in xs], axis=ax),
            np.concatenate([x[1] for x in xs], axis=ax))


# -- arithmetic ---------------------------------------------------------------------
@IBP.rule("neg")
def _neg(n: Any, xs: list[Interval]) -> Interval:
    return -xs[0][1], -xs[0][0]


@IBP.rule("add", "sub")
def _add_sub(n: Any, xs: list[Interval]) -> Interval:
    (al, ah), (bl, bh) = xs
    if n.op == "sub":
        bl, bh = -bh, -bl
    if _point(xs[1]) and _point(xs[0]):
        # two constants: keep an exact sum a point (Knuth's TwoSum: zero error term)
        s = al + bl
        t = s - al
        exact = (al - (s - t)) + (bl - t) == 0
        if np.all(exact & np.isfinite(s)):
            return s, s
    return next_down(al + bl), next_up(ah + bh)  # np.nextafter, bit for bit, faster


def _products(al: Array, ah: Array, bl: Array, bh: Array) -> Interval:
    cands_lo = [mul_dn(p, q) for p in (al, ah) for q in (bl, bh)]
    cands_hi = [mul_up(p, q) for p in (al, ah) for q in (bl, bh)]
    return np.minimum.reduce(cands_lo), np.maximum.reduce(cands_hi)


@IBP.rule("mul", "div")
def _mul_div(n: Any, xs: list[Interval]) -> Interval:
    (al, ah), (bl, bh) = xs
    if n.op == "div":
        if np.any((bl <= 0) & (bh >= 0)):
            raise UnsupportedOperation("div", "float", f"{describe(n)}: divisor may be 0",
                                       analysis="ibp")
        bl, bh = dn(1.0 / bh), up(1.0 / bl)
    return _products(al, ah, bl, bh)


@IBP.rule("square")
def _square(n: Any, xs: list[Interval]) -> Interval:
    lo, hi = xs[0]
    a_lo, a_hi = _abs_interval(lo, hi)
    return mul_dn(a_lo, a_lo), mul_up(a_hi, a_hi)


def _abs_interval(lo: Array, hi: Array) -> Interval:
    low = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0))
    return low, magnitude(lo, hi)


@IBP.rule("abs")
def _abs(n: Any, xs: list[Interval]) -> Interval:
    return _abs_interval(*xs[0])


@dataclass(frozen=True)
class RowSource:
    """An interval operand of `shape` given a block of leading rows at a time (rows(s)
    is the interval of operand[s], for a slice s of the leading axis, or slice(None)):
    a product need not hold all of an operand it reads row by row."""

    shape: tuple[int, ...]
    rows: Callable[[slice], Interval]

    @staticmethod
    def of(x: Interval) -> RowSource:
        """The source of an interval held whole."""
        xl, xh = x
        return RowSource(tuple(np.shape(xl)), lambda s: (xl[s], xh[s]))


def _matmul_const(x: Interval | RowSource, c: Array, left: bool, bias: Array | None = None,
                  shape: tuple[int, ...] | None = None) -> Interval:
    """[x] @ C (left=False, C of shape (k, n)) or C @ [x] (left=True, C of shape
    (..., m, k) broadcasting against x's (..., k, n)) for a constant C, by midpoint and
    radius, with one stated error term instead of a step outward per entry; the product
    reshaped to `shape` and the constant `bias` added, when given.

    No elementwise outward rounding of the (often large) input: its rounding is folded
    into the scalar factors below and only the output is widened. With mid = fl((l+h)/2)
    and rad = fl((h-l)/2): the exact max(h - mid, mid - l) <= rad(1+2u) + 2u|mid| + 2T
    (T = 2^-1074 per halving). So over the box, x@C lies in mid@C +- E with
      E <= (rad@|C|)(1+2u) + 2u |mid|@|C| + 2T colsum|C|,
    fl(mid@C) is off by <= g ||mid_row||_1 max_k|C_k.| (+ k tiny), exact rad@|C| <=
    fl(rad@|C|)(1+g) (+ k tiny), g = gamma_k (Higham, Accuracy and Stability of Numerical
    Algorithms, 2002, eq. 3.5: any summation order, blocking or fused multiply-add). The
    spread is formed from nonnegative terms in <= 4 roundings: 8u more on each factor
    covers them. C @ [x] is the transpose of the same argument (norms along the other
    axis). The bias add y' = fl(y + b) is off by <= u|y'| (exact when y' is subnormal):
    the final widening below takes 6u instead of 4u of |y'| to cover it too.

    Memory: only the two output arrays are of the output's size. The input's midpoint and
    radius are formed for a block of leading rows at a time (each output row depends on
    its input row alone), and |C| of a (k, n) C a block of columns at a time; every
    entry's arithmetic is the same as in one piece."""
    if not isinstance(x, RowSource):
        x = RowSource.of(x)
    k = c.shape[-1] if left else c.shape[0]
    g = gamma64(k)
    f_rad = (1.0 + g) * (1.0 + 2 * U64) + 8 * U64
    f_mid = g + 2 * U64 + 8 * U64
    if left:
        made = np.broadcast_shapes(c.shape[:-2], x.shape[:-2]) + (c.shape[-2], x.shape[-1])
    else:
        made = x.shape[:-1] + (c.shape[1],)
    final = made if shape is None else tuple(shape)
    yc, spread = np.empty(made), np.empty(made)
    ac, cmax, col_step = _abs_const(c, left)
    tiny = (k + 1) * 2 * TINY_NORMAL * (1.0 + cmax)         # colsum|C| <= k max|C|
    bias_full = None if bias is None else np.broadcast_to(bias, final)
    widen_by = 4 * U64 if bias is None else 6 * U64
    scratch: Array | None = None  # one block's temporary, reused
    for rows in _row_blocks(x.shape, made, final, c if left else None):
        bl, bh = x.rows(rows)
        buf = np.add(bl, bh)  # mid, then |mid|, then rad
        buf *= 0.5
        ys, ss = yc[rows], spread[rows]
        if left:
            np.matmul(c, buf, out=ys)
        else:
            np.matmul(buf, c, out=ys)
        np.abs(buf, out=buf)
        msum = buf.sum(axis=-2 if left else -1, keepdims=True)   # (..., 1, n) / (..., 1)
        msum *= f_mid
        np.subtract(bh, bl, out=buf)
        buf *= 0.5
        if left and ac is not None:  # (always formed for C @ [x])
            np.matmul(ac, buf, out=ss)
        elif ac is not None:
            np.matmul(buf, ac, out=ss)
        else:
            for c0 in range(0, c.shape[1], col_step):
                c1 = min(c0 + col_step, c.shape[1])
                ss[..., c0:c1] = buf @ np.abs(c[:, c0:c1])
        del buf
        if scratch is None:
            scratch = np.empty(ys.shape)  # the first block is the largest
        tmp = np.multiply(msum, cmax, out=scratch[: ys.shape[0]] if ys.ndim else scratch)
        ss *= f_rad
        ss += tmp
        ss += tiny
        # reshaped to the final shape: fresh contiguous blocks of rows, so views
        block = final if rows == slice(None) else (ss.shape[0],) + final[1:]
        ys, ss, tmp = ys.reshape(block), ss.reshape(block), tmp.reshape(block)
        if bias_full is not None:
            ys += bias_full[rows]
        # The final yc -+ spread rounds by <= u(|yc| + spread) (+ 2^-1075): widening
        # spread by 4u(|yc| + spread) + 2^-1021 covers that and its own roundings, ten
        # times cheaper than np.nextafter. An overflow gives inf - inf = nan, read as
        # unbounded. The low ends go into spread's buffer, the high ones into yc's.
        np.abs(ys, out=tmp)
        tmp += ss
        tmp *= widen_by
        ss += tmp
        ss += TINY_NORMAL
        np.subtract(ys, ss, out=tmp)
        ys += ss
        ss[...] = tmp
    low, high = spread.reshape(final), yc.reshape(final)
    if not (np.isfinite(np.sum(low)) and np.isfinite(np.sum(high))):
        low, high = np.where(np.isnan(low), -np.inf, low), np.where(np.isnan(high), np.inf, high)
    return low, high


_BLOCK = 1 << 16  # output entries per block of rows: its temporaries stay in cache
_IN_BLOCK = 1 << 14  # input entries per block of rows (the midpoint and radius)
_COL_BLOCK = 1 << 14  # entries of |C| formed at once


def _abs_const(c: Array, left: bool) -> tuple[Array | None, Array, int]:
    """|C| (None for a (k, n) C too large to form at once: then the columns of width the
    returned step, one block at a time) and max |C| along the contracted axis, shaped to
    broadcast against the product: (..., m, 1) for C @ [x], (n,) for [x] @ C."""
    if left:
        ac = np.abs(c)
        return ac, ac.max(axis=-1, keepdims=True), c.shape[-2]
    k, n = c.shape
    if k * n <= _COL_BLOCK:
        ac = np.abs(c)
        return ac, ac.max(axis=0), n
    step = max(1, _COL_BLOCK // max(k, 1))
    cmax = np.empty(n)
    for c0 in range(0, n, step):
        cmax[c0:c0 + step] = np.abs(c[:, c0:c0 + step]).max(axis=0)
    return None, cmax, step


def _row_blocks(x_shape: tuple[int, ...], made: tuple[int, ...], final: tuple[int, ...],
                c_left: Array | None) -> Iterator[slice]:
    """Slices of the leading axis that split the product by rows (each of about _BLOCK
    output and _IN_BLOCK input entries), or one slice(None) where the leading axis is not
    one shared row axis of the input, the product and its final shape."""
    rank = len(made)
    c_ok = c_left is None or c_left.ndim < rank or c_left.shape[0] == 1
    if (len(x_shape) < (3 if c_left is not None else 2) or len(x_shape) != rank or not c_ok
            or made[0] != x_shape[0] or final[0] != made[0] or made[0] < 2):
        yield slice(None)
        return
    out_row = max(int(np.prod(made[1:])), 1)
    in_row = max(int(np.prod(x_shape[1:])), 1)
    step = max(1, min(_BLOCK // out_row, _IN_BLOCK // in_row))
    if step >= made[0]:
        yield slice(None)
        return
    for i in range(0, made[0], step):
        yield slice(i, min(i + step, made[0]))


def _matmul_general(a: Interval, b: Interval) -> Interval:
    """[a] @ [b] for any operand shapes (either may be a point), by midpoint and radius:
    a b lies in ma mb +- (|ma| rb + ra |mb| + ra rb) with ma, ra enclosing the centre and
    radius exactly after widening; fl(ma @ mb) is off by <= gamma_k |ma| @ |mb| (Higham
    eq. 3.5, plus k * 2^-1021 for subnormals), and the nonnegative radius product is
    rounded up by the factor (1 + gamma_k) the same way."""
    (al, ah), (bl, bh) = a, b
    ma, mb = 0.5 * (al + ah), 0.5 * (bl + bh)
    # exact radii around the rounded centres, rounded up
    ra = np.maximum(up(ah - ma), up(ma - al))
    rb = np.maximum(up(bh - mb), up(mb - bl))
    k = al.shape[-1]
    g = gamma64(k)
    c = ma @ mb
    absa, absb = np.abs(ma), np.abs(mb)
    spread = absa @ rb + ra @ (absb + rb) + absa @ absb * g
    spread = up(spread * (1.0 + g) + (k + 1) * 2 * TINY_NORMAL)
    with np.errstate(invalid="ignore"):
        low, high = dn(c - spread), up(c + spread)
    return np.where(np.isnan(low), -np.inf, low), np.where(np.isnan(high), np.inf, high)


@IBP.rule("matmul")
def _matmul(n: Any, xs: list[Interval]) -> Interval:
    x, w = xs
    if _point(w) and w[0].ndim == 2 and x[0].ndim >= 1:
        return _matmul_const(x, w[0], left=False)
    if _point(x) and x[0].ndim >= 2 and w[0].ndim >= 2:  # a conv in im2col form: W @ [cols]
        lo, hi = _matmul_const(w, x[0], left=True)
        if lo.shape == tuple(n.shape):
            return lo, hi
    return _matmul_general(x, w)


# -- elementwise functions ------------------------------------------------------------
@IBP.rule("relu")
def _relu(n: Any, xs: list[Interval]) -> Interval:
    lo, hi = xs[0]
    return np.maximum(lo, 0.0), np.maximum(hi, 0.0)


@IBP.rule("leaky_relu")
def _leaky(n: Any, xs: list[Interval]) -> Interval:
    lo, hi = xs[0]
    s = float(n.attr("negative_slope"))
    if s < 0:
        raise UnsupportedOperation("leaky_relu", "float", f"{describe(n)}: negative slope "
                                   f"{s} makes it non-monotone", analysis="ibp")
    return np.where(lo >= 0, lo, mul_dn(s, lo)), np.where(hi >= 0, hi, mul_up(s, hi))


_DOMAIN = {"log": (0.0, False), "log1p": (-1.0, False), "sqrt": (0.0, True)}


def _monotone_rule(tag: str) -> IbpRule:
    f = SMOOTH[tag]

    def rule(n: Any, xs: list[Interval]) -> Interval:
        lo, hi = xs[0]
        if tag in _DOMAIN:
            edge, closed = _DOMAIN[tag]
            bad = lo < edge if closed else lo <= edge
            if np.any(bad):
                raise UnsupportedOperation(tag, "float", f"{describe(n)}: the input interval "
                                           f"reaches {float(np.min(lo))}, outside the domain",
                                           analysis="ibp")
        return enclose(f, lo)[0], enclose(f, hi)[1]
    return rule


for _tag in ("tanh", "sigmoid", "erf", "exp", "softplus", "expm1", "log", "log1p", "sqrt"):
    IBP.add(_tag, _monotone_rule(_tag))

# one interior minimum (at x*, inside the bracket) with the value bounded below by m:
# lower-rounded 8-digit values of the mpmath minima, -0.16997120747990366 and
# -0.27846454276107379 at -0.75179152469356446 and -1.2784645427610738
_VALLEY = {"gelu": (-0.7518, -0.7517, -0.16997121, gelu_enclosure),
           "silu": (-1.2785, -1.2784, -0.27846455, silu_enclosure)}


def _valley_rule(tag: str) -> IbpRule:
    x_lo, x_hi, m, enc = _VALLEY[tag]

    def rule(n: Any, xs: list[Interval]) -> Interval:
        lo, hi = xs[0]
        l_lo, l_hi = enc(lo)
        h_lo, h_hi = enc(hi)
        low = np.minimum(l_lo, h_lo)
        low = np.where((lo <= x_hi) & (hi >= x_lo), np.minimum(low, m), low)
        return low, np.maximum(l_hi, h_hi)
    return rule


IBP.add("gelu", _valley_rule("gelu"))
IBP.add("silu", _valley_rule("silu"))


def _periodic_rule(tag: str) -> IbpRule:
    fn = np.sin if tag == "sin" else np.cos
    shift = 0.5 if tag == "sin" else 0.0  # the first maximum sits at shift * pi

    def rule(n: Any, xs: list[Interval]) -> Interval:
        lo, hi = xs[0]
        with np.errstate(invalid="ignore"):
            v_lo, v_hi = fn(lo), fn(hi)
        a_lo, a_hi = widen(v_lo, ULPS)
        b_lo, b_hi = widen(v_hi, ULPS)
        low, high = np.minimum(a_lo, b_lo), np.maximum(a_hi, b_hi)
        # a maximum of sin sits at pi/2 + 2 pi k, of cos at 2 pi k; a minimum half a period
        # on. The test uses a generous margin (1e-9 in units of the period), so an extremum
        # near an end counts as inside: looser, never unsound.
        two_pi = 2.0 * math.pi
        eps = 1e-9
        for peak, val in ((shift * math.pi, 1.0), (shift * math.pi + math.pi, -1.0)):
            k_lo = np.ceil((lo - peak) / two_pi - eps)
            inside = k_lo * two_pi + peak <= hi + eps * two_pi + 1e-9 * np.abs(hi)
            inside |= ((hi - lo) >= two_pi) | (magnitude(lo, hi) > 1e6)
            if val > 0:
                high = np.where(inside, 1.0, high)
            else:
                low = np.where(inside, -1.0, low)
        return np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)
    return rule


IBP.add("sin", _periodic_rule("sin"))
IBP.add("cos", _periodic_rule("cos"))


@IBP.rule("maximum", "minimum")
def _max_min(n: Any, xs: list[Interval]) -> Interval:
    (al, ah), (bl, bh) = xs
    f = np.maximum if n.op == "maximum" else np.minimum
    return f(al, bl), f(ah, bh)


# -- piecewise constant -------------------------------------------------------------
@IBP.rule("step")
def _step(n: Any, xs: list[Interval]) -> Interval:
    lo, hi = xs[0]
    return (lo > 0).astype(np.float64), (hi > 0).astype(np.float64)


@IBP.rule("greater")
def _greater(n: Any, xs: list[Interval]) -> Interval:
    (al, ah), (bl, bh) = xs
    return (al > bh).astype(np.float64), (ah > bl).astype(np.float64)


@IBP.rule("where")
def _where(n: Any, xs: list[Interval]) -> Interval:
    (cl, ch), (al, ah), (bl, bh) = xs
    yes = (cl > 0) | (ch < 0)          # surely nonzero
    no = (cl == 0) & (ch == 0)          # surely zero
    low = np.where(yes, al, np.where(no, bl, np.minimum(al, bl)))
    high = np.where(yes, ah, np.where(no, bh, np.maximum(ah, bh)))
    shape = n.shape
    return np.broadcast_to(low, shape), np.broadcast_to(high, shape)


@IBP.rule("argmax_mask")
def _argmax_mask(n: Any, xs: list[Interval]) -> Interval:
    if _point(xs[0]):
        v = _exact_forward(n, xs)
        return v, v
    return np.zeros(n.shape), np.ones(n.shape)


@IBP.rule("one_hot")
def _one_hot(n: Any, xs: list[Interval]) -> Interval:
    if not _point(xs[0]):
        raise UnsupportedOperation("one_hot", "float", f"{describe(n)}: token ids must not "
                                   "depend on the input (fixed tokens only)", analysis="ibp")
    v = _exact_forward(n, xs)
    return v, v


# -- reductions -------------------------------------------------------------------
@IBP.rule("sum", "mean")
def _sum_mean(n: Any, xs: list[Interval]) -> Interval:
    al, ah = xs[0]
    at = n.attr_dict
    axes = at.get("axes")
    keep = bool(at.get("keepdims", False))
    axis = tuple(axes) if axes is not None else None
    sl, sh = np.sum(al, axis=axis, keepdims=keep), np.sum(ah, axis=axis, keepdims=keep)
    cnt = al.size // max(np.size(sl), 1)
    # the sum of max(|lo|, |hi|): for a nonnegative interval (after a relu) that is the sum
    # of hi, already formed (the same numbers summed the same way, so the same bits)
    if al.size and np.min(al) >= 0:
        msum = sh
    elif ah.size and np.max(ah) <= 0:
        msum = -sl
    else:
        msum = np.sum(magnitude(al, ah), axis=axis, keepdims=keep)
    return _finish_sum(n.op, sl, sh, msum, cnt)


def _finish_sum(op: str, sl: Array, sh: Array, msum: Array, cnt: int) -> Interval:
    """The interval of a sum (op "sum") or mean of cnt terms from the float sums of the
    lower and upper ends and of the magnitudes (or any upper bound of that). `sl` and
    `sh` are the caller's fresh arrays: they are overwritten with the result (each
    rounded step then moved one float outward, in place: no array of the output's size
    beyond the error term)."""
    err = gamma64(max(cnt, 1)) * msum
    err += cnt * TINY_NORMAL
    if not (isinstance(sl, np.ndarray) and isinstance(sh, np.ndarray)
            and sl.shape == sh.shape == np.shape(err) and sl.flags.writeable
            and sh.flags.writeable and not np.shares_memory(sl, sh)):
        sl, sh = next_down(sl - err), next_up(sh + err)
        return (sl, sh) if op == "sum" else (next_down(sl / cnt), next_up(sh / cnt))
    sh += err  # err is its own array, even where msum is sh
    sl -= err
    del err
    steps = [(sl, -np.inf), (sh, np.inf)]
    np.nextafter(sl, -np.inf, out=sl)
    np.nextafter(sh, np.inf, out=sh)
    if op != "sum":
        for v, toward in steps:
            v /= cnt
            np.nextafter(v, toward, out=v)
    return sl, sh


@IBP.rule("max")
def _max(n: Any, xs: list[Interval]) -> Interval:
    al, ah = xs[0]
    at = n.attr_dict
    axis = tuple(at["axes"])
    keep = bool(at["keepdims"])
    return np.max(al, axis=axis, keepdims=keep), np.max(ah, axis=axis, keepdims=keep)


def _exp_lo(z: Array) -> Array:
    return enclose(SMOOTH["exp"], z)[0]


def _exp_hi(z: Array) -> Array:
    return enclose(SMOOTH["exp"], z)[1]


@IBP.rule("softmax")
def _softmax(n: Any, xs: list[Interval]) -> Interval:
    axis = int(n.attr("axis"))
    lo, hi = xs[0]
    # softmax_i = 1 / (1 + sum_{j != i} exp(z_j - z_i)): decreasing in z_j, increasing in z_i
    shift = np.max(hi, axis=axis, keepdims=True)
    el, eh = _exp_lo(dn(lo - shift)), _exp_hi(up(hi - shift))
    tot_h = up(np.sum(eh, axis=axis, keepdims=True) * (1 + gamma64(lo.shape[axis])))
    tot_l = dn(np.sum(el, axis=axis, keepdims=True) * (1 - gamma64(lo.shape[axis])))
    low = dn(el / up(tot_h - eh + el))
    high = up(eh / dn(np.maximum(tot_l - el + eh, eh)))
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


@IBP.rule("log_softmax")
def _log_softmax(n: Any, xs: list[Interval]) -> Interval:
    axis = int(n.attr("axis"))
    lo, hi = xs[0]
    cnt = lo.shape[axis]
    log = SMOOTH["log"]
    # log_softmax_i = z_i - log sum_j exp(z_j): the sum over j includes i, so
    # low_i = lo_i - M - log sum_j exp(hi_j - M) (M = max hi) and likewise high_i.
    m_hi = np.max(hi, axis=axis, keepdims=True)
    s_hi = up(np.sum(_exp_hi(up(hi - m_hi)), axis=axis, keepdims=True) * (1 + gamma64(cnt)))
    low = dn(dn(lo - m_hi) - enclose(log, s_hi)[1])
    m_lo = np.max(lo, axis=axis, keepdims=True)
    s_lo = dn(np.sum(_exp_lo(dn(lo - m_lo)), axis=axis, keepdims=True) * (1 - gamma64(cnt)))
    high = up(up(hi - m_lo) - enclose(log, s_lo)[0])
    return low, np.minimum(high, 0.0)
