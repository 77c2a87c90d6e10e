"""One run loop over a graph (`GraphInterpreter`), and the reference executor built on it.

`GraphInterpreter` visits the nodes in order and hands each to a hook: `leaf` (inputs and
parameters), `constant` (0-d `const` nodes), `literal` (constant arrays) and `op` (op
nodes, with their arguments' values); `finish` sees every value before it is stored.
Analyses (rounding bounds, ...) subclass it and specialise the hooks, as torch.fx's
`Interpreter` does, so inputs, constants and literals are told apart in one place.

`interpret` evaluates each op node with `spec.ops.apply` on concrete `Tensor`s, exactly
what an eager run does, so it works over every field and agrees with eager bit for bit.
Constants are lifted with the field's `constant` in the namespace and device of the
first leaf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import numpy as np

from ...spec.errors import FieldMismatchError, ShapeError
from ...spec.fields import Field, NativeFloatField, get_field
from ...spec.fields.base import Array
from ...spec.ops import apply
from ...spec.tensor import Tensor
from .encoding import decode_literal
from .ir import Graph, Node

__all__ = ["GraphInterpreter", "interpret", "bind_leaves", "literal_array"]

T = TypeVar("T")


class GraphInterpreter(Generic[T]):
    """Runs over a graph's nodes in order, one value of type T per node (`env[node.id]`);
    subclasses define the hooks their graphs need (an unhandled kind of node raises)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.env: list[T] = []

    def run(self) -> list[T]:
        """Every node's value, in node order."""
        env: list[T] = []
        self.env = env
        for n in self.graph.nodes:
            if n.is_leaf:
                value = self.leaf(n)
            elif n.op == "const":
                value = self.constant(n)
            elif n.op == "literal":
                value = self.literal(n)
            else:
                value = self.op(n, [env[a] for a in n.args])
            env.append(self.finish(n, value))
        return env

    def leaf(self, node: Node) -> T:
        """The value of an input or parameter."""
        raise NotImplementedError(f"{type(self).__name__}: no rule for {node.op} nodes")

    def constant(self, node: Node) -> T:
        """The value of a 0-d `const` node (`node.attr("value")`)."""
        raise NotImplementedError(f"{type(self).__name__}: no rule for const nodes")

    def literal(self, node: Node) -> T:
        """The value of a `literal` node (a constant array)."""
        raise NotImplementedError(f"{type(self).__name__}: no rule for literal nodes")

    def op(self, node: Node, args: list[T]) -> T:
        """The value of an op node from its arguments' values."""
        raise NotImplementedError(f"{type(self).__name__}: no rule for op nodes")

    def finish(self, node: Node, value: T) -> T:
        """What is stored for `node` (by default `value` itself)."""
        return value


def literal_array(field: Field, node: Any, like: Array | None) -> Array:
    """A literal node's value, in the namespace and device of `like` for native fields."""
    host = decode_literal(field, node.attr("data"), node.shape, f"literal %{node.id}")
    if like is None or not isinstance(field, NativeFloatField) or isinstance(
        like, (np.ndarray, np.generic)
    ):
        return host
    xp = field.xp(like)
    return xp.asarray(host, dtype=field.dtype(xp), device=like.device)


def bind_leaves(graph: Graph, values: Mapping[str, Any], field: Field) -> list[Array]:
    """The arrays for the graph's leaves, in leaf order, from `values` (Tensors of `field`
    or raw data the field converts); missing, extra or mis-shaped values raise."""
    leaves = graph.leaves
    names = {n.name for n in leaves}
    extra = set(values) - names
    missing = names - set(values)
    if extra or missing:
        raise KeyError(
            f"graph leaves are {sorted(names)}; missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
    out = []
    for n in leaves:
        v = values[n.name]
        if isinstance(v, Tensor):
            if v.field is not field:
                raise FieldMismatchError(
                    f"{n.op} {n.name!r}: a tensor of field {v.field}, the graph runs in {field}"
                )
            arr = v.data
        else:
            arr = field.asarray(v)
        shape = field.shape_of(arr)
        if shape != n.shape:
            raise ShapeError(f"{n.op} {n.name!r}: expected shape {n.shape}, got {shape}")
        out.append(arr)
    return out


def interpret(
    graph: Graph, values: Mapping[str, Any], *, field: str | Field | None = None
) -> dict[str, Tensor]:
    """Run `graph` on the named leaf values and return its named outputs.

    `field` defaults to the graph's; another field is allowed when the graph holds no
    literals (a traced graph is field-generic: constants are lifted as eager lifts them).
    """
    fld = graph.field_def if field is None else get_field(field)
    if fld.name != graph.field and any(n.op == "literal" for n in graph.nodes):
        raise FieldMismatchError(
            f"the graph holds literals of field {graph.field}; it cannot run in {fld.name}"
        )
    env = _Evaluate(graph, fld, bind_leaves(graph, values, fld)).run()
    return {name: env[i] for name, i in graph.outputs}


class _Evaluate(GraphInterpreter[Tensor]):
    """The reference executor's hooks: leaves bound in order, constants lifted like the
    first leaf, ops applied through the op table."""

    def __init__(self, graph: Graph, fld: Field, arrays: list[Array]) -> None:
        super().__init__(graph)
        self.fld = fld
        self.like = arrays[0] if arrays else None
        self.leaf_values = iter(arrays)

    def leaf(self, node: Node) -> Tensor:
        return Tensor(next(self.leaf_values), self.fld)

    def constant(self, node: Node) -> Tensor:
        return Tensor(self.fld.constant(node.attr("value"), like=self.like), self.fld)

    def literal(self, node: Node) -> Tensor:
        return Tensor(literal_array(self.fld, node, self.like), self.fld)

    def op(self, node: Node, args: list[Tensor]) -> Tensor:
        t = apply(node.op, args[0], *args[1:], **node.attr_dict)
        if t.shape != node.shape:
            raise ShapeError(f"node %{node.id} ({node.op}): computed shape {t.shape}, the "
                             f"graph declares {node.shape}")
        return t
