"""The two passes of `verify.rounding` over a graph, both `GraphInterpreter`s:
`propagate_elementwise` (every node's real enclosure and error bound, with the zonotope
pass over the real values run alongside) and `propagate_affine` (first-order error
terms with signs, over the first pass's enclosures); and reading a model, its
parameters and its input box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...runtime.graph import Graph, Node
from ...runtime.graph.interpreter import GraphInterpreter, literal_array
from ...runtime.graph.tracing import as_graph as shared_as_graph
from ...spec.tensor import Tensor
from ..bounds import zonotope as zono
from ..outward import next_up as _up
from .affine import RULES as AFFINE_RULES
from .affine import AffineStep, Blocks, Form, fresh, gather_index, lin
from .model import (
    OVERFLOW,
    Arr,
    Bound,
    Ctx,
    RoundingBoundError,
    absmax,
    may_be_subnormal,
)
from .rules import RULES as ELEMENTWISE_RULES
from .rules import bound_rule, const_bound, is_structural

__all__ = ["RealPass", "as_graph", "as_f64", "check_rules", "input_boxes", "params32",
           "propagate_affine", "propagate_elementwise"]

def as_graph(model_or_graph: Any, input_shape: Sequence[int] | None = None) -> Graph:
    """The graph of a `Graph` (itself) or of a built nn model's eval-mode forward in
    ieee32exec (parameters as graph params, one input "x" of `input_shape`)."""
    return shared_as_graph(model_or_graph, input_shape, "ieee32exec")


def as_f64(value: Any) -> Arr:
    """A tensor or array-like as a binary64 NumPy array."""
    if isinstance(value, Tensor):
        value = value.numpy()
    return np.asarray(value, dtype=np.float64)


def params32(graph: Graph, params: Mapping[str, Any]) -> dict[str, Arr]:
    """The graph's parameters rounded to binary32 (held in binary64); a missing or
    non-finite one raises."""
    out = {}
    for n in graph.params:
        if n.name not in params:
            raise KeyError(f"parameter {n.name!r} missing")
        raw = as_f64(params[n.name])
        if not np.all(np.isfinite(raw)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(raw))[0])
            raise RoundingBoundError(f"parameter {n.name!r} is not finite at {bad}")
        # the executed model uses the binary32 values; the real model uses the same ones
        out[n.name] = np.asarray(raw.astype(np.float32), dtype=np.float64)
    return out


def input_boxes(graph: Graph, box: Any) -> dict[str, tuple[Arr, Arr]]:
    """The box of each input (see `error_bound`), checked: shapes, finite, lower <= upper."""
    inputs = graph.inputs
    if isinstance(box, Mapping):
        pairs = dict(box)
    else:
        if len(inputs) != 1:
            raise ValueError(f"the graph has inputs {[n.name for n in inputs]}: pass a "
                             "mapping name -> (lower, upper)")
        pairs = {inputs[0].name: box}
    out = {}
    for n in inputs:
        lo, hi = (as_f64(v) for v in pairs[n.name])
        if lo.shape != n.shape or hi.shape != n.shape:
            raise ValueError(f"input {n.name!r}: box shapes {lo.shape}, {hi.shape}, the graph "
                             f"expects {n.shape}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise RoundingBoundError(f"input {n.name!r}: the box has a non-finite endpoint")
        if np.any(lo > hi):
            bad = tuple(int(i) for i in np.argwhere(lo > hi)[0])
            raise RoundingBoundError(f"input {n.name!r}: lower {lo[bad]} > upper {hi[bad]} "
                                     f"at index {bad}")
        out[n.name] = (lo, hi)
    return out


@dataclass
class RealPass:
    """The zonotope pass over the real values (verify/zonotope.py), run once with the
    first propagation: per node an enclosure to intersect with the interval rules', and
    per ieee32exec matmul bounds of its real partial sums."""

    hulls: list[tuple[Arr, Arr]] = field(default_factory=list)
    smag: dict[int, Arr] = field(default_factory=dict)
    zonos: list[zono.Zono | None] = field(default_factory=list)
    syms: zono.Symbols = field(default_factory=zono.Symbols)


def _one_row_symbols(x: zono.Zono) -> bool:
    """Whether each of x's symbols appears in one element only and x has no radius r (an
    input box): there its partial-sum bounds would be |sum c_i w_i| + sum |w_i| rad_i,
    the interval partial sums the fold computes itself (with less binary64 slack), so
    they are not computed."""
    if np.any(x.r):
        return False
    if x.one_row is not None:  # known at construction
        return True
    g = x.g.reshape(-1, x.g.shape[-1])
    return int(np.count_nonzero(g)) == int(np.count_nonzero(g.any(axis=0)))


def _partial_sums(a: zono.Zono | None, b: zono.Zono | None) -> tuple[Arr | None, Arr | None]:
    """Bounds of |real partial sum k| of a 2-D a @ b, in the matmul terms' layout, and
    for X @ W the generators of the product, which computing them ends with."""
    if a is None or b is None or a.c.ndim != 2 or b.c.ndim != 2:
        return None, None
    if _one_row_symbols(a if b.is_point else b):
        return None, None
    if b.is_point and not a.is_point:
        return zono.matmul_partial_sums_and_product(a, b.c)
    if a.is_point and not b.is_point:  # (W @ X)^T = X^T @ W^T, the same fold order
        xt = zono.Zono(b.c.T, np.swapaxes(b.g, 0, 1), b.r.T)
        return np.swapaxes(zono.matmul_partial_sums(xt, a.c.T), 0, 1), None
    return None, None


def _real_step(real: RealPass, n: Any, args: list[Bound], mode: str) -> tuple[zono.Zono | None,
                                                                          Arr | None]:
    """The node's zonotope when a linear rule gives one, and its partial-sum bounds."""
    zs = [real.zonos[i] for i in n.args]
    shape = tuple(n.shape)
    idx = gather_index(n.op, [a.lo.shape for a in args], n.attr_dict) \
        if is_structural(n.op) else None
    smag, product = _partial_sums(zs[0], zs[1]) if n.op == "matmul" and mode == "ieee32exec" \
        else (None, None)
    z = zono.step(n.op, zs, n.attr_dict, shape, [(a.lo, a.hi) for a in args], real.syms, idx,
                  product)
    return z, smag


