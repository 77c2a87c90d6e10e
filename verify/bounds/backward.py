"""CROWN's backward pass (Zhang et al. 2018): one rule per op (the table named "crown")
that moves a linear lower bound `spec . v_node >= ...` from an op's result to its
operands, sound over the reals in binary64.

The pass keeps, per batch row and spec row, coefficient arrays over input-dependent nodes
(layout (batch, rows, *node shape without the batch axis)), a constant and a `slack`:
coefficients stay the floats as computed, and each one's rounding error E is charged
E * max|value| (the value's magnitude from its interval) to the slack, subtracted at the
end, so `spec . v >= sum A . v + const - slack` holds over the reals for the float A.

A rule returns False when it cannot carry the coefficient through its op; the pass then
bounds the node's contribution by its interval (from IBP, tightened by CROWN where the
node feeds a relaxation): sound, looser. Ops with no linear relaxation (softmax, max over
axes, sin, cos, comparisons) always take that route; so does a node that mixes
batch rows (see `problem.batched_nodes`), a `where` whose condition depends on the input,
and a matmul of two input-dependent operands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...spec.ops.rules import RuleTable
from ..outward import TINY_NORMAL, U64, dn, gamma64, magnitude, mul_dn, mul_up, sum_up, up
from .problem import Array
from .relaxations import RELAXATION, reciprocal_lines

__all__ = ["CROWN", "Backward", "dot_lower"]

CrownRule = Callable[["Backward", Any, Array], bool]
CROWN: RuleTable[CrownRule] = RuleTable("crown")


def _feat(a: Array, b: Array) -> tuple[Array, int]:
    """`b` as (batch, features) for a (batch, rows, *features), and the feature count."""
    n = int(np.prod(a.shape[2:]))
    bb = np.broadcast_to(b, (a.shape[0],) + a.shape[2:]).reshape(a.shape[0], n)
    return bb, n


def _absdot_up(absa: Array, v: Array) -> Array:
    """An upper bound of the exact sum over features of absa * v (both NONNEGATIVE)."""
    vv, n = _feat(absa, v)
    s = np.einsum("bmn,bn->bm", absa.reshape(absa.shape[:2] + (n,)), vv)
    return up(s * (1.0 + gamma64(max(n, 1))) + n * TINY_NORMAL)


def dot_lower(a: Array, b: Array, absa: Array | None = None) -> Array:
    """A lower bound of the exact sum over the feature axes of a * b.

    a: (batch, rows, *feat); b: broadcastable to (batch, *feat) -> (batch, rows).
    """
    bb, n = _feat(a, b)
    s = np.einsum("bmn,bn->bm", a.reshape(a.shape[:2] + (n,)), bb)
    if absa is None:
        absa = np.abs(a)
    # each product rounds (u|ab|), the sum adds gamma_n sum|ab|: (gamma_n + 2u) sum |a||b|
    err = _absdot_up(absa, np.abs(bb).reshape((a.shape[0],) + a.shape[2:]))
    return dn(s - up(err * (gamma64(max(n, 1)) + 2 * U64)))


def _reduce_axes(full: tuple[int, ...], part: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The axes of `full` to sum so that it takes the (right-aligned) shape `part`, and
    how many terms each sum has."""
    lead = len(full) - len(part)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(part)
                                if d == 1 and full[lead + i] != 1]
    return tuple(axes), int(np.prod([full[i] for i in axes])) if axes else 1


