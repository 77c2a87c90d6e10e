"""The graph IR: an op-tagged SSA DAG, immutable and plain (in the spirit of jaxpr / torch.fx).

A `Graph` is a field name, a tuple of `Node`s in topological order and named outputs.
Every value is one node, identified by its position (`node.id == index`):

- `input` / `param` leaves: a name and a shape (`attrs = {"name": ...}`), no args;
- `const`: a 0-d constant `value` (int, float, Fraction or PI), lifted into the field
  when the graph runs, exactly as eager lifts a plain number;
- `literal`: a constant array (captured tensors, folded constants), stored exactly in the
  field's text notation (`encoding.Literal`);
- op nodes: a tag of the op table (`spec.ops.OPS`), its attributes, the ids of its
  tensor inputs and its declared output shape.

Attributes are stored as a sorted tuple of (name, value) pairs so that nodes and graphs
are hashable values. Construction checks structure (ids, argument order, arity, names);
`passes.check_shapes` checks every declared shape against its op's shape rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from fractions import Fraction
from typing import Any

from ...spec.errors import TorchLeanError
from ...spec.fields import Field, get_field
from ...spec.fields.base import SymbolicPi
from ...spec.ops import OPS
from ...spec.ops.registry import AttrValue
from ...spec.shapes import Shape
from . import display, json_text
from .encoding import Literal

__all__ = ["Node", "Graph", "GraphError", "LEAF_OPS", "CONSTANT_OPS", "FrozenAttrs"]

LEAF_OPS = ("input", "param")
CONSTANT_OPS = ("const", "literal")
FrozenAttrs = tuple[tuple[str, AttrValue], ...]


class GraphError(TorchLeanError, ValueError):
    """A structurally invalid graph (bad ids, unknown op, wrong arity, duplicate names)."""


def freeze_attrs(attrs: Mapping[str, AttrValue]) -> FrozenAttrs:
    """Attributes as a sorted tuple of pairs (values must already be immutable)."""
    return tuple(sorted(attrs.items()))


@dataclass(frozen=True, slots=True)
class Node:
    """One SSA value: a leaf, a constant, or an op applied to earlier nodes."""

    id: int
    op: str
    args: tuple[int, ...] = ()
    attrs: FrozenAttrs = ()
    shape: Shape = ()

    def attr(self, name: str) -> AttrValue:
        """The attribute `name` (KeyError if absent)."""
        for k, v in self.attrs:
            if k == name:
                return v
        raise KeyError(f"node %{self.id} ({self.op}) has no attribute {name!r}")

    @property
    def attr_dict(self) -> dict[str, AttrValue]:
        """The attributes as a dict (what op rules take)."""
        return dict(self.attrs)

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAF_OPS

    @property
    def is_constant(self) -> bool:
        return self.op in CONSTANT_OPS

    @property
    def name(self) -> str:
        """A leaf's name ("" for other nodes)."""
        return str(self.attr("name")) if self.is_leaf else ""


