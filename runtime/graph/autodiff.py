"""The backward graph: reverse-mode differentiation of a graph, built from the VJP rules.

The forward graph is replayed onto a builder as `Var`s; then, walking the nodes in
reverse, each op's VJP rule (written with ops) is applied to Vars, which records the
backward computation in the same graph. The walk is the eager tape's
(`runtime.reverse.accumulate`: same seed, same order, same accumulation `previous +
new`), so the gradients are the same computation as `autograd.grad` and agree bit for
bit.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import functional as F
from ...spec.errors import ShapeError
from ...spec.ops import OPS
from ...spec.value import Value
from ..reverse import NotDifferentiableError, Pass, accumulate, node_cotangents
from .interpreter import GraphInterpreter
from .ir import Graph, GraphError, Node
from .tracing import GraphBuilder, Var

__all__ = ["grad_graph", "NotDifferentiableError", "grad_name"]


def grad_name(name: str) -> str:
    """The output name `grad_graph` gives the gradient with respect to leaf `name`."""
    return f"grad:{name}"


def grad_graph(graph: Graph, wrt: Sequence[str], *, loss: str | None = None) -> Graph:
    """`graph` extended with the gradient of its scalar output `loss` with respect to the
    leaves named in `wrt` (parameters or inputs).

    The result keeps the original outputs and adds one output `grad:<name>` per entry of
    `wrt`, in order. `loss` may be omitted when the graph has one output. Piecewise-constant
    ops pass no gradient; an op without a VJP rule on the path raises
    NotDifferentiableError naming the node. Run `passes.simplify` afterwards to drop what
    the VJP rules computed for operands that need no gradient.
    """
    if loss is None:
        if len(graph.outputs) != 1:
            names = ", ".join(n for n, _ in graph.outputs)
            raise ValueError(f"grad_graph: the graph has several outputs ({names}); "
                             "say which is the loss with loss=")
        loss = graph.outputs[0][0]
    loss_node = graph.output(loss)
    if loss_node.shape != ():
        raise ShapeError(f"grad_graph: the loss {loss!r} (node %{loss_node.id}) must be a "
                         f"scalar of shape (), got {loss_node.shape}")
    leaf_ids = [graph.leaf(name).id for name in wrt]
    if len(set(leaf_ids)) != len(leaf_ids):
        raise ValueError(f"grad_graph: repeated names in wrt {list(wrt)}")
    taken = {n for n, _ in graph.outputs}
    for name in wrt:
        if grad_name(name) in taken:
            raise GraphError(f"grad_graph: the graph already has an output {grad_name(name)!r}")

    builder = GraphBuilder(graph.field_def)
    vars_ = _Replay(graph, builder).run()

    # Nodes that depend on a differentiated leaf; only they receive cotangents.
    active = set(leaf_ids)
    for n in graph.nodes:
        if any(a in active for a in n.args):
            active.add(n.id)

    def visit(i: int, g: Value) -> Pass[Value]:
        n = graph.nodes[i]
        if n.is_leaf:
            return None
        if n.is_constant:
            return (), ()
        parents = tuple(a if a in active else None for a in n.args)
        needs = tuple(p is not None for p in parents)
        grads = node_cotangents(OPS[n.op], g, tuple(vars_[a] for a in n.args), vars_[n.id],
                                n.attr_dict, None if all(needs) else needs,
                                f"node %{n.id} ({n.op})")
        return parents, grads

    leaf_cts: dict[int, Value] = {}
    if loss_node.id in active:
        leaf_cts = accumulate(loss_node.id, vars_[loss_node.id]._lift(1), visit)

    outputs = [(name, vars_[i]) for name, i in graph.outputs]
    for name, i in zip(wrt, leaf_ids, strict=True):
        ct = leaf_cts.get(i)
        outputs.append((grad_name(name), _as_var(ct if ct is not None else F.zeros_like(vars_[i]))))
    return builder.finish(outputs)


class _Replay(GraphInterpreter[Var]):
    """The forward graph re-recorded node by node on a builder, as Vars."""

    def __init__(self, graph: Graph, builder: GraphBuilder) -> None:
        super().__init__(graph)
        self.builder = builder

    def leaf(self, node: Node) -> Var:
        return self.builder.copy(node, [])

    def constant(self, node: Node) -> Var:
        return self.builder.copy(node, [])

    def literal(self, node: Node) -> Var:
        return self.builder.copy(node, [])

    def op(self, node: Node, args: list[Var]) -> Var:
        return self.builder.copy(node, args)


def _as_var(v: Value) -> Var:
    assert isinstance(v, Var)
    return v
