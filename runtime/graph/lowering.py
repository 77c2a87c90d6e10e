"""Lowering a graph to straight-line Python for one leaf signature (shapes, dtype, layout).

Two modes, both generated as source text from our own node records only (every value
that is not an identifier is bound as a global of the generated code) and compiled once
with `compile()`:

- `buffered` (fields `float` / `float32` on NumPy arrays): each op is the NumPy call its
  field primitive makes, written into a buffer allocated once per signature and reused
  on every call (`out=`). Buffers get the memory layout eager produced for that node
  (learned from one reference run), since NumPy's summation order and vector paths
  depend on layout. A liveness plan lets a buffer serve several nodes in turn, and a
  simple elementwise op writes over its operand's buffer when that operand dies there,
  so an elementwise chain runs in one buffer (the NumPy form of fusing; the numbers are
  unchanged because each op still rounds exactly as eager's op). Outputs are written to
  fresh arrays on every call, so results never alias the reused buffers.
- `calls` (every other field or namespace): each op is its forward rule called directly
  on the field's arrays, which is exactly eager minus the per-op dispatch and checks.
- `fused` (fields `float` / `float32` on CuPy arrays): groups of elementwise ops
  (`fusion.plan_fusion`) each run as one kernel (`cuda_kernels`) writing into output
  buffers allocated once per signature (with eager's layout, learned from one reference
  run); every other op is called as in `calls`. Kernels are run by a `KernelRunner`
  (CuPy's by default; tests inject one that runs the same C text on the CPU).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ...spec.fields import Field, NativeFloatField
from ...spec.fields.base import Array
from ...spec.ops import OPS
from .cuda_kernels import KernelRunner, can_fuse, cupy_runner, kernel_source
from .fusion import FusionGroup, plan_fusion
from .interpreter import GraphInterpreter, literal_array
from .ir import Graph, Node
from .numpy_kernels import BUFFERED, FALLBACK, IN_PLACE, VIEWS, EmitContext

__all__ = ["Program", "lower", "probe_values", "Mode"]

Mode = Literal["buffered", "calls", "fused"]


def probe_values(graph: Graph, field: Field, arrays: Sequence[Array]) -> list[Any]:
    """Every node's value on the given leaf arrays, computed as eager computes it."""
    return _Probe(graph, field, arrays).run()


class _Probe(GraphInterpreter[Any]):
    """Field arrays per node: leaves in order, constants lifted like the first leaf, ops by
    their forward rules."""

    def __init__(self, graph: Graph, field: Field, arrays: Sequence[Array]) -> None:
        super().__init__(graph)
        self.field = field
        self.like = arrays[0] if arrays else None
        self.leaves = iter(arrays)

    def leaf(self, node: Node) -> Any:
        return next(self.leaves)

    def constant(self, node: Node) -> Any:
        return self.field.constant(node.attr("value"), like=self.like)

    def literal(self, node: Node) -> Any:
        return literal_array(self.field, node, self.like)

    def op(self, node: Node, args: list[Any]) -> Any:
        return OPS[node.op].forward(self.field, tuple(args), node.attr_dict)


def copy_out(value: Any) -> Any:
    """A fresh copy of an array of any namespace (NumPy scalars become 0-d arrays)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.array(value, copy=True)
    return value.__array_namespace__().asarray(value, copy=True)


class Program:
    """A graph compiled for one leaf signature; `run(arrays)` returns the outputs."""

    def __init__(self, graph: Graph, field: Field, mode: Mode, source: str,
                 namespace: dict[str, Any]) -> None:
        self.graph = graph
        self.field = field
        self.mode = mode
        self.source = source
        code = compile(source, f"<torchlean graph {graph.fingerprint[:12]} {mode}>", "exec")
        exec(code, namespace)  # our own generated code (see the module docstring)
        self._fn = namespace["program"]
        self._lock = threading.Lock()  # the buffers are shared state

    def run(self, arrays: Sequence[Array]) -> tuple[Any, ...]:
        """The graph's outputs (in `graph.outputs` order) for these leaf arrays."""
        with self._lock:
            out: tuple[Any, ...] = self._fn(*arrays)
        return out


class _Plan:
    """Buffer assignment for `buffered` mode: which nodes own, share or alias buffers."""

    def __init__(self, graph: Graph, probes: list[Any]) -> None:
        n_nodes = len(graph.nodes)
        self.outputs = {i for _, i in graph.outputs}
        last_use = [-1] * n_nodes
        for n in graph.nodes:
            for a in n.args:
                last_use[a] = n.id
        for i in self.outputs:
            last_use[i] = n_nodes
        # roots[i]: the nodes whose storage value i may share (itself when it owns a buffer
        # or is a leaf / constant; its operands' roots when it is a view or a fallback).
        self.kind: list[str] = []
        self.roots: list[frozenset[int]] = []
        for n in graph.nodes:
            if n.is_leaf or n.is_constant:
                kind, roots = "fixed", frozenset({n.id})
            elif n.op in BUFFERED:
                kind, roots = "buffered", frozenset({n.id})
            elif n.op in VIEWS:
                kind, roots = "view", self.roots[n.args[0]]
            else:
                kind, roots = "fallback", frozenset().union(*(self.roots[a] for a in n.args))
            self.kind.append(kind)
            self.roots.append(roots)
        self.live_end = [-1] * n_nodes
        for i, roots in enumerate(self.roots):
            for r in roots:
                self.live_end[r] = max(self.live_end[r], last_use[i])
        self.probes = probes

    def spec(self, i: int) -> tuple[Any, ...]:
        p = np.asarray(self.probes[i])
        return (p.shape, p.dtype.str, p.strides)


