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
from .functions import SMOOTH
from .problem import Array
from .relaxations import RELAXATION, reciprocal_lines, tangent_lines

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
        self.users: list[list[int]] = [[] for _ in g.nodes]  # the consumers of each node
        for node in g.nodes:
            for arg in node.args:
                self.users[arg].append(node.id)
        # per relu node: lower-line slopes in [0, 1] in the coefficient layout (batch,
        # rows, *shape); used on unstable neurons only (set for one `run` by the caller)
        self.relu_slopes: dict[int, Array] = {}
        # per relu node: a term added to the coefficient of its operand z in the final
        # pass, in the coefficient layout: -beta * sign (beta-CROWN's Lagrangian term of
        # a split sign * z >= 0, nonpositive on the subdomain, so the bound stays one)
        self.relu_betas: dict[int, Array] = {}
        # per node whose op has a tangent-point family (tanh, sigmoid, erf, exp, log,
        # ...: `relaxations.tangent_family`): alpha-CROWN's tangent points, stacked
        # (2, batch, rows, *shape), lower line's then upper line's, made into valid lines
        # by `relaxations.tangent_lines` (set for one `run` by the caller)
        self.row_points: dict[int, Array] = {}
        # per node: (key of its operand's interval, its relaxation lines, that interval,
        # kept alive so that the key's ids stay unique)
        self.lines: dict[int, tuple[tuple[int, int, int], Any, tuple[Array, Array]]] = {}
        self._abs: tuple[Array, Array] | None = None  # the last |a| computed, with its a
        self._pool: dict[tuple[str, tuple[int, ...]], Array] = {}
        # per node: the coefficient array the slice rule made for it (safe to add into),
        # and the index sets (per feature axis) of the slices written into it so far
        self.sliced: dict[int, Array] = {}
        self.slice_sets: dict[int, list[tuple[frozenset[int], ...]]] = {}
        self.slice_siblings: list[int] = []  # the slices the last slice rule wrote too
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
        self.slice_sets = {}
        result: Array | None = None
        for n in reversed(self.g.nodes[: max(starts) + 1]):
            a = self.coeff.pop(n.id, None)
            self.sliced.pop(n.id, None)
            self.slice_sets.pop(n.id, None)
            if a is None:
                continue
            if n.id in self.record:
                self.recorded[n.id] = np.array(a[:, : self.record_rows])
            if self._abs is not None and not _same_entries(self._abs[0], a):
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
        if self._abs is None or not _same_entries(self._abs[0], a):
            self._abs = None
            self._abs = (a, np.abs(a, out=self.scratch("abs", a.shape)))
        return self._abs[1].reshape(a.shape)

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
        c = _absdot_up(absa, self.magnitude_of(node))
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
        # batch rows in blocks of about 2^18 coefficients: the block's |a| stays small
        step = max(1, (1 << 18) // max(a3.shape[1] * a3.shape[2], 1))
        for b in range(0, a.shape[0], step):
            blk = slice(b, b + step)
            center[blk] = np.matmul(a3[blk], bb[blk, :, None])[..., 0]
            spread[blk] = np.matmul(np.abs(a3[blk]), vv[blk, :, None])[..., 0]
        spread = up(spread * (1.0 + g) + n * TINY_NORMAL)
        return dn(center - spread)

    def bounds_of(self, node: int) -> tuple[Array, Array]:
        """The tightest interval known for `node` (CROWN's where computed, else IBP)."""
        got = self.pre.get(node)
        lo, hi = got if got is not None else self.ib[node]
        return np.asarray(lo), np.asarray(hi)


def _same_entries(a: Array, b: Array) -> bool:
    """Whether b is a (reshaped) C-contiguous view of the same entries as a, in order."""
    if a is b:
        return True
    return (a.size == b.size and a.flags.c_contiguous and b.flags.c_contiguous
            and a.ctypes.data == b.ctypes.data and a.dtype == b.dtype)


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


def _index_sets(spec: Any, shape: tuple[int, ...]) -> tuple[frozenset[int], ...]:
    """The indices a slice spec (start, stop, step per feature axis) takes on each axis."""
    return tuple(frozenset(range(*slice(st, e, k).indices(d)))
                 for (st, e, k), d in zip(spec, shape, strict=True))


@CROWN.rule("slice")
def _slice(bw: Backward, n: Any, a: Array) -> bool:
    arg = n.args[0]
    src = bw.g.nodes[arg].shape
    spec = n.attr("spec")[1:]
    feat = tuple(slice(s, e, k) for s, e, k in spec)
    sl = (slice(None), slice(None)) + feat
    sets = _index_sets(spec, src[1:])
    cur = bw.coeff.get(arg)
    if cur is not None and bw.sliced.get(arg) is cur:
        # several slices of one node (pooling windows, conv windows): written into the
        # one array this rule made. Where the region is still untouched (zeros: no
        # earlier slice meets it on every axis) the write is exact; otherwise each sum
        # rounds by <= u |sum|, charged on the region
        seen = bw.slice_sets[arg]
        overlaps = any(all(p & q for p, q in zip(old, sets, strict=True)) for old in seen)
        seen.append(sets)
        region = cur[sl]
        if not overlaps:
            region[...] = a
            return True
        region += a
        mag = np.broadcast_to(bw.magnitude_of(arg), (a.shape[0],) + src[1:])[
            (slice(None),) + feat]
        c = _absdot_up(np.abs(region), mag)
        bw.slack = up(bw.slack + up(c * (1.01 * U64) + TINY_NORMAL))
        return True
    z = np.zeros(a.shape[:2] + src[1:])
    parts = [(feat, a)] + _sibling_slices(bw, n, sets)
    if len(parts) == 1:
        z[sl] = a
    else:
        # disjoint windows written block by block, each block of z in cache while all
        # windows land in it (one pass over memory, not one per window); exact writes
        step = max(1, (1 << 17) // max(int(np.prod(src[1:])), 1))
        for b in range(a.shape[0]):
            for r in range(0, a.shape[1], step):
                blk = (b, slice(r, r + step))
                for f, part in parts:
                    z[blk + f] = part[blk]
        sets_all = [sets] + [_index_sets(bw.g.nodes[k].attr("spec")[1:], src[1:])
                             for k in bw.slice_siblings]
    bw.give(arg, z, 0.0)
    if bw.coeff.get(arg) is z:
        bw.sliced[arg] = z
        bw.slice_sets[arg] = [sets] if len(parts) == 1 else sets_all
    return True


def _sibling_slices(bw: Backward, n: Any, sets: tuple[frozenset[int], ...]
                    ) -> list[tuple[tuple[slice, ...], Array]]:
    """Other slices of n's operand whose coefficients are complete (all their consumers
    done) and which are pairwise disjoint with each other and with n's: taken out of the
    pass (their coefficients handed back here, with their feature slices) to be written
    together with n's. Their ids are left in `bw.slice_siblings`."""
    arg = n.args[0]
    src = bw.g.nodes[arg].shape
    taken: list[tuple[tuple[slice, ...], Array]] = []
    seen = [sets]
    bw.slice_siblings = []
    for k in bw.users[arg]:
        node = bw.g.nodes[k]
        if k == n.id or node.op != "slice" or k not in bw.coeff or not bw.bat[k] or \
                any(u <= n.id for u in bw.users[k]):
            continue
        spec = node.attr("spec")[1:]
        mine = _index_sets(spec, src[1:])
        if any(all(p & q for p, q in zip(old, mine, strict=True)) for old in seen):
            continue
        seen.append(mine)
        taken.append((tuple(slice(s, e, st) for s, e, st in spec), bw.coeff.pop(k)))
        bw.slice_siblings.append(k)
    return taken


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
        index = [slice(None)] * a.ndim
        index[ax] = slice(start, start + size)
        part = a[tuple(index)]  # a view: the rules that take it copy what they keep
        start += size
        if bw.dep[arg]:
            bw.give(arg, part, 0.0)
        else:
            bw.box(arg, part)
    return True


@CROWN.rule("sum", "mean")
def _sum_mean(bw: Backward, n: Any, a: Array) -> bool:
    arg = n.args[0]
    src = bw.g.nodes[arg].shape
    axes = tuple(int(x) for x in n.attr("axes"))
    if not n.attr("keepdims"):
        a = np.expand_dims(a, tuple(x + 1 for x in axes))
    full = a.shape[:2] + src[1:]
    if n.op == "sum":
        bw.give(arg, np.broadcast_to(a, full), 0.0)
        return True
    cnt = int(np.prod([src[x] for x in axes]))
    small = a / cnt
    if arg in bw.coeff or 0 in axes or not bw.dep[arg]:
        bw.give(arg, np.ascontiguousarray(np.broadcast_to(small, full)), 2 * U64)
        return True
    # Each entry of a / cnt rounds by <= 2u of itself; the charge 2u sum |a/cnt| mag(v)
    # over the broadcast equals 2u sum |a/cnt| (sum over the mean's axes of mag(v)):
    # formed on the small array, the window sums of mag rounded up (Higham's gamma_cnt),
    # and the coefficient handed on as a broadcast view, never written out in full
    mag = bw.magnitude_of(arg)
    msum = np.sum(mag, axis=axes, keepdims=True)
    msum = up(msum * (1.0 + gamma64(cnt)) + cnt * TINY_NORMAL)
    c = _absdot_up(np.abs(small), msum)
    bw.slack = up(bw.slack + up(c * (1.01 * 2 * U64) + TINY_NORMAL))
    bw.give(arg, np.broadcast_to(small, full), 0.0)
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
            wmag = sum_up(np.abs(wt).max(axis=1)[None, :] * bw.magnitude_of(x), 1)
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
        mw = np.sum(mul_up(bw.magnitude_of(x), wmax), axis=-1)
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
        coll1 = np.sum(bw.absof(a), axis=-2)
        cmax = np.expand_dims(np.abs(cf).max(axis=-2), -1)
        mw = np.sum(mul_up(bw.magnitude_of(w), cmax), axis=-2)
        _charge_bilinear(bw, coll1, mw, ct.shape[-2])
        bw.give_broadcast(w, new, (n.shape[0],) + new.shape[2:], 0.0)
        return True
    return False  # two input-dependent operands (attention): bounded by the interval


# -- elementwise nonlinear ops: the relaxation table's lines --------------------------
def _relaxed(bw: Backward, n: Any, a: Array) -> bool:
    z = n.args[0]
    lo, hi = bw.bounds_of(z)
    points = bw.row_points.get(n.id)
    if points is not None:
        return _row_lines(bw, n, a, z, lo, hi, points)
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
    per_row = lower_slope.shape[1] != 1  # alpha-CROWN's slopes: one per spec row
    mag = bw.magnitude_of(z)
    # One pass over each of pos = max(a, 0) and neg = min(a, 0) (a matrix product with a
    # few columns) gives the constant's dot product, its error's magnitude sum, and the
    # magnitude sum charged for the rounding of the new coefficient pos a_l + neg a_u:
    # each entry is one product (the other part is exactly zero), off by <= u |entry|
    # (underflow: the flat allowance)
    p_cols = [] if per_row else [np.abs(a_l) * mag]
    if np.any(b_l):
        p_cols += [b_l, np.abs(b_l)]
    n_cols = [np.abs(a_u) * mag, b_u, np.abs(b_u)]
    unstable = (lo < 0) & (hi > 0)
    p_sums: Array | None
    if n.op == "relu" and not per_row and len(p_cols) == 1 and \
            a.size > BLOCK_ENTRIES * a.shape[0] and \
            np.count_nonzero(unstable) <= SPARSE_FRACTION * unstable.size:
        new, p_sums, n_sums = _relu_sparse(bw, a, lo, unstable, p_cols[0], n_cols, a_l, a_u)
    else:
        new, p_sums, n_sums = _apply_lines(bw, a, lower_slope, a_u[:, None], p_cols, n_cols)
    count = max(int(np.prod(a.shape[2:])), 1)
    g = gamma64(count)
    if len(p_cols) > 1:
        assert p_sums is not None
        err = up(p_sums[..., -1] * (1.0 + g) + count * TINY_NORMAL)
        bw.add_const(dn(p_sums[..., -2] - up(err * (g + 2 * U64))))
    err = up(-n_sums[..., 2] * (1.0 + g) + count * TINY_NORMAL)
    bw.add_const(dn(n_sums[..., 1] - up(err * (g + 2 * U64))))
    # beta-CROWN: the split constraints' terms -beta * sign * z join the coefficient
    term = bw.relu_betas.get(n.id) if n.op == "relu" else None
    if per_row:
        if term is not None:
            # new's own rounding (2u |new|) is charged here; `give` charges 2u |new +
            # term|, more than the addition's rounding (u |sum|)
            bw.charge(bw.absof(new), z, 2 * U64)
            new = new + term
        bw.give(z, new, 2 * U64)
        return True
    assert p_sums is not None
    # the two sums of nonnegative terms (the column products rounded by <= u each):
    # (1 + gamma)(1 + 8u) covers both sums' rounding, the products' and the addition's
    total = up((p_sums[..., 0] - n_sums[..., 0]) * ((1.0 + g) * (1.0 + 8 * U64))
               + 2 * count * TINY_NORMAL)
    bw.slack = up(bw.slack + up(total * (1.01 * 2 * U64) + TINY_NORMAL))
    if term is not None:  # new's rounding is in the slack; 2u |new + term| covers the sum's
        bw.give(z, new + term, 2 * U64)
    else:
        bw.give(z, new, 0.0)
    return True


def _row_lines(bw: Backward, n: Any, a: Array, z: int, lo: Array, hi: Array,
               points: Array) -> bool:
    """`_relaxed` with lines of their own per spec row (alpha-CROWN's tangent points),
    each valid over [lo, hi] by `tangent_lines`."""
    a_l, b_l, a_u, b_u = tangent_lines(SMOOTH[n.op], lo, hi, points[0], points[1])
    neg = np.minimum(a, 0.0)
    pos = a - neg  # max(a, 0), exactly
    # per entry one of pos, neg is 0: each of new and t is one rounded product (the
    # other product and the addition are exact), off by <= u |entry| (underflow: the
    # flat allowances)
    new = pos * a_l + neg * a_u
    t = (pos * b_l + neg * b_u).reshape(a.shape[:2] + (-1,))
    count = max(t.shape[2], 1)
    g = gamma64(count)
    err = up(np.abs(t).sum(axis=2) * (1.0 + g) + count * TINY_NORMAL)
    bw.add_const(dn(t.sum(axis=2) - up(err * (g + 2 * U64))))
    # new's own rounding, against |new| (give charges a sum's rounding, if z has a
    # coefficient already, against |sum|)
    bw.charge(bw.absof(new), z, 2 * U64)
    bw.give(z, new, 0.0)
    return True


BLOCK_ENTRIES = 1 << 16  # coefficients per block of _apply_lines: its buffers stay in cache


def _apply_lines(bw: Backward, a: Array, lower: Array, upper: Array, p_cols: list[Array],
                 n_cols: list[Array]) -> tuple[Array, Array | None, Array]:
    """new = max(a, 0) lower + min(a, 0) upper (slopes broadcast against a), and the
    column sums (`_column_sums`) of max(a, 0) against p_cols and of min(a, 0) against
    n_cols. In blocks (of whole batch rows, or of spec rows within one batch row) whose
    parts and products stay in cache: one pass over memory instead of seven."""
    batch, rows = a.shape[:2]
    n = int(np.prod(a.shape[2:]))
    a3 = a.reshape(batch, rows, n)
    low3 = np.broadcast_to(lower, a.shape[:1] + lower.shape[1:]).reshape(batch, -1, n)
    up3 = np.broadcast_to(upper, a.shape[:1] + upper.shape[1:]).reshape(batch, -1, n)
    new = bw.scratch("coeff", a.shape)
    new3 = new.reshape(batch, rows, n)
    p_mat = _column_matrix(a, p_cols) if p_cols else None
    n_mat = _column_matrix(a, n_cols)
    p_sums = np.empty((batch, rows, len(p_cols))) if p_cols else None
    n_sums = np.empty((batch, rows, len(n_cols)))
    if rows * n <= BLOCK_ENTRIES:
        b_step, r_step = max(1, BLOCK_ENTRIES // max(rows * n, 1)), rows
    else:
        b_step, r_step = 1, max(1, BLOCK_ENTRIES // max(n, 1))
    shape = (min(b_step, batch), min(r_step, rows), n)
    neg_buf, pos_buf = np.empty(shape), np.empty(shape)
    for b in range(0, batch, b_step):
        bs = slice(b, min(b + b_step, batch))
        for r in range(0, rows, r_step):
            rs = slice(r, min(r + r_step, rows))
            kb, kr = bs.stop - b, rs.stop - r
            neg = np.minimum(a3[bs, rs], 0.0, out=neg_buf[:kb, :kr])
            pos = np.subtract(a3[bs, rs], neg, out=pos_buf[:kb, :kr])  # max(a, 0), exactly
            if p_mat is not None and p_sums is not None:
                np.matmul(pos, p_mat[bs], out=p_sums[bs, rs])
            np.matmul(neg, n_mat[bs], out=n_sums[bs, rs])
            out = new3[bs, rs]
            np.multiply(pos, low3[bs, rs] if low3.shape[1] != 1 else low3[bs], out=out)
            neg *= up3[bs, rs] if up3.shape[1] != 1 else up3[bs]
            out += neg
    return new, p_sums, n_sums


# relu: below this share of unstable neurons, `_relu_sparse` (it loops over batch rows:
# only where each batch row holds over BLOCK_ENTRIES coefficients)
SPARSE_FRACTION = 0.25


def _relu_sparse(bw: Backward, a: Array, lo: Array, unstable: Array, p_col: Array,
                 n_cols: list[Array], a_l: Array, a_u: Array
                 ) -> tuple[Array, Array, Array]:
    """`_apply_lines` for relu when few neurons are unstable. A stable neuron's lines
    are exact with intercept 0 (relu(z) = z on [lo, hi] when lo >= 0, = 0 when hi <= 0):
    its new coefficient is a times 1 or 0 (exact, nothing to charge, no constant). Only
    the unstable neurons, gathered per batch row, go through the general computation;
    their column sums are sums over fewer terms than the full feature count the caller's
    gamma assumes (a larger gamma: still a bound)."""
    batch, rows = a.shape[:2]
    n = int(np.prod(a.shape[2:]))
    a3 = a.reshape(batch, rows, n)
    new = bw.scratch("coeff", a.shape)
    new3 = new.reshape(batch, rows, n)
    active = _feat(a, (lo >= 0).astype(np.float64))[0]
    np.multiply(a3, active[:, None, :], out=new3)  # times 1 or 0: exact
    p_sums = np.zeros((batch, rows, 1))
    n_sums = np.zeros((batch, rows, len(n_cols)))
    flat_un = _feat(a, unstable)[0]
    pc = _feat(a, p_col)[0]
    ncs = [_feat(a, c)[0] for c in n_cols]
    al, au = _feat(a, a_l)[0], _feat(a, a_u)[0]
    for b in range(batch):
        idx = np.flatnonzero(flat_un[b])
        if idx.size == 0:
            continue
        sub = a3[b][:, idx]
        neg = np.minimum(sub, 0.0)
        pos = np.subtract(sub, neg)  # max(sub, 0), exactly
        p_sums[b] = pos @ pc[b, idx][:, None]
        n_sums[b] = neg @ np.stack([c[b, idx] for c in ncs], axis=1)
        pos *= al[b, idx]
        neg *= au[b, idx]
        pos += neg
        new3[b][:, idx] = pos
    return new, p_sums, n_sums


def _column_matrix(coef: Array, cols: list[Array]) -> Array:
    """The columns, each broadcast to (batch, features) of coef, side by side:
    (batch, features, columns)."""
    batch, n = coef.shape[0], int(np.prod(coef.shape[2:]))
    m = np.empty((batch, n, len(cols)))
    for j, col in enumerate(cols):
        m[:, :, j] = _feat(coef, col)[0]
    return m


def _column_sums(coef: Array, cols: list[Array]) -> Array:
    """For coef (batch, rows, *feat) and columns broadcastable to (batch, *feat): the
    float sums over the features of coef * col, one per column, (batch, rows, columns),
    in one matrix product (any summation order: the callers' error terms allow it)."""
    n = int(np.prod(coef.shape[2:]))
    sums: Array = np.matmul(coef.reshape(coef.shape[:2] + (n,)), _column_matrix(coef, cols))
    return sums


for _tag in RELAXATION.rules:
    CROWN.add(_tag, _relaxed)


def _interval_only(bw: Backward, n: Any, a: Array) -> bool:
    return False


for _tag in ("softmax", "log_softmax", "max", "argmax_mask", "step", "greater", "one_hot",
             "sin", "cos"):
    CROWN.add(_tag, _interval_only)
