"""A graph as JSON text (the writing side of `serialize`, which documents the schema):
kept apart from the reader so that `Graph.to_json` and `Graph.fingerprint` need nothing
that imports the IR."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .encoding import Literal, encode_value

if TYPE_CHECKING:
    from .ir import Graph, Node

__all__ = ["FORMAT", "VERSION", "to_json"]

FORMAT = "torchlean.graph"
VERSION = 1


def _node_json(n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"id": n.id, "op": n.op, "shape": list(n.shape)}
    if n.is_leaf:
        out["name"] = n.name
    elif n.op == "const":
        out["value"] = encode_value(n.attr("value"))
    elif n.op == "literal":
        lit: Literal = n.attr("data")
        out["data"] = list(lit.items)
    else:
        out["args"] = list(n.args)
        out["attrs"] = {k: encode_value(v) for k, v in n.attrs}
    return out


def to_json(g: Graph, indent: int | None = 1) -> str:
    """The graph as JSON text (schema in the module docstring): one node per line, or
    compact on one line when `indent` is None."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "field": g.field,
        "nodes": [_node_json(n) for n in g.nodes],
        "outputs": [{"name": name, "id": i} for name, i in g.outputs],
    }
    if indent is None:
        return json.dumps(doc, sort_keys=True, allow_nan=False, separators=(",", ":"))
    # One node per line: readable and diff-friendly, still plain JSON.
    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, allow_nan=False)

    pad = " " * indent
    nodes = f",\n{pad}{pad}".join(dump(n) for n in doc["nodes"])
    outs = f",\n{pad}{pad}".join(dump(o) for o in doc["outputs"])
    head = ", ".join(f"{dump(k)}: {dump(doc[k])}" for k in ("format", "version", "field"))
    return (f"{{{head},\n{pad}\"nodes\": [\n{pad}{pad}{nodes}\n{pad}],\n"
            f"{pad}\"outputs\": [\n{pad}{pad}{outs}\n{pad}]}}\n")