def _lower_buffered(graph: Graph, field: NativeFloatField, arrays: Sequence[Array]) -> Program:
    probes = probe_values(graph, field, arrays)
    plan = _Plan(graph, probes)
    ns: dict[str, Any] = {"np": np, "FLD": field, "_copy": copy_out, "_empty": np.empty_like}
    body: list[str] = []
    pool: dict[tuple[Any, ...], list[str]] = {}
    buffer_of: dict[int, str] = {}
    freed: set[int] = set()
    n_buffers = 0
    for n in graph.nodes:
        var = f"v{n.id}"
        kind = plan.kind[n.id]
        if kind == "fixed":
            if n.is_constant:
                ns[var] = probes[n.id]  # lifted once, as eager lifts it; read as a global
            continue
        args = [f"v{a}" for a in n.args]
        attrs = n.attr_dict
        if kind == "buffered":
            if n.id in plan.outputs:
                out = f"o{n.id}"
                ns[f"T{n.id}"] = np.empty_like(np.asarray(probes[n.id]))
                body.append(f"{out} = _empty(T{n.id})")
            else:
                taken = _take_buffer(n.id, n.op, n.args, plan, pool, buffer_of, freed)
                if taken is None:
                    taken = f"B{n_buffers}"
                    n_buffers += 1
                    buffer_of[n.id] = taken
                    ns[taken] = np.empty_like(np.asarray(probes[n.id]))
                out = taken
            ctx = EmitContext(n, field, args, [probes[a] for a in n.args], var, out, ns, attrs)
            try:
                body.extend(BUFFERED[n.op](ctx))
            except FALLBACK:
                plan.kind[n.id] = "fallback"
                body.append(_call_line(n.id, n.op, args, attrs, ns))
        elif kind == "view":
            ctx = EmitContext(n, field, args, [probes[a] for a in n.args], var, "", ns, attrs)
            body.extend(VIEWS[n.op](ctx))
        else:
            body.append(_call_line(n.id, n.op, args, attrs, ns))
        _release(n.id, n.args, plan, pool, buffer_of, freed)
    returns = []
    for _, i in graph.outputs:
        if plan.kind[i] == "buffered":
            returns.append(f"o{i}")
        else:
            returns.append(f"_copy(v{i})")
    leaves = ", ".join(f"v{n.id}" for n in graph.leaves)
    source = "\n".join([
        f"def program({leaves}):",
        "    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):",
        *(f"        {line}" for line in body),
        f"        return ({''.join(r + ', ' for r in returns)})",
    ])
    return Program(graph, field, "buffered", source, ns)


def _take_buffer(node_id: int, op: str, args: tuple[int, ...], plan: _Plan,
                 pool: dict[tuple[Any, ...], list[str]], buffer_of: dict[int, str],
                 freed: set[int]) -> str | None:
    """The buffer node `node_id` writes: its dying first operand's (in place) or a free
    one of the same layout; None when a new one is needed."""
    spec = plan.spec(node_id)
    if op in IN_PLACE and args:
        a = args[0]
        others = [plan.roots[b] for b in args[1:]]
        if (plan.kind[a] == "buffered" and a in buffer_of and a not in plan.outputs
                and plan.live_end[a] == node_id and plan.spec(a) == spec
                and all(a not in r for r in others)):
            freed.add(a)
            buffer_of[node_id] = buffer_of[a]
            return buffer_of[a]
    free = pool.get(spec)
    if not free:
        return None
    buffer_of[node_id] = free.pop()
    return buffer_of[node_id]


def _release(node_id: int, args: tuple[int, ...], plan: _Plan,
             pool: dict[tuple[Any, ...], list[str]], buffer_of: dict[int, str],
             freed: set[int]) -> None:
    """Return to the pool the buffers whose last reader was node `node_id`."""
    candidates = set(plan.roots[node_id]).union(*(plan.roots[a] for a in args))
    for r in sorted(candidates):
        if (r in buffer_of and r not in freed and r not in plan.outputs
                and plan.live_end[r] <= node_id):
            freed.add(r)
            pool.setdefault(plan.spec(r), []).append(buffer_of[r])


def _call_line(node_id: int, op: str, args: list[str], attrs: dict[str, Any],
               ns: dict[str, Any]) -> str:
    ns[f"F{node_id}"] = OPS[op].forward
    ns[f"A{node_id}"] = attrs
    return f"v{node_id} = F{node_id}(FLD, ({''.join(a + ', ' for a in args)}), A{node_id})"


