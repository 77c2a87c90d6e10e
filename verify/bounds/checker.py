"""The certificate checker's trusted core: exact enclosures of a graph's nodes over a box.

`ExactWalk(graph, params, box)` visits the nodes in topological order, over `Fraction`:

- a node that does not depend on the input is evaluated exactly with the op table's
  forward rule over the `exact` field (it raises for ops with no rational value);
- an input-dependent node needs a rule of `certificate_rules.RULES` (else
  `UnsupportedOperation` naming the op, the node and the analysis "certificate");
- a linear node gets the exact interval enclosure of its value (midpoint-radius);
- before the first non-linear node that reads a value z, `settle(z, lo, hi)` is called
  with z's exact enclosure: the checker compares the certificate's claim for z there (see
  `Claims.settle`). The settled interval gives the node its relaxation lines
  (`Relaxation.lines`) and its enclosure (`Relaxation.range`).

`lower_bound(target, lam)` is exact back-substitution (CROWN over the rationals): a
lower bound of <lam, value(target)> over the whole box, valid because every relaxation
line below `target` holds on its node's settled interval. Linear nodes are crossed with
the op table's VJP rule over exact Tensors (the transpose of a linear map).

Soundness, by induction over the topological order: each settled interval contains every
value its node takes on the box, because it contains (is the intersection of the claim
with) an exact enclosure computed from earlier settled intervals only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...runtime.graph.encoding import decode_literal
from ...spec.errors import DataFormatError, UnsupportedOperation
from ...spec.fields import get_field
from ...spec.ops import OPS
from ...spec.tensor import Tensor
from .certificate_rules import (
    RULES,
    SMOOTH_LIMIT,
    Linear,
    Lines,
    PairLines,
    PairRelaxation,
    Relaxation,
    lines_range,
)

__all__ = ["ExactWalk", "Rejected", "exact_array", "Settle"]

Obj = np.ndarray[Any, Any]
Settle = Callable[[int, Obj, Obj], tuple[Obj, Obj]]
EXACT = get_field("exact")
_MOVES = ("reshape", "transpose", "broadcast_to", "slice", "unslice", "concat", "neg")
_ZERO = Fraction(0)


class Rejected(Exception):
    """A claim of a certificate that the exact computation does not confirm."""


def exact_array(values: Any) -> Obj:
    """A float (or int) array as an object array of the Fractions it holds exactly."""
    a = np.asarray(values, dtype=np.float64)
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = Fraction(float(a[idx]))
    return out


def _total(a: Obj) -> Fraction:
    return sum(np.ravel(a).tolist(), _ZERO)


def _zeros_like(a: Obj) -> Obj:
    out = np.empty(np.shape(a), dtype=object)
    out[...] = _ZERO
    return out


def _sum_to(a: Obj, shape: tuple[int, ...]) -> Obj:
    """Sum a broadcast array back to `shape` (the transpose of broadcasting)."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and a.shape[lead + i] != 1)
    out: Obj = np.add.reduce(a, axis=axes, initial=_ZERO) if axes else a
    return out.reshape(shape)


def _forward(tag: str, args: tuple[Obj, ...], attrs: dict[str, Any]) -> Obj:
    return np.asarray(OPS[tag].forward(EXACT, args, attrs), dtype=object)