@dataclass(frozen=True)
class Graph:
    """A typed op graph over one scalar field: nodes in topological order, named outputs."""

    field: str
    nodes: tuple[Node, ...]
    outputs: tuple[tuple[str, int], ...]
    _fingerprint: list[str] = dc_field(default_factory=list, repr=False, compare=False)
    layers: tuple[str, ...] = dc_field(default=(), repr=False, compare=False)
    """A side table: per node, the layer a tracer saw running when it recorded the node
    ("" for none), or () when unknown. Not part of equality, hashing, JSON or the
    fingerprint: it only lets errors name the layer as well as the node."""

    def __post_init__(self) -> None:
        _validate(self)

    # -- views -------------------------------------------------------------------
    @property
    def field_def(self) -> Field:
        """The field object this graph computes in."""
        return get_field(self.field)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.op == "input")

    @property
    def params(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.op == "param")

    @property
    def leaves(self) -> tuple[Node, ...]:
        """Inputs and parameters, in node order (the order executors take them)."""
        return tuple(n for n in self.nodes if n.is_leaf)

    def leaf(self, name: str) -> Node:
        """The input or parameter called `name`."""
        for n in self.nodes:
            if n.is_leaf and n.name == name:
                return n
        known = ", ".join(n.name for n in self.leaves)
        raise KeyError(f"graph has no input or parameter {name!r}; it has: {known}")

    def output(self, name: str) -> Node:
        """The node of output `name`."""
        for out_name, i in self.outputs:
            if out_name == name:
                return self.nodes[i]
        known = ", ".join(n for n, _ in self.outputs)
        raise KeyError(f"graph has no output {name!r}; it has: {known}")

    @property
    def op_count(self) -> int:
        """Number of op nodes (leaves and constants excluded)."""
        return sum(1 for n in self.nodes if not n.is_leaf and not n.is_constant)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def fingerprint(self) -> str:
        """A SHA-256 of the graph's canonical JSON: equal for equal graphs."""
        if not self._fingerprint:
            text = self.to_json(indent=None)
            self._fingerprint.append(hashlib.sha256(text.encode()).hexdigest())
        return self._fingerprint[0]

    # -- inspection and serialisation (reading: serialize.from_json) -----------------
    def pretty(self) -> str:
        """One line per node, jaxpr-like."""
        return display.pretty(self)

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text."""
        return display.to_dot(self)

    def to_json(self, indent: int | None = 1) -> str:
        """The graph as versioned JSON text that `serialize.from_json` reads back exactly."""
        return json_text.to_json(self, indent=indent)

    def __str__(self) -> str:
        return self.pretty()

    def describe(self, node: Node) -> str:
        """How errors name `node`: "node %3 (matmul)", with " in layer 2 (linear 8->1)"
        where the side table knows its layer."""
        layer = self.layers[node.id] if node.id < len(self.layers) else ""
        where = f"node %{node.id} ({node.op})"
        return f"{where} in {layer}" if layer else where


def _validate(g: Graph) -> None:
    try:
        get_field(g.field)
    except ValueError as e:
        raise GraphError(f"graph field: {e}") from None
    if g.layers and len(g.layers) != len(g.nodes):
        raise GraphError(f"{len(g.layers)} layer entries for {len(g.nodes)} nodes")
    names: set[str] = set()
    for i, n in enumerate(g.nodes):
        where = f"node %{i} ({n.op})"
        if n.id != i:
            raise GraphError(f"{where}: id {n.id} differs from its position {i}")
        if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in n.shape):
            raise GraphError(f"{where}: shape {n.shape} is not a tuple of non-negative ints")
        keys = [k for k, _ in n.attrs]
        if keys != sorted(set(keys)):
            raise GraphError(f"{where}: attributes must be sorted and unique, got {keys}")
        if n.is_leaf or n.is_constant:
            if n.args:
                raise GraphError(f"{where}: a {n.op} node takes no arguments")
            _validate_leaf(n, where, names)
            continue
        op = OPS.get(n.op)
        if op is None:
            raise GraphError(f"{where}: unknown op tag {n.op!r}")
        if op.arity >= 0 and len(n.args) != op.arity:
            raise GraphError(f"{where}: takes {op.arity} arguments, got {len(n.args)}")
        if op.arity < 0 and not n.args:
            raise GraphError(f"{where}: needs at least one argument")
        for a in n.args:
            if not isinstance(a, int) or not 0 <= a < i:
                raise GraphError(f"{where}: argument %{a} is not an earlier node")
    out_names: set[str] = set()
    for name, i in g.outputs:
        if not isinstance(i, int) or not 0 <= i < len(g.nodes):
            raise GraphError(f"output {name!r} refers to node %{i}, which does not exist")
        if name in out_names:
            raise GraphError(f"output name {name!r} is used twice")
        out_names.add(name)


def _validate_leaf(n: Node, where: str, names: set[str]) -> None:
    keys = [k for k, _ in n.attrs]
    if n.is_leaf:
        if keys != ["name"] or not isinstance(n.attr("name"), str) or not n.attr("name"):
            raise GraphError(f"{where}: needs exactly one attribute, a non-empty 'name'")
        if n.name in names:
            raise GraphError(f"{where}: the name {n.name!r} is used by another leaf")
        names.add(n.name)
    elif n.op == "const":
        if keys != ["value"] or n.shape != ():
            raise GraphError(f"{where}: needs exactly a 'value' attribute and shape ()")
        value: Any = n.attr("value")
        if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, SymbolicPi)):
            raise GraphError(f"{where}: value {value!r} is not an int, float, Fraction or PI")
    else:
        if keys != ["data"] or not isinstance(n.attr("data"), Literal):
            raise GraphError(f"{where}: needs exactly a 'data' attribute holding a Literal")
        lit: Literal = n.attr("data")
        size = 1
        for d in n.shape:
            size *= d
        if len(lit.items) != size:
            raise GraphError(f"{where}: {len(lit.items)} literal items for shape {n.shape}")