def _straight_line(graph: Graph, field: Field, mode: Mode, body: list[str],
                   aliases_fixed: list[bool], ns: dict[str, Any]) -> Program:
    """The program running `body`, returning the graph's outputs (copied where a value
    is a leaf, a constant or a reused buffer, or a view of one)."""
    returns = [f"_copy(v{i})" if aliases_fixed[i] else f"v{i}" for _, i in graph.outputs]
    leaves = ", ".join(f"v{n.id}" for n in graph.leaves)
    source = "\n".join([
        f"def program({leaves}):",
        *(f"    {line}" for line in body),
        f"    return ({''.join(r + ', ' for r in returns)})",
    ])
    return Program(graph, field, mode, source, ns)


def _lower_calls(graph: Graph, field: Field, arrays: Sequence[Array]) -> Program:
    like = arrays[0] if arrays else None
    ns: dict[str, Any] = {"FLD": field, "_copy": copy_out}
    body: list[str] = []
    aliases_fixed: list[bool] = []
    for n in graph.nodes:
        args = [f"v{a}" for a in n.args]
        if n.is_leaf:
            aliases_fixed.append(True)
        elif n.is_constant:
            ns[f"v{n.id}"] = field.constant(n.attr("value"), like=like) if (
                n.op == "const") else literal_array(field, n, like)
            aliases_fixed.append(True)
        else:
            body.append(_call_line(n.id, n.op, args, n.attr_dict, ns))
            aliases_fixed.append(n.op in VIEWS and aliases_fixed[n.args[0]])
    return _straight_line(graph, field, "calls", body, aliases_fixed, ns)


def _empty_like(template: Any) -> Any:
    """An uninitialised array with `template`'s shape, dtype, device and memory layout."""
    if isinstance(template, (np.ndarray, np.generic)):
        return np.empty_like(template)
    return template.__array_namespace__().empty_like(template)


def _lower_fused(graph: Graph, field: NativeFloatField, arrays: Sequence[Array],
                 runner: KernelRunner) -> Program:
    probes = probe_values(graph, field, arrays)
    ns: dict[str, Any] = {"FLD": field, "_copy": copy_out, "_empty": _empty_like}
    outputs = {i for _, i in graph.outputs}
    body: list[str] = []
    aliases_fixed = [False] * len(graph.nodes)  # leaf, constant or reused buffer (or a view)
    n_kernels = 0
    for step in plan_fusion(graph, can_fuse).schedule():
        if isinstance(step, FusionGroup):
            if not step.outputs:  # nothing reads it: dead code, as the calls would be
                continue
            body.extend(_kernel_lines(n_kernels, graph, step, field, probes, outputs,
                                      runner, ns))
            n_kernels += 1
            for o in step.outputs:
                aliases_fixed[o] = o not in outputs
            continue
        n = graph.nodes[step]
        if n.is_leaf:
            aliases_fixed[n.id] = True
        elif n.is_constant:
            ns[f"v{n.id}"] = probes[n.id]  # lifted once, as eager lifts it
            aliases_fixed[n.id] = True
        else:
            body.append(_call_line(n.id, n.op, [f"v{a}" for a in n.args], n.attr_dict, ns))
            aliases_fixed[n.id] = n.op in VIEWS and aliases_fixed[n.args[0]]
    return _straight_line(graph, field, "fused", body, aliases_fixed, ns)


def _kernel_lines(k: int, graph: Graph, group: FusionGroup, field: NativeFloatField,
                  probes: list[Any], outputs: set[int], runner: KernelRunner,
                  ns: dict[str, Any]) -> list[str]:
    """Lines running one fused group: graph outputs get a fresh array per call, every
    other value the group exports a buffer allocated here once."""
    src = kernel_source(graph, group, field)
    ns[f"K{k}"] = runner(src)
    lines: list[str] = []
    outs: list[str] = []
    for o in src.outputs:
        if o in outputs:
            ns[f"T{o}"] = probes[o]
            lines.append(f"v{o} = _empty(T{o})")
        else:
            ns[f"v{o}"] = _empty_like(probes[o])  # a global: the same buffer every call
        outs.append(f"v{o}")
    ins = "".join(f"v{i}, " for i in src.inputs)
    lines.append(f"K{k}(({ins}), ({''.join(o + ', ' for o in outs)}))")
    return lines


def lower(graph: Graph, field: Field, arrays: Sequence[Array], mode: Mode,
          runner: KernelRunner | None = None) -> Program:
    """Compile `graph` for leaf arrays shaped and laid out like `arrays` (which the
    buffered and fused modes evaluate once, as eager would, to learn every buffer's
    layout). `runner` builds the fused mode's kernels (default: CuPy's)."""
    if mode in ("buffered", "fused"):
        if not isinstance(field, NativeFloatField):
            raise ValueError(f"{mode} lowering needs a native float field, not {field}")
        if mode == "fused":
            return _lower_fused(graph, field, arrays, runner or cupy_runner)
        return _lower_buffered(graph, field, arrays)
    return _lower_calls(graph, field, arrays)
