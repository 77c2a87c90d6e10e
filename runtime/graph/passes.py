"""Graph passes: shape and attribute checking, dead-code and common-subexpression
elimination, constant folding.

Every pass returns a new graph (graphs are values) and none changes a result: DCE drops
unused nodes, CSE merges nodes that compute the same op on the same operands (same tag,
attributes and operand ids, so the same numbers), and folding evaluates constant-only
nodes with the graph's own field, exactly as running them would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...spec.errors import ShapeError, TorchLeanError
from ...spec.fields.base import Array
from ...spec.ops import OPS
from ...spec.shapes import size_of
from .encoding import Literal, decode_literal, encode_literal, value_key
from .interpreter import GraphInterpreter
from .ir import Graph, GraphError, Node

__all__ = [
    "check_shapes",
    "eliminate_dead_code",
    "eliminate_common_subexpressions",
    "fold_constants",
    "simplify",
]

# What an attribute kind of `OpDef.attr_schema` accepts; a hand-edited graph with a bad
# attribute is rejected when loaded rather than failing deep inside a field.
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


ATTR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "bool": lambda v: isinstance(v, bool),
    "number": lambda v: not isinstance(v, (bool, str, tuple, Literal)) and v is not None,
    "ints": lambda v: isinstance(v, tuple) and all(_is_int(d) for d in v),
    "spec": lambda v: isinstance(v, tuple) and all(
        isinstance(s, tuple) and len(s) == 3 and all(_is_int(d) for d in s) for s in v
    ),
}


def _check_attrs(n: Node) -> None:
    schema = dict(OPS[n.op].attr_schema)
    have = dict(n.attrs)
    if set(have) != set(schema):
        raise GraphError(f"node %{n.id} ({n.op}): attributes {sorted(have)}, expected "
                         f"{sorted(schema)}")
    for k, kind in schema.items():
        if not ATTR_CHECKS[kind](have[k]):
            raise GraphError(f"node %{n.id} ({n.op}): attribute {k}={have[k]!r} is not {kind}")


def check_shapes(g: Graph) -> None:
    """Re-derive every op node's shape from its op's shape rule and compare it with the
    declared one; a difference raises ShapeError naming the node. Also checks attributes
    against each op's `attr_schema` (GraphError) and that constants are 0-d."""
    _ShapeCheck(g).run()


class _ShapeCheck(GraphInterpreter[None]):
    """Leaves and constants were checked when the graph was built; op nodes here."""

    def leaf(self, node: Node) -> None:
        return None

    def constant(self, node: Node) -> None:
        return None

    def literal(self, node: Node) -> None:
        return None

    def op(self, n: Node, args: list[None]) -> None:
        _check_attrs(n)
        op = OPS[n.op]
        arg_shapes = tuple(self.graph.nodes[a].shape for a in n.args)
        try:
            rule = tuple(op.shape(arg_shapes, n.attr_dict))
        except ShapeError as e:
            raise ShapeError(f"node %{n.id} ({n.op}) on shapes {arg_shapes}: {e}") from None
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise GraphError(f"node %{n.id} ({n.op}): attributes {n.attr_dict} do not fit "
                             f"its shape rule ({type(e).__name__}: {e})") from None
        if rule != n.shape:
            raise ShapeError(f"node %{n.id} ({n.op}): declared shape {n.shape}, but the "
                             f"shape rule of {n.op!r} on {arg_shapes} gives {rule}")


# What evaluating a constant may raise; such a node is left for run time, as eager.
_EVAL_ERRORS = (TorchLeanError, ArithmeticError, ValueError, TypeError)


class _Rebuild:
    """Accumulates nodes with fresh ids; `ids` maps old ids to new ones."""

    def __init__(self, source: Graph) -> None:
        self.nodes: list[Node] = []
        self.ids: dict[int, int] = {}
        self.source_layers = source.layers
        self.layers: list[str] = []

    def add(self, old: Node, **changes: Any) -> int:
        args = tuple(self.ids[a] for a in old.args)
        node = Node(len(self.nodes), changes.get("op", old.op), changes.get("args", args),
                    changes.get("attrs", old.attrs), old.shape)
        self.nodes.append(node)
        if self.source_layers:
            self.layers.append(self.source_layers[old.id])
        self.ids[old.id] = node.id
        return node.id

    def graph(self, g: Graph) -> Graph:
        return Graph(g.field, tuple(self.nodes), tuple((n, self.ids[i]) for n, i in g.outputs),
                     layers=tuple(self.layers))