class Backward:
    """Backward CROWN passes over one graph, with per-node intervals `ib` (tightened in
    place by the caller) and the relaxation inputs' intervals `pre`."""

    def __init__(self, g: Graph, dep: list[bool], bat: list[bool], ib: list[Any],
                 pre: dict[int, Any], diff: dict[int, Any]) -> None:
        self.g, self.dep, self.bat, self.ib, self.pre, self.diff = g, dep, bat, ib, pre, diff
        self.coeff: dict[int, Array] = {}
        # per relu node: lower-line slopes in [0, 1] in the coefficient layout (batch,
        # rows, *shape); used on unstable neurons only (set for one `run` by the caller)
        self.relu_slopes: dict[int, Array] = {}
        # per relu node: a term added to the coefficient of its operand z in the final
        # pass, in the coefficient layout: -beta * sign (beta-CROWN's Lagrangian term of
        # a split sign * z >= 0, nonpositive on the subdomain, so the bound stays one)
        self.relu_betas: dict[int, Array] = {}
        # per node: (key of its operand's interval, its relaxation lines, that interval,
        # kept alive so that the key's ids stay unique)
        self.lines: dict[int, tuple[tuple[int, int, int], Any, tuple[Array, Array]]] = {}
        self._abs: tuple[Array, Array] | None = None  # the last |a| computed, with its a
        self._pool: dict[tuple[str, tuple[int, ...]], Array] = {}
        # per node: the coefficient array the slice rule made for it (safe to add into)
        self.sliced: dict[int, Array] = {}
        self._mag: dict[int, tuple[Array, Array, Array]] = {}
        self.const = np.zeros((0, 0))
        self.slack = np.zeros((0, 0))
        # relu nodes whose output coefficient a `run` copies into `recorded` (the first
        # `record_rows` rows), for branching heuristics
        self.record: frozenset[int] = frozenset()
        self.record_rows = 0
        self.recorded: dict[int, Array] = {}

    def run(self, starts: dict[int, Array]) -> Array:
        """Lower bounds over the box of sum over nodes k of starts[k] . v_k: (batch, rows).
        Each start has the layout (batch, rows, *node shape without the batch axis)."""
        first = next(iter(starts.values()))
        self.coeff = dict(starts)
        self.const = np.zeros(first.shape[:2])
        self.slack = np.zeros(first.shape[:2])
        self._abs = None
        self.sliced = {}
        result: Array | None = None
        for n in reversed(self.g.nodes[: max(starts) + 1]):
            a = self.coeff.pop(n.id, None)
            self.sliced.pop(n.id, None)
            if a is None:
                continue
            if n.id in self.record:
                self.recorded[n.id] = np.array(a[:, : self.record_rows])
            if self._abs is not None and self._abs[0] is not a:
                self._abs = None  # only the coefficient at hand's |a| is of use
            if n.op == "input":
                result = self._concretize(n.id, a)
                continue
            if not self.bat[n.id] or not CROWN.rules[n.op](self, n, a):
                self.box(n.id, a)
        lower = dn(self.const - up(self.slack))
        if result is not None:
            lower = dn(lower + result)
        return lower

    # -- moving coefficients -------------------------------------------------------
    def absof(self, a: Array) -> Array:
        """|a|, remembered for the last array asked (a coefficient is charged, then the
        next rule bounds its constant and its matmul error with the same |a|)."""
        if self._abs is None or self._abs[0] is not a:
            self._abs = None
            self._abs = (a, np.abs(a, out=self.scratch("abs", a.shape)))
        return self._abs[1]

    def magnitude_of(self, node: int) -> Array:
        """max |v| over the node's current interval (kept while that interval is)."""
        lo, hi = self.ib[node]
        got = self._mag.get(node)
        if got is None or got[0] is not lo or got[1] is not hi:
            got = (lo, hi, magnitude(lo, hi))
            self._mag[node] = got
        return got[2]

    def scratch(self, tag: str, shape: tuple[int, ...]) -> Array:
        """A float64 array of `shape` to overwrite: the one last handed out under `tag`
        when nothing else refers to it any more (a fresh large array costs a page fault
        per 4 KiB on first touch, more than the arithmetic that fills it)."""
        key = (tag, shape)
        got = self._pool.get(key)
        # references: the pool's, `got`, and getrefcount's argument: no one else's
        if got is None or sys.getrefcount(got) > 3:
            got = np.empty(shape)
            self._pool[key] = got
        return got

    def give(self, node: int, a: Array, err_scale: float) -> None:
        """Add coefficient `a` to `node`; charge err_scale * |a| * mag(node) to slack."""
        if node in self.coeff:
            a = self.coeff[node] + a
            err_scale += U64
        self.coeff[node] = a
        if err_scale:
            self.charge(self.absof(a), node, err_scale)

    def charge(self, absa: Array, node: int, scale: float) -> None:
        """Charge scale * |a| . mag(node) to the slack (|a| in the node's layout)."""
        lo, hi = self.ib[node]
        c = _absdot_up(absa, magnitude(lo, hi))
        self.slack = up(self.slack + up(c * (1.01 * scale) + TINY_NORMAL))

    def add_const(self, lower: Array) -> None:
        """Add a lower bound of a constant term."""
        self.const = dn(self.const + lower)

    def box(self, node: int, a: Array) -> None:
        """Bound a . v_node by the node's interval (pos . lo + neg . hi)."""
        lo, hi = self.ib[node]
        if lo is hi or np.array_equal(lo, hi):
            self.add_const(dot_lower(a, lo))
            return
        pos, neg = np.maximum(a, 0.0), np.minimum(a, 0.0)
        self.add_const(dn(dot_lower(pos, lo, pos) + dot_lower(neg, hi, -neg)))

    def give_broadcast(self, node: int, a: Array, out_shape: tuple[int, ...],
                       err_scale: float) -> None:
        """Give `a` (in the layout of a result of shape `out_shape`) to an operand that
        broadcasts to it, summed over the broadcast axes. A constant, or a node shared by
        all batch rows (broadcast along the batch axis), is bounded by its interval."""
        shape = self.g.nodes[node].shape
        per_row = (self.bat[node] or not self.dep[node]) and len(shape) == len(out_shape) \
            and shape[0] == out_shape[0]
        if per_row and self.dep[node] and shape[1:] == out_shape[1:]:
            self.give(node, a, err_scale)
            return
        target = shape[1:] if len(shape) == len(out_shape) else shape
        axes, k = _reduce_axes(a.shape[2:], target)
        red, absred, scale = a, None, err_scale
        if axes:
            axes2 = tuple(2 + x for x in axes)
            red = np.sum(a, axis=axes2).reshape(a.shape[:2] + tuple(target))
            absred = np.sum(self.absof(a), axis=axes2).reshape(red.shape)
            scale = err_scale * (1.0 + gamma64(k)) + gamma64(k)
        if not per_row:
            red = red.reshape(a.shape[:2] + shape)
            absred = None if absred is None else absred.reshape(red.shape)
        if scale:
            self.charge(np.abs(red) if absred is None else absred, node, scale)
        if per_row and self.dep[node]:
            self.give(node, red, 0.0)
        else:
            self.box(node, red)

    def _concretize(self, node: int, a: Array) -> Array:
        # a.x >= a.mid - |a|.rad for x in [mid - rad, mid + rad]; fl(a.mid) is off by at most
        # (gamma_n + 2u)|a|.|mid|: one pass of |a| against rad(1+g) + |mid|(g+2u), rounded up.
        # gamma_n bounds a float dot product of n terms whatever the order of the sum and
        # whether it uses fused multiply-adds (Higham, eq. (3.5)), so BLAS may compute both
        # products; one batch row at a time keeps |a| small (in cache, no large temporary)
        lo, hi = self.ib[node]
        mid = 0.5 * (lo + hi)
        rad = up(np.maximum(up(hi - mid), up(mid - lo)))
        bb, n = _feat(a, mid)
        g = gamma64(max(n, 1))
        v = up(up(rad * (1.0 + g)) + up(np.abs(mid) * (g + 2 * U64)))
        vv, _ = _feat(a, v)
        a3 = a.reshape(a.shape[:2] + (n,))
        center = np.empty(a.shape[:2])
        spread = np.empty(a.shape[:2])
        for b in range(a.shape[0]):
            center[b] = a3[b] @ bb[b]
            spread[b] = np.abs(a3[b]) @ vv[b]
        spread = up(spread * (1.0 + g) + n * TINY_NORMAL)
        return dn(center - spread)

    def bounds_of(self, node: int) -> tuple[Array, Array]:
        """The tightest interval known for `node` (CROWN's where computed, else IBP)."""
        got = self.pre.get(node)
        lo, hi = got if got is not None else self.ib[node]
        return np.asarray(lo), np.asarray(hi)