class _ElementwisePass(GraphInterpreter[Bound]):
    """Bounds for every node; `only` = the single node allowed to round (attribution).
    `real` is the zonotope pass: filled in when empty, reused when given filled."""

    def __init__(self, graph: Graph, params: dict[str, Arr],
                 boxes: dict[str, tuple[Arr, Arr]], mode: str, u: float,
                 inputs_are_float32: bool, only: int | None, real: RealPass | None) -> None:
        super().__init__(graph)
        self.params, self.boxes, self.mode, self.u = params, boxes, mode, u
        self.inputs_are_float32, self.only, self.real = inputs_are_float32, only, real
        self.first = real is not None and not real.hulls
        self.z: zono.Zono | None = None  # the current node's zonotope, if a rule gave one

    def ctx(self, n: Node) -> Ctx:
        return Ctx(self.mode, self.u, self.only is None or self.only == n.id,
                   self.graph.describe(n))

    def leaf(self, n: Node) -> Bound:
        c = self.ctx(n)
        if n.op == "param":
            p = self.params[n.name]
            self.z = zono.point(p)
            return Bound(p, p.copy(), np.zeros_like(p))
        self.z = None
        lo, hi = self.boxes[n.name]
        if self.inputs_are_float32 or not c.rounds:
            return Bound(lo, hi, np.zeros_like(lo))
        # rounding binary64 inputs to binary32 on entry
        return Bound(lo, hi, c.rho(absmax(lo, hi), may_be_subnormal(lo, hi, np.zeros_like(lo))))

    def constant(self, n: Node) -> Bound:
        self.z = None
        b = const_bound(n.attr("value"), ())
        if not self.ctx(n).rounds:
            b.e = np.zeros_like(b.e)
        return b

    def literal(self, n: Node) -> Bound:
        self.z = None
        v = as_f64(literal_array(self.graph.field_def, n, None))
        v32 = np.asarray(v.astype(np.float32), dtype=np.float64)
        e = _up(np.abs(v32 - v)) if self.ctx(n).rounds else np.zeros_like(v)
        return Bound(v, v.copy(), np.where(v32 == v, 0.0, e))

    def op(self, n: Node, args: list[Bound]) -> Bound:
        self.z = None
        smag = None
        real = self.real
        if self.first and real is not None:
            if is_structural(n.op) and all(_exact_point(real.zonos[i]) for i in n.args):
                # moving exact values (a transposed weight) gives exact values: the
                # moved lower ends, with no symbols to gather
                b = bound_rule(n.op, args, n.attr_dict, self.ctx(n))
                self.z = zono.point(b.lo)
                return b
            self.z, smag = _real_step(real, n, args, self.mode)
            if smag is not None:
                real.smag[n.id] = smag
        elif real is not None:
            smag = real.smag.get(n.id)
        return bound_rule(n.op, args, n.attr_dict, self.ctx(n), smag)

    def finish(self, n: Node, b: Bound) -> Bound:
        real = self.real
        if real is not None:
            if self.first:
                z = self.z
                if z is None:  # no linear rule: start afresh from the interval
                    z = zono.from_interval(b.lo, b.hi, real.syms, fresh=n.op != "literal")
                    # whose hull contains [b.lo, b.hi]: the intersection is b's interval
                    real.hulls.append((b.lo, b.hi))
                elif not n.is_leaf and not n.is_constant and is_structural(n.op):
                    # the zonotope's rows are the arguments' rows moved, so its hull is
                    # their hulls moved, which contain the moved intervals b
                    real.hulls.append((b.lo, b.hi))
                else:
                    real.hulls.append(zono.hull(z))
                real.zonos.append(z)
            zlo, zhi = real.hulls[n.id]
            if n.op == "param" or (zlo is b.lo and zhi is b.lo) or (zlo is b.lo and zhi is b.hi):
                # a weight, or an exact point whose hull is its own value (b.hi = b.lo
                # there), or b's own interval: the intersection is b itself
                pass
            else:
                b = Bound(np.maximum(b.lo, zlo), np.minimum(b.hi, zhi), b.e, b.local)
            if np.any(b.lo > b.hi):  # two sound enclosures of one real value cannot miss
                raise AssertionError(f"{self.graph.describe(n)}: disjoint real enclosures")
        if n.op == "param":  # finite binary32 numbers (params32): never an overflow
            return b
        if _may_overflow(b):
            raise RoundingBoundError(f"{self.graph.describe(n)}: a value may reach the "
                                     "binary32 overflow threshold 2^128 - 2^103 inside the box")
        return b