def eliminate_dead_code(g: Graph) -> Graph:
    """Drop nodes no output depends on (inputs and parameters are always kept: they are
    the graph's signature)."""
    live = {i for _, i in g.outputs}
    for n in reversed(g.nodes):
        if n.id in live:
            live.update(n.args)
    out = _Rebuild(g)
    for n in g.nodes:
        if n.is_leaf or n.id in live:
            out.add(n)
    return out.graph(g)


def _cse_key(n: Node, args: tuple[int, ...]) -> Any:
    attrs = tuple((k, value_key(v)) for k, v in n.attrs)
    return (n.op, args, attrs, n.shape)


def eliminate_common_subexpressions(g: Graph) -> Graph:
    """Merge nodes with the same op, attributes, shape and (merged) operands; equal
    constants merge too. Leaves are never merged."""
    out = _Rebuild(g)
    seen: dict[Any, int] = {}
    for n in g.nodes:
        if n.is_leaf:
            out.add(n)
            continue
        key = _cse_key(n, tuple(out.ids[a] for a in n.args))
        if key in seen:
            out.ids[n.id] = seen[key]
        else:
            seen[key] = out.add(n)
    return out.graph(g)


def fold_constants(g: Graph) -> Graph:
    """Replace op nodes whose operands are all constants by literals holding their value,
    computed by the op's forward rule in the graph's field (so bit-identical to running
    them). A node whose evaluation raises is kept, so the error still happens at run
    time; a node bigger than its largest operand (a broadcast) is kept, so folding never
    materialises a large array. Run `eliminate_dead_code` afterwards to drop the
    constants it leaves unused."""
    folding = _Fold(g)
    folding.run()
    return folding.out.graph(g)


class _Fold(GraphInterpreter[int]):
    """Copies each node into `out` (the value is its new id), a constant-only op node as
    a literal of its value; `values` holds the new ids' known constant values."""

    def __init__(self, g: Graph) -> None:
        super().__init__(g)
        self.field = g.field_def
        self.values: dict[int, Array] = {}
        self.out = _Rebuild(g)

    def leaf(self, n: Node) -> int:
        return self.out.add(n)

    def constant(self, n: Node) -> int:
        new_id = self.out.add(n)
        try:
            self.values[new_id] = self.field.constant(n.attr("value"))
        except _EVAL_ERRORS:
            pass  # e.g. pi over `exact`: left to raise when the graph runs, as eager does
        return new_id

    def literal(self, n: Node) -> int:
        new_id = self.out.add(n)
        self.values[new_id] = decode_literal(self.field, n.attr("data"), n.shape, f"%{n.id}")
        return new_id

    def op(self, n: Node, args: list[int]) -> int:
        values, out = self.values, self.out
        biggest = max((size_of(out.nodes[a].shape) for a in args), default=0)
        if not args or any(a not in values for a in args) or (
            size_of(n.shape) > max(1, biggest)
        ):
            return out.add(n)
        try:
            result = OPS[n.op].forward(self.field, tuple(values[a] for a in args), n.attr_dict)
        except _EVAL_ERRORS:
            return out.add(n)
        if self.field.shape_of(result) != n.shape:
            raise ShapeError(f"node %{n.id} ({n.op}): folding gave shape "
                             f"{self.field.shape_of(result)}, declared {n.shape}")
        new_id = out.add(n, op="literal", args=(),
                         attrs=(("data", encode_literal(self.field, result)),))
        values[new_id] = result
        return new_id


def simplify(g: Graph) -> Graph:
    """CSE, constant folding, CSE again (folded literals may coincide), then DCE."""
    g = eliminate_common_subexpressions(g)
    g = fold_constants(g)
    g = eliminate_common_subexpressions(g)
    return eliminate_dead_code(g)