def _point_value(bw: Backward, node: int) -> Array | None:
    lo, hi = bw.ib[node]
    if bw.dep[node] or not (lo is hi or np.array_equal(lo, hi)):
        return None
    return np.asarray(lo)


# -- structural --------------------------------------------------------------------
@CROWN.rule("reshape")
def _reshape(bw: Backward, n: Any, a: Array) -> bool:
    src = bw.g.nodes[n.args[0]].shape
    bw.give(n.args[0], a.reshape(a.shape[:2] + src[1:]), 0.0)
    return True


@CROWN.rule("transpose")
def _transpose(bw: Backward, n: Any, a: Array) -> bool:
    axes = tuple(int(x) for x in n.attr("axes"))
    inv = np.argsort(axes)
    perm = (0, 1) + tuple(int(inv[j]) + 1 for j in range(1, len(axes)))
    bw.give(n.args[0], np.transpose(a, perm), 0.0)
    return True


@CROWN.rule("broadcast_to")
def _broadcast_to(bw: Backward, n: Any, a: Array) -> bool:
    bw.give_broadcast(n.args[0], a, n.shape, 0.0)
    return True


@CROWN.rule("slice")
def _slice(bw: Backward, n: Any, a: Array) -> bool:
    arg = n.args[0]
    src = bw.g.nodes[arg].shape
    feat = tuple(slice(s, e, k) for s, e, k in n.attr("spec")[1:])
    sl = (slice(None), slice(None)) + feat
    cur = bw.coeff.get(arg)
    if cur is not None and bw.sliced.get(arg) is cur:
        # several slices of one node (pooling windows): added in place into the one
        # array this rule made, each sum rounding by <= u |sum|, charged on its region
        region = cur[sl]
        region += a
        mag = np.broadcast_to(bw.magnitude_of(arg), (a.shape[0],) + src[1:])[
            (slice(None),) + feat]
        c = _absdot_up(np.abs(region), mag)
        bw.slack = up(bw.slack + up(c * (1.01 * U64) + TINY_NORMAL))
        return True
    z = np.zeros(a.shape[:2] + src[1:])
    z[sl] = a
    bw.give(arg, z, 0.0)
    if bw.coeff.get(arg) is z:
        bw.sliced[arg] = z
    return True


