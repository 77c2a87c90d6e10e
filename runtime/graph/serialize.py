"""Graph <-> JSON text, versioned and exact.

Schema (version 1):

    {"format": "torchlean.graph", "version": 1, "field": "float32",
     "nodes": [{"id": 0, "op": "input", "shape": [4, 3], "name": "x"},
               {"id": 1, "op": "const", "shape": [], "value": {"float": "0x1.0p-1"}},
               {"id": 2, "op": "literal", "shape": [2], "data": ["0x1.8p+0", "-0x1.0p+2"]},
               {"id": 3, "op": "mul", "shape": [4, 3], "args": [0, 1], "attrs": {}}],
     "outputs": [{"name": "y", "id": 3}]}

Attribute and constant values use `encoding.encode_value`; literal items the field's
exact notation. Reading parses only (no eval), checks the structure, and re-derives every
node's shape from its op's shape rule: a document from a newer version or with malformed
content raises DataFormatError, one whose shapes lie raises ShapeError naming the node.
"""

from __future__ import annotations

from typing import Any

from ...spec import strict_json
from ...spec.errors import DataFormatError
from ...spec.fields import get_field
from ...spec.ops import OPS
from .encoding import Literal, decode_literal, decode_value
from .ir import Graph, GraphError, Node, freeze_attrs
from .json_text import FORMAT, VERSION, to_json
from .passes import check_shapes

__all__ = ["FORMAT", "VERSION", "to_json", "from_json"]

_WHERE = "graph JSON"




def _expect(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise DataFormatError(where, message)


def _int(value: Any, where: str, minimum: int = 0) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            where, f"expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    _expect(isinstance(value, list), where, f"expected a list of dims, got {value!r}")
    return tuple(_int(d, f"{where}[{i}]") for i, d in enumerate(value))


def _keys(obj: Any, required: set[str], where: str) -> None:
    _expect(isinstance(obj, dict), where, f"expected an object, got {type(obj).__name__}")
    have = set(obj)
    _expect(required <= have, where, f"missing key(s) {sorted(required - have)}")
    _expect(have <= required, where, f"unexpected key(s) {sorted(have - required)}")


def _parse_node(i: int, obj: Any, field_name: str) -> Node:
    where = f"{_WHERE}: nodes[{i}]"
    _expect(isinstance(obj, dict), where, "expected an object")
    op = obj.get("op")
    _expect(isinstance(op, str), f"{where}.op", f"expected an op tag, got {op!r}")
    extra = {"input": {"name"}, "param": {"name"}, "const": {"value"}, "literal": {"data"}}
    _keys(obj, {"id", "op", "shape"} | extra.get(op, {"args", "attrs"}), where)
    node_id = _int(obj["id"], f"{where}.id")
    _expect(node_id == i, f"{where}.id", f"id {node_id} differs from its position {i}")
    shape = _shape(obj["shape"], f"{where}.shape")
    if op in ("input", "param"):
        name = obj["name"]
        _expect(isinstance(name, str) and bool(name), f"{where}.name", "expected a name")
        return Node(i, op, (), (("name", name),), shape)
    if op == "const":
        return Node(i, op, (), (("value", decode_value(obj["value"], f"{where}.value")),), shape)
    if op == "literal":
        data = obj["data"]
        _expect(isinstance(data, list) and all(isinstance(t, str) for t in data),
                f"{where}.data", "expected a list of strings")
        lit = Literal(tuple(data))
        decode_literal(get_field(field_name), lit, shape, f"{where}.data")  # validates items
        return Node(i, op, (), (("data", lit),), shape)
    _expect(op in OPS, f"{where}.op", f"unknown op tag {op!r}")
    args = obj["args"]
    _expect(isinstance(args, list), f"{where}.args", "expected a list of node ids")
    attrs = obj["attrs"]
    _expect(isinstance(attrs, dict), f"{where}.attrs", "expected an object")
    decoded = {k: decode_value(v, f"{where}.attrs.{k}") for k, v in attrs.items()}
    arg_ids = tuple(_int(a, f"{where}.args[{k}]") for k, a in enumerate(args))
    return Node(i, op, arg_ids, freeze_attrs(decoded), shape)


def from_json(text: str | bytes) -> Graph:
    """Parse JSON written by `to_json` (see the module docstring for what is rejected;
    the JSON itself is read by `spec.strict_json`, so bad JSON names its line and column)."""
    doc = strict_json.loads(text, _WHERE)
    _expect(isinstance(doc, dict), _WHERE, "expected a JSON object at the top level")
    _expect(doc.get("format") == FORMAT, f"{_WHERE}: format",
            f"expected {FORMAT!r}, got {doc.get('format')!r}")
    version = doc.get("version")
    _expect(isinstance(version, int) and not isinstance(version, bool), f"{_WHERE}: version",
            f"expected an integer version, got {version!r}")
    if version > VERSION:
        raise DataFormatError(f"{_WHERE}: version", f"version {version} is newer than this "
                              f"TorchLean reads (up to {VERSION}); upgrade TorchLean")
    _expect(version >= 1, f"{_WHERE}: version", f"unknown version {version}")
    _keys(doc, {"format", "version", "field", "nodes", "outputs"}, _WHERE)
    field_name = doc["field"]
    _expect(isinstance(field_name, str), f"{_WHERE}: field", "expected a field name")
    try:
        get_field(field_name)
    except ValueError as e:
        raise DataFormatError(f"{_WHERE}: field", str(e)) from None
    nodes = doc["nodes"]
    _expect(isinstance(nodes, list), f"{_WHERE}: nodes", "expected a list")
    outputs = doc["outputs"]
    _expect(isinstance(outputs, list), f"{_WHERE}: outputs", "expected a list")
    parsed = tuple(_parse_node(i, obj, field_name) for i, obj in enumerate(nodes))
    outs = []
    for k, obj in enumerate(outputs):
        where = f"{_WHERE}: outputs[{k}]"
        _keys(obj, {"name", "id"}, where)
        _expect(isinstance(obj["name"], str), f"{where}.name", "expected a string")
        outs.append((obj["name"], _int(obj["id"], f"{where}.id")))
    try:
        graph = Graph(field_name, parsed, tuple(outs))
        check_shapes(graph)  # a shape lie raises ShapeError naming the node
    except GraphError as e:
        raise DataFormatError(_WHERE, str(e)) from None
    return graph