def _exact_point(z: zono.Zono | None) -> bool:
    """Whether z is an exact real value with no symbols (a weight, say)."""
    return z is not None and z.g.shape[-1] == 0 and not np.any(z.r)


def _may_overflow(b: Bound) -> bool:
    """Whether up(|value| + e) may reach OVERFLOW somewhere, or e is NaN."""
    if b.lo.size and not np.any(b.e):  # e = 0: the largest |value| decides (up is monotone)
        top = np.max(np.array([-b.lo.min(), b.lo.max(), -b.hi.min(), b.hi.max()]))
        if not np.isnan(top):  # (a NaN enclosure takes the elementwise test)
            return bool(_up(top) >= OVERFLOW)
    return bool(np.any(_up(b.mag + b.e) >= OVERFLOW) or np.any(np.isnan(b.e)))


def check_rules(graph: Graph) -> None:
    """Refuse, before any work, a graph with an op the rounding rules do not handle."""
    ELEMENTWISE_RULES.check_ops((n for n in graph.nodes if not n.is_leaf and not n.is_constant),
                                describe=lambda n: graph.describe(graph.nodes[n.id]))


def propagate_elementwise(graph: Graph, params: dict[str, Arr],
                          boxes: dict[str, tuple[Arr, Arr]], mode: str, u: float,
                          inputs_are_float32: bool, only: int | None = None,
                          real: RealPass | None = None) -> list[Bound]:
    """Bounds for every node; `only` = the single node allowed to round (attribution).
    `real` is the zonotope pass: filled in when empty, reused when given filled."""
    env = _ElementwisePass(graph, params, boxes, mode, u, inputs_are_float32, only,
                           real).run()
    if real is not None:
        real.zonos = []  # only the hulls and partial sums are reused
    return env