@CROWN.rule("unslice")
def _unslice(bw: Backward, n: Any, a: Array) -> bool:
    sl = (slice(None), slice(None)) + tuple(slice(s, e, k) for s, e, k in n.attr("spec")[1:])
    bw.give(n.args[0], np.ascontiguousarray(a[sl]), 0.0)
    return True


@CROWN.rule("concat")
def _concat(bw: Backward, n: Any, a: Array) -> bool:
    ax = int(n.attr("axis")) + 1
    start = 0
    for arg in n.args:
        size = bw.g.nodes[arg].shape[ax - 1]
        part = np.take(a, np.arange(start, start + size), axis=ax)
        start += size
        if bw.dep[arg]:
            bw.give(arg, part, 0.0)
        else:
            bw.box(arg, part)
    return True


@CROWN.rule("sum", "mean")
def _sum_mean(bw: Backward, n: Any, a: Array) -> bool:
    src = bw.g.nodes[n.args[0]].shape
    axes = tuple(int(x) for x in n.attr("axes"))
    if not n.attr("keepdims"):
        a = np.expand_dims(a, tuple(x + 1 for x in axes))
    new = np.broadcast_to(a, a.shape[:2] + src[1:])
    if n.op == "sum":
        bw.give(n.args[0], np.ascontiguousarray(new), 0.0)
    else:
        cnt = int(np.prod([src[x] for x in axes]))
        bw.give(n.args[0], new / cnt, 2 * U64)
    return True


# -- arithmetic --------------------------------------------------------------------
@CROWN.rule("neg")
def _neg(bw: Backward, n: Any, a: Array) -> bool:
    bw.give(n.args[0], -a, 0.0)
    return True


@CROWN.rule("add", "sub")
def _add_sub(bw: Backward, n: Any, a: Array) -> bool:
    for k, arg in enumerate(n.args):
        signed = -a if (n.op == "sub" and k == 1) else a
        if bw.dep[arg]:
            bw.give_broadcast(arg, signed, n.shape, 0.0)
        else:
            point = _point_value(bw, arg)
            if point is not None:
                absa = bw.absof(a) if signed is a else None
                bw.add_const(dot_lower(signed, point, absa))
            else:
                bw.give_broadcast(arg, signed, n.shape, 0.0)
    return True


