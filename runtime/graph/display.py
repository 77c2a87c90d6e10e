"""Human-readable views of a graph: jaxpr-like text and Graphviz DOT."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ...spec.fields.base import SymbolicPi
from .encoding import Literal

if TYPE_CHECKING:
    from .ir import Graph, Node

__all__ = ["pretty", "to_dot", "type_string"]

_ABBREV = {"float": "f64", "float32": "f32", "ieee32exec": "b32", "exact": "q"}


def type_string(field: str, shape: tuple[int, ...]) -> str:
    """`f32[4,3]`-style type of a value of `field` and `shape`."""
    head = _ABBREV.get(field, "iv" if field.startswith("interval") else field)
    return f"{head}[{','.join(str(d) for d in shape)}]"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, SymbolicPi):
        return "pi"
    if isinstance(value, tuple):
        return "(" + ",".join(_show(v) for v in value) + ")"
    if isinstance(value, Literal):
        return repr(value)
    return repr(value)


def _rhs(n: Node) -> str:
    if n.op == "const":
        return f"const {_show(n.attr('value'))}"
    if n.op == "literal":
        return f"literal {_show(n.attr('data'))}"
    args = " ".join(f"%{a}" for a in n.args)
    attrs = " ".join(f"{k}={_show(v)}" for k, v in n.attrs)
    return " ".join(p for p in (n.op, args, attrs) if p)


def pretty(g: Graph) -> str:
    """The graph as text: a header with the leaves, one `%id:type = op args attrs` line per
    node, and the outputs."""
    leaves = " ".join(f"{n.name}=%{n.id}:{type_string(g.field, n.shape)}" for n in g.leaves)
    lines = [f"graph[{g.field}] ({leaves}) {{"]
    for n in g.nodes:
        if n.is_leaf:
            continue
        lines.append(f"  %{n.id}:{type_string(g.field, n.shape)} = {_rhs(n)}")
    outs = ", ".join(f"{name}=%{i}" for name, i in g.outputs)
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines)


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(g: Graph) -> str:
    """The graph as Graphviz DOT: leaves as boxes, constants as plain text, ops as ellipses,
    outputs as double octagons."""
    lines = ["digraph graph_ir {", "  rankdir=LR;"]
    for n in g.nodes:
        shape_text = type_string(g.field, n.shape)
        if n.is_leaf:
            label, style = f"{n.op} {n.name}\\n{shape_text}", "box"
        elif n.is_constant:
            label, style = f"{_rhs(n)}\\n{shape_text}", "plaintext"
        else:
            label, style = f"%{n.id} {n.op}\\n{shape_text}", "ellipse"
        lines.append(f'  n{n.id} [label="{_dot_escape(label)}", shape={style}];')
        for pos, a in enumerate(n.args):
            lines.append(f'  n{a} -> n{n.id} [label="{pos}"];')
    for k, (name, i) in enumerate(g.outputs):
        lines.append(f'  out{k} [label="{_dot_escape(name)}", shape=doubleoctagon];')
        lines.append(f"  n{i} -> out{k};")
    lines.append("}")
    return "\n".join(lines)