class ExactWalk:
    """Exact enclosures and back-substitution over one graph and one input box."""

    def __init__(self, g: Graph, params: Mapping[str, Any], box: tuple[Obj, Obj],
                 host: Callable[[Any], Any]) -> None:
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise UnsupportedOperation("graph", "exact", "certificates need one input and "
                                       "one output", analysis=RULES.name)
        self.g = g
        self.dep = [False] * len(g.nodes)
        for n in g.nodes:
            self.dep[n.id] = n.op == "input" or any(self.dep[a] for a in n.args)
        depending: list[Any] = [n for n in g.nodes if self.dep[n.id] and n.op != "input"]
        RULES.check_ops(depending)
        self.params, self.host = params, host
        self.box = box
        self.const: dict[int, Obj] = {}
        self.enc: dict[int, tuple[Obj, Obj]] = {}
        self.lines: dict[int, Lines] = {}
        self.pair_lines: dict[int, PairLines] = {}
        self.settled: set[int] = set()
        self._cache: dict[tuple[int, tuple[int, ...], int], Fraction] = {}

    # -- what the certificate must claim ---------------------------------------------
    def claim_nodes(self) -> list[int]:
        """The nodes whose interval the certificate claims: the input of every
        input-dependent non-linear node, in topological order."""
        need = {a for n in self.g.nodes if self.dep[n.id] and self._relaxed(n)
                for a in n.args if self.dep[a]}
        return sorted(need)

    def _pair_rule(self, n: Any) -> PairRelaxation | None:
        """The node's two-operand relaxation: maximum / minimum, or a product of two
        input-dependent values."""
        rule = RULES.rules.get(n.op)
        if isinstance(rule, PairRelaxation):
            return rule
        if isinstance(rule, Linear) and rule.both is not None and all(
                self.dep[a] for a in n.args):
            return rule.both
        return None

    def _relaxed(self, n: Any) -> bool:
        return (isinstance(RULES.rules.get(n.op), Relaxation)
                or self._pair_rule(n) is not None)

    def mixes_relaxed(self, node: int) -> bool:
        """Whether `node` combines outputs of non-linear nodes through ops that mix values
        (matmul, add, sum, ...), where back-substitution can beat interval bounds; moving
        values only (reshape, slice, concat, ...) cannot. (A producer's shortcut.)"""
        seen, todo = set(), [node]
        relaxed = mixing = False
        while todo:
            k = todo.pop()
            here = self.g.nodes[k]
            mixing = mixing or not (here.op in _MOVES or self._relaxed(here))
            for a in here.args:
                if a not in seen and self.dep[a]:
                    seen.add(a)
                    if self._relaxed(self.g.nodes[a]):
                        relaxed = True
                    else:
                        todo.append(a)
        return relaxed and mixing

    # -- the forward walk -------------------------------------------------------------
    def run(self, settle: Settle) -> None:
        """Enclose every node, settling each claimed interval with `settle` first."""
        for n in self.g.nodes:
            if not self.dep[n.id]:
                self.const[n.id] = self._constant(n)
            elif n.op == "input":
                lo, hi = self.box
                if lo.shape != n.shape:
                    raise Rejected(f"the box has shape {lo.shape}, the graph input {n.shape}")
                self.enc[n.id] = (lo, hi)
            else:
                rule = RULES.rules[n.op]
                pair = self._pair_rule(n)
                if isinstance(rule, Relaxation):
                    self._relax(n, rule, settle)
                elif pair is not None:
                    self._relax_pair(n, pair, settle)
                else:
                    assert isinstance(rule, Linear)
                    self.enc[n.id] = self._linear(n, rule)

    def _constant(self, n: Any) -> Obj:
        if n.op == "param":
            v = np.asarray(self.host(self.params[n.name]))
            if v.shape != n.shape:
                raise DataFormatError(f"params[{n.name!r}]", f"shape {v.shape}, the graph "
                                      f"needs {n.shape}")
            return exact_array(v)
        if n.op == "literal":   # in the graph's own field, then read exactly
            data = decode_literal(self.g.field_def, n.attr("data"), n.shape,
                                  f"literal %{n.id}")
            if np.asarray(data).dtype == object:
                exact: Obj = np.vectorize(Fraction, otypes=[object])(np.asarray(data))
                return exact
            return exact_array(data)
        if n.op == "const":
            return np.asarray(EXACT.constant(n.attr("value")), dtype=object)
        return _forward(n.op, tuple(self.const[a] for a in n.args), n.attr_dict)

    def _settled(self, z: int, settle: Settle) -> tuple[Obj, Obj]:
        """Node z's interval: its claim, accepted by `settle` (a constant: its value)."""
        if not self.dep[z]:
            return self.const[z], self.const[z]
        if z not in self.settled:
            self.enc[z] = settle(z, *self.enc[z])
            self.settled.add(z)
        return self.enc[z]

    def _relax_pair(self, n: Any, rule: PairRelaxation, settle: Settle) -> None:
        ends = [np.broadcast_to(v, n.shape) for a in n.args for v in self._settled(a, settle)]
        self.pair_lines[n.id] = rule.lines(*ends)
        self.enc[n.id] = rule.range(*ends)

    def _relax(self, n: Any, rule: Relaxation, settle: Settle) -> None:
        lo, hi = self._settled(n.args[0], settle)
        where = f"node %{n.id} ({n.op})"
        if rule.domain is not None and any(v <= rule.domain for v in lo.flat):
            raise Rejected(f"{where}: its input interval reaches {min(lo.flat)}, outside "
                           f"the domain (> {rule.domain})")
        if rule.smooth and any(abs(v) > SMOOTH_LIMIT for v in (*lo.flat, *hi.flat)):
            raise Rejected(f"{where}: its input interval leaves [-{SMOOTH_LIMIT}, "
                           f"{SMOOTH_LIMIT}], the range the checker evaluates smooth ops on")
        at = n.attr_dict
        lines = self.lines[n.id] = rule.lines(lo, hi, at)
        self.enc[n.id] = (lines_range(lo, hi, lines) if rule.range is None
                          else rule.range(lo, hi, at))

    def mid_rad(self, k: int) -> tuple[Obj, Obj]:
        """Midpoint and radius of node k's enclosure (radius 0 for a constant)."""
        if not self.dep[k]:
            return self.const[k], _zeros_like(self.const[k])
        lo, hi = self.enc[k]
        return (lo + hi) / 2, (hi - lo) / 2

    def _linear(self, n: Any, rule: Linear) -> tuple[Obj, Obj]:
        at, args = n.attr_dict, n.args
        mids, rads = zip(*(self.mid_rad(a) for a in args), strict=True)
        mid = _forward(n.op, tuple(mids), at)
        if rule.kind == "positive":
            rad = _forward(n.op, tuple(rads), at)
        elif rule.kind == "sub":
            rad = _forward("add", tuple(rads), at)
        elif rule.kind == "neg":
            rad = rads[0]
        else:
            deps = [self.dep[a] for a in args]
            if deps not in ([True, False], [False, True]) or (rule.kind == "div"
                                                             and not deps[0]):
                raise UnsupportedOperation(n.op, "exact", f"node %{n.id}: a certificate "
                                           "needs a constant operand here (the other one "
                                           "depends on the input)", analysis=RULES.name)
            scaled = tuple(r if d else np.abs(m) for m, r, d in zip(mids, rads, deps,
                                                                       strict=True))
            rad = _forward(n.op, scaled, at)
        return mid - rad, mid + rad

    # -- bounds ------------------------------------------------------------------------
    def ibp_lower(self, target: int, lam: Obj) -> Fraction:
        """The interval lower bound of <lam, value(target)> from the node's enclosure."""
        mid, rad = self.mid_rad(target)
        return _total(lam * mid) - _total(np.abs(lam) * rad)

    def unit_lower(self, target: int, index: tuple[int, ...], sign: int) -> Fraction:
        """`lower_bound` of sign * value(target)[index], remembered."""
        key = (target, index, sign)
        if key not in self._cache:
            lam = _zeros_like(self.enc[target][0])
            lam[index] = Fraction(sign)
            self._cache[key] = self.lower_bound(target, lam)
        return self._cache[key]

    def lower_bound(self, target: int, lam: Obj) -> Fraction:
        """Exact back-substitution: a lower bound of <lam, value(target)> on the box."""
        cot: dict[int, Obj] = {target: lam}
        total = _ZERO
        for n in reversed(self.g.nodes[: target + 1]):
            a = cot.pop(n.id, None)
            if a is None:
                continue
            if not self.dep[n.id]:
                total += _total(a * self.const[n.id])
            elif n.op == "input":
                lo, hi = self.enc[n.id]
                total += _total(np.where(a > 0, a * lo, a * hi))
            elif isinstance(rule := RULES.rules[n.op], Relaxation):
                a_l, b_l, a_u, b_u = self.lines[n.id]
                pos = a > 0
                self._give(cot, n.args[0], np.where(pos, a * a_l, a * a_u))
                total += _total(np.where(pos, a * b_l, a * b_u))
            elif n.id in self.pair_lines:
                ca_l, cb_l, d_l, ca_u, cb_u, d_u = self.pair_lines[n.id]
                pos = a > 0
                for x, c_l, c_u in zip(n.args, (ca_l, cb_l), (ca_u, cb_u), strict=True):
                    shape = self.g.nodes[x].shape
                    self._give(cot, x, _sum_to(np.where(pos, a * c_l, a * c_u), shape))
                total += _total(np.where(pos, a * d_l, a * d_u))
            else:
                assert isinstance(rule, Linear)
                self._transpose(n, rule, a, cot)
        return total

    def _transpose(self, n: Any, rule: Linear, a: Obj, cot: dict[int, Obj]) -> None:
        """Hand the cotangent `a` of a linear node to its operands (the op's VJP rule).
        Constant operands of add / sub / concat / ... receive theirs too: their value
        is part of the node's affine value; a scale's constant factor receives none."""
        affine = rule.kind in ("positive", "sub", "neg")
        needs = tuple(self.dep[x] or affine for x in n.args)
        ins = tuple(Tensor(self.mid_rad(x)[0], EXACT) for x in n.args)
        out = Tensor(self.mid_rad(n.id)[0], EXACT)
        grads = OPS[n.op].cotangents(Tensor(a, EXACT), ins, out, n.attr_dict, needs)
        for x, gx, need in zip(n.args, grads, needs, strict=True):
            if need and gx is not None:
                assert isinstance(gx, Tensor)
                self._give(cot, x, np.asarray(gx.data, dtype=object))

    @staticmethod
    def _give(cot: dict[int, Obj], node: int, a: Obj) -> None:
        cot[node] = cot[node] + a if node in cot else a