@CROWN.rule("mul", "div")
def _mul_div(bw: Backward, n: Any, a: Array) -> bool:
    x, y = n.args
    cy = _point_value(bw, y)
    if cy is not None and (n.op == "div" or bw.dep[x]):
        c1 = np.expand_dims(np.broadcast_to(cy, n.shape), 1)
        bw.give_broadcast(x, a * c1 if n.op == "mul" else a / c1, n.shape, 2 * U64)
        return True
    cx = _point_value(bw, x)
    if n.op == "mul" and cx is not None:
        c1 = np.expand_dims(np.broadcast_to(cx, n.shape), 1)
        bw.give_broadcast(y, a * c1, n.shape, 2 * U64)
        return True
    if n.op == "mul":
        return _mccormick(bw, n, a, x, bw.bounds_of(x), y, bw.bounds_of(y), None)
    yl, yh = bw.bounds_of(y)
    if np.any(yl <= 0):
        return False  # a divisor that may be <= 0: bounded by its interval
    rl, rh = dn(1.0 / yh), up(1.0 / yl)
    return _mccormick(bw, n, a, x, bw.bounds_of(x), y, (rl, rh), (yl, yh))


def _mccormick(bw: Backward, n: Any, a: Array, x: int, xb: tuple[Array, Array], y: int,
               yb: tuple[Array, Array], recip: tuple[Array, Array] | None) -> bool:
    """a . (x * w) with w = y, or w = 1/y (`recip` = y's interval), by McCormick planes
    (exact over the reals: x w - (w_l x + x_l w - x_l w_l) = (x - x_l)(w - w_l) >= 0 and
    (x_h w + w_l x - x_h w_l) - x w = (x_h - x)(w - w_l) >= 0), intercepts rounded
    outward; for 1/y the coefficient of w then goes through 1/y's lines."""
    shape = n.shape

    def b(v: Array) -> Array:
        return np.expand_dims(np.broadcast_to(v, shape), 1)

    (xl, xh), (wl, _) = xb, yb
    pos, neg = np.maximum(a, 0.0), np.minimum(a, 0.0)
    bw.give_broadcast(x, a * b(wl), shape, 2 * U64)
    cw = pos * b(xl) + neg * b(xh)
    bw.add_const(dot_lower(pos, -mul_up(np.broadcast_to(xl, shape), np.broadcast_to(wl, shape)),
                           pos))
    bw.add_const(dot_lower(neg, -mul_dn(np.broadcast_to(xh, shape), np.broadcast_to(wl, shape)),
                           -neg))
    if recip is None:
        bw.give_broadcast(y, cw, shape, 2 * U64)
        return True
    # cw . (1/y): cw's own rounding (2u |cw|) times max|1/y| goes to the slack first
    wmag = np.broadcast_to(magnitude(*yb), shape)
    c = _absdot_up(np.abs(cw), wmag)
    bw.slack = up(bw.slack + up(c * (1.01 * 2 * U64) + TINY_NORMAL))
    yl, yh = recip
    a_l, b_l, a_u, b_u = reciprocal_lines(np.broadcast_to(yl, shape), np.broadcast_to(yh, shape))
    pw, nw = np.maximum(cw, 0.0), np.minimum(cw, 0.0)
    bw.add_const(dot_lower(pw, b_l, pw))
    bw.add_const(dot_lower(nw, b_u, -nw))
    bw.give_broadcast(y, pw * a_l[:, None] + nw * a_u[:, None], shape, 2 * U64)
    return True


@CROWN.rule("maximum", "minimum")
def _max_min(bw: Backward, n: Any, a: Array) -> bool:
    # max(x, y) = y + relu(x - y) and min(x, y) = x - relu(x - y), relu relaxed over the
    # interval of d = x - y: relu(d) >= s d (s in {0, 1}, exact) and <= a_u d + b_u
    d = bw.diff.get(n.id)
    if d is None:
        return False
    x, y = n.args
    a_l, b_l, a_u, b_u = RELAXATION.rules["relu"](d[0], d[1], {})
    al, au = a_l[:, None], a_u[:, None]
    shape = n.shape
    if n.op == "maximum":
        # a relu(d) >= pos (a_l d) + neg (a_u d + b_u); a_l in {0, 1} keeps pos parts exact
        pos, neg = np.maximum(a, 0.0), np.minimum(a, 0.0)
        cx = pos * al + neg * au
        cy = pos * (1.0 - al) + neg * (1.0 - au)
        bw.add_const(dot_lower(neg, b_u, -neg))
    else:
        # -a relu(d) >= p2 (a_l d) + n2 (a_u d + b_u), p2 = max(-a, 0), n2 = min(-a, 0)
        n2 = -np.maximum(a, 0.0)
        cx = np.where(a < 0, a * (1.0 - al), a * (1.0 - au))
        cy = np.where(a < 0, a * al, a * au)
        bw.add_const(dot_lower(n2, b_u, -n2))
    # each coefficient is a product with at most one rounded factor (1 - a_u): 3u
    bw.give_broadcast(x, cx, shape, 3 * U64)
    bw.give_broadcast(y, cy, shape, 3 * U64)
    return True