class _AffinePass(GraphInterpreter[Form]):
    """The affine pass over the elementwise pass's enclosures `env` (and matmul
    partial-sum bounds `smag`, by node)."""

    def __init__(self, graph: Graph, env: list[Bound], mode: str, u: float,
                 smag: Mapping[int, Arr]) -> None:
        super().__init__(graph)
        self.bounds, self.mode, self.u, self.smag = env, mode, u, smag

    def leaf(self, node: Node) -> Form:
        return self.form(node, fresh(node.id, self.bounds[node.id].e))  # its own rounding

    def constant(self, node: Node) -> Form:
        return self.leaf(node)

    def literal(self, node: Node) -> Form:
        return self.leaf(node)

    def op(self, n: Node, args: list[Form]) -> Form:
        c = Ctx(self.mode, self.u, True, self.graph.describe(n))
        # error-free arguments: the elementwise pass's bound is the op's own rounding on
        # them (the same rule on the same arrays), so the affine rule need not redo it
        exact_args = not any(np.any(self.bounds[i].e) for i in n.args)
        known = self.bounds[n.id].e if exact_args else None
        if known is None and self.bounds[n.id].local is not None and \
                all(np.array_equal(f.e, self.bounds[i].e) for f, i in zip(args, n.args,
                                                                          strict=True)):
            # the elementwise pass bounded the op's own rounding apart (a matmul's split
            # fold) for computed arguments within these very errors
            known = self.bounds[n.id].local
        step = AffineStep(n.op, n.id, args, n.attr_dict, c, tuple(n.shape), self.smag.get(n.id),
                          known)
        blocks = AFFINE_RULES.get(n.op, c.where)(step)
        if n.op == "reshape":  # the same coefficients in the same order: sum |c| per element
            # is the argument's, so its e (the smaller of that and its elementwise e,
            # which the reshape's elementwise e is, moved) stands, bit for bit
            el = self.bounds[n.id]
            moved = None if args[0].lin_sum is None else args[0].lin_sum.reshape(el.e.shape)
            return Form(el.lo, el.hi, np.minimum(args[0].e.reshape(el.e.shape), el.e), blocks,
                        moved)
        return self.form(n, blocks)

    def form(self, n: Node, blocks: Blocks) -> Form:
        el = self.bounds[n.id]
        # no symbols: no error (a weight); the minimum with el.e would be 0 as well
        if not blocks:
            return Form(el.lo, el.hi, np.zeros(el.e.shape), blocks)
        total = lin(blocks, tuple(n.shape))
        return Form(el.lo, el.hi, np.minimum(total, el.e), blocks, total)


def propagate_affine(graph: Graph, env: list[Bound], mode: str, u: float,
                      smag: Mapping[int, Arr] | None = None) -> list[Form]:
    """The affine pass over the elementwise pass's enclosures `env` (and matmul
    partial-sum bounds `smag`, by node)."""
    return _AffinePass(graph, env, mode, u, smag or {}).run()