@CROWN.rule("where")
def _where(bw: Backward, n: Any, a: Array) -> bool:
    cond = _point_value(bw, n.args[0])
    if cond is None:
        return False
    mask = np.expand_dims(np.broadcast_to(cond != 0, n.shape), 1)
    for arg, part in ((n.args[1], np.where(mask, a, 0.0)), (n.args[2], np.where(mask, 0.0, a))):
        if bw.dep[arg]:
            bw.give_broadcast(arg, part, n.shape, 0.0)
        else:
            point = _point_value(bw, arg)
            if point is not None:
                bw.add_const(dot_lower(part, point))
            else:
                bw.give_broadcast(arg, part, n.shape, 0.0)
    return True


# -- matmul --------------------------------------------------------------------------
def _charge_bilinear(bw: Backward, rows: Array, weights: Array, k: int) -> None:
    """Charge gamma_k * sum over the non-(batch, spec) axes of rows * weights[:, None]."""
    total = np.sum(rows * weights[:, None], axis=tuple(range(2, rows.ndim)))
    count = int(np.prod(rows.shape[2:])) if rows.ndim > 2 else 1
    total = up(total * (1.0 + gamma64(max(count, 1))) * (1.0 + 4 * U64) + count * TINY_NORMAL)
    bw.slack = up(bw.slack + up(gamma64(k) * total + k * TINY_NORMAL))


@CROWN.rule("matmul")
def _matmul(bw: Backward, n: Any, a: Array) -> bool:
    x, w = n.args
    if bw.dep[x] and not bw.dep[w]:
        wt = _point_value(bw, w)
        if wt is None:
            return False
        if len(n.shape) == 2 and wt.ndim == 2:
            if a.strides[0] == 0:  # one spec shared by the batch: one product, broadcast
                new = np.broadcast_to(a[0] @ wt.T, a.shape[:2] + (wt.shape[0],))
            else:
                new = np.matmul(a, wt.T, out=bw.scratch("matmul", a.shape[:2] + wt.shape[:1]))
            k = wt.shape[1]
            # |fl(a @ W^T) - a @ W^T| <= gamma_k ||a_row||_1 max_k |W_jk|, times mag(x):
            # Higham's bound holds for any summation order and with fused multiply-adds,
            # so it covers the product whatever blocking the BLAS uses
            rowl1 = sum_up(bw.absof(a), 2)
            lo, hi = bw.ib[x]
            wmag = sum_up(np.abs(wt).max(axis=1)[None, :] * magnitude(lo, hi), 1)
            charge = up(gamma64(k) * rowl1 * wmag[:, None] + k * TINY_NORMAL)
            bw.slack = up(bw.slack + charge)
            bw.give(x, new, 0.0)
            return True
        nd = len(n.shape)
        wf = wt.reshape((1,) * (nd - wt.ndim) + wt.shape)
        wa = np.expand_dims(wf, 1)
        new = a @ np.swapaxes(wa, -1, -2)
        # coefficient of x[i, k] = sum_j a[i, j] W[k, j], off by <= gamma_n rowl1[i] wmax[k]
        rowl1 = np.sum(np.abs(a), axis=-1)
        wmax = np.expand_dims(np.abs(wf).max(axis=-1), -2)
        mw = np.sum(mul_up(magnitude(*bw.ib[x]), wmax), axis=-1)
        _charge_bilinear(bw, rowl1, mw, wt.shape[-1])
        bw.give_broadcast(x, new, (n.shape[0],) + new.shape[2:], 0.0)
        return True
    if bw.dep[w] and not bw.dep[x]:
        ct = _point_value(bw, x)
        if ct is None or len(n.shape) < 3:
            return False
        nd = len(n.shape)
        cf = ct.reshape((1,) * (nd - ct.ndim) + ct.shape)
        ca = np.expand_dims(cf, 1)
        new = np.swapaxes(ca, -1, -2) @ a
        # coefficient of w[k, j] = sum_i C[i, k] a[i, j], off by <= gamma_m cmax[k] coll1[j]
        coll1 = np.sum(np.abs(a), axis=-2)
        cmax = np.expand_dims(np.abs(cf).max(axis=-2), -1)
        mw = np.sum(mul_up(magnitude(*bw.ib[w]), cmax), axis=-2)
        _charge_bilinear(bw, coll1, mw, ct.shape[-2])
        bw.give_broadcast(w, new, (n.shape[0],) + new.shape[2:], 0.0)
        return True
    return False  # two input-dependent operands (attention): bounded by the interval


# -- elementwise nonlinear ops: the relaxation table's lines --------------------------
def _relaxed(bw: Backward, n: Any, a: Array) -> bool:
    z = n.args[0]
    lo, hi = bw.bounds_of(z)
    # the same intervals give the same lines: computed once per node (the intermediate
    # passes and the final one all cross the earlier nonlinearities)
    key = (n.id, id(lo), id(hi))
    got = bw.lines.get(n.id)
    if got is None or got[0] != key:
        got = (key, RELAXATION.rules[n.op](lo, hi, n.attr_dict), (lo, hi))
        bw.lines[n.id] = got
    a_l, b_l, a_u, b_u = got[1]
    lower_slope = a_l[:, None]
    slopes = bw.relu_slopes.get(n.id) if n.op == "relu" else None
    if slopes is not None:
        # relu(z) >= s z for every real z when 0 <= s <= 1 (z >= 0: z >= s z; z < 0:
        # 0 >= s z), intercept exactly 0: any such slope serves on an unstable neuron
        lower_slope = np.where(np.expand_dims((lo < 0) & (hi > 0), 1), slopes, lower_slope)
    # the lower line where the coefficient is positive, the upper one where negative:
    # new = pos a_l + neg a_u, in reused buffers
    neg = np.minimum(a, 0.0, out=bw.scratch("neg", a.shape))
    pos = np.subtract(a, neg, out=bw.scratch("coeff", a.shape))  # max(a, 0), exactly
    if np.any(b_l):
        bw.add_const(dot_lower(pos, b_l, pos))
    bw.add_const(_dot_lower_nonpositive(neg, b_u))
    new = np.multiply(pos, lower_slope, out=pos)
    new += np.multiply(neg, a_u[:, None], out=neg)
    del pos, neg
    term = bw.relu_betas.get(n.id) if n.op == "relu" else None
    if term is not None:
        # new's own rounding (2u |new|) is charged here; `give` charges 2u |new + term|,
        # more than the addition's rounding (u |sum|)
        bw.charge(bw.absof(new), z, 2 * U64)
        new = new + term
    bw.give(z, new, 2 * U64)
    return True


def _dot_lower_nonpositive(neg: Array, b: Array) -> Array:
    """`dot_lower(neg, b)` for neg <= 0 everywhere: sum |neg||b| is -(neg . |b|), a sum of
    terms of one sign, bounded like `_absdot_up` without forming |neg|."""
    bb, n = _feat(neg, b)
    a3 = neg.reshape(neg.shape[:2] + (n,))
    s = np.einsum("bmn,bn->bm", a3, bb)
    mag = -np.einsum("bmn,bn->bm", a3, np.abs(bb))
    err = up(mag * (1.0 + gamma64(max(n, 1))) + n * TINY_NORMAL)
    return dn(s - up(err * (gamma64(max(n, 1)) + 2 * U64)))


for _tag in RELAXATION.rules:
    CROWN.add(_tag, _relaxed)


def _interval_only(bw: Backward, n: Any, a: Array) -> bool:
    return False


for _tag in ("softmax", "log_softmax", "max", "argmax_mask", "step", "greater", "one_hot",
             "sin", "cos"):
    CROWN.add(_tag, _interval_only)
