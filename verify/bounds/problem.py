"""The bounding problem shared by IBP and CROWN: the graph, the input box, the spec rows,
the values of leaves and constants, and which nodes depend on the input (per batch row)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph
from ...runtime.graph.encoding import Literal
from ...runtime.graph.tracing import as_graph as shared_as_graph
from ...spec.errors import ShapeError, UnsupportedOperation
from ...spec.tensor import tensor
from ..outward import dn, up

__all__ = ["Array", "Bounds", "COVERS", "LEAVES", "as_graph", "host", "leaf_value",
           "depends_on_input", "batched_nodes", "prepare", "spec_matrix", "intersect",
           "margin_matrix", "describe"]

Array = np.ndarray[Any, Any]
COVERS = ("real", "float32")
LEAVES = ("input", "param", "literal", "const")  # handled by the interpreter, not by rules


@dataclass(frozen=True)
class Bounds:
    """Sound bounds `lower <= C y <= upper`, arrays of shape (batch, spec rows)."""

    lower: Array
    upper: Array
    method: str

    def contains(self, values: Array) -> bool:
        """Whether every value of `values` (same shape) lies in the bounds."""
        v = np.asarray(values, dtype=np.float64)
        return bool(np.all(self.lower <= v) and np.all(v <= self.upper))

    @property
    def width(self) -> Array:
        """upper - lower, elementwise."""
        return np.asarray(self.upper - self.lower)


def describe(n: Any) -> str:
    """How errors name a node: its id and its shape."""
    return f"node %{n.id} (shape {n.shape})"


def as_graph(graph_or_model: Any, params: Mapping[str, Any], shape: tuple[int, ...]) -> Graph:
    """The graph of `graph_or_model` (a Graph, or an nn.Built traced in eval mode in
    binary64, its buffers read exactly, with the parameter shapes of `params`)."""
    if isinstance(graph_or_model, Graph):
        return graph_or_model
    buffers = getattr(graph_or_model, "buffers", None)
    if buffers is not None:  # traced in binary64: buffers of a float32 model, read exactly
        buffers = {k: tensor(host(v)) for k, v in buffers.items()}
    shapes = {k: tuple(np.shape(host(v))) for k, v in params.items()}
    return shared_as_graph(graph_or_model, shape, "float", shapes, buffers)


def host(v: Any) -> Array:
    """`v` (a tensor or array-like) as a float64 NumPy array."""
    data = v.numpy() if hasattr(v, "numpy") else v
    return np.asarray(data, dtype=np.float64)


def leaf_value(node: Any, params: Mapping[str, Any]) -> tuple[Array, Array]:
    """The point interval of a leaf parameter, literal or const node."""
    if node.op == "param":
        name = node.name
        if name not in params:
            raise KeyError(f"params: missing {name!r}")
        v = host(params[name])
        if v.shape != node.shape:
            raise ShapeError(f"params[{name!r}] has shape {v.shape}, the graph needs {node.shape}")
        return v, v
    if node.op == "literal":
        lit = node.attr("data")
        assert isinstance(lit, Literal)
        try:
            v = np.array([float.fromhex(t) for t in lit.items], dtype=np.float64)
        except ValueError:
            raise UnsupportedOperation(
                "literal", "float", f"node %{node.id}: not a float literal") from None
        return v.reshape(node.shape), v.reshape(node.shape)
    value = node.attr("value")
    if isinstance(value, (int, float, Fraction)):
        f = float(value)
        if Fraction(f) == Fraction(value):
            return np.array(f), np.array(f)
        return dn(f), up(f)
    raise UnsupportedOperation(node.op, "float", f"node %{node.id}: constant {value!r}")


def depends_on_input(g: Graph, constant: Callable[[int], bool] | None = None) -> list[bool]:
    """For each node, whether its value depends on the graph's input; a node for which
    `constant(id)` holds (its interval is a point: one value over the whole box) does not."""
    dep = [False] * len(g.nodes)
    for n in g.nodes:
        dep[n.id] = n.op == "input" or (any(dep[a] for a in n.args) and not (
            constant is not None and constant(n.id)))
    return dep


def _keeps_batch_axis(n: Any, g: Graph) -> bool:
    """Whether op `n` maps batch row b of its input-dependent operands to its own row b."""
    op, at = n.op, n.attr_dict
    if op in ("sum", "mean", "max", "argmax_mask"):
        return 0 not in at["axes"]
    if op in ("softmax", "log_softmax", "concat"):
        return int(at["axis"]) != 0
    if op == "transpose":
        return int(at["axes"][0]) == 0
    if op in ("slice", "unslice"):
        return tuple(at["spec"][0]) == (0, n.shape[0], 1)
    return op not in ("one_hot",)


_ELEMENTWISE = ("add", "sub", "mul", "div", "maximum", "minimum", "where", "greater")


def _rows_kept(n: Any, g: Graph, dep: list[bool], bat: list[bool]) -> bool:
    """Whether `n` (keeping axis 0) is per row given its input-dependent operands."""
    shapes = [g.nodes[a].shape for a in n.args]
    if n.op == "matmul":
        (x, w), (sx, sw) = n.args, shapes
        if dep[x] and dep[w]:
            return bat[x] and bat[w] and len(sx) == len(sw) == len(n.shape)
        if dep[x]:
            return bat[x] and (len(sx) == len(n.shape) or (len(sx) == len(sw) == 2))
        return bat[w] and len(sw) == len(n.shape) >= 3
    if n.op in _ELEMENTWISE:
        for a, s in zip(n.args, shapes, strict=True):
            if not dep[a] or (bat[a] and len(s) == len(n.shape)):
                continue
            if len(s) < len(n.shape) or s[0] == 1:
                continue  # broadcast along the batch: CROWN bounds it by its interval
            return False
        return True
    if n.op == "broadcast_to" and len(shapes[0]) != len(n.shape):
        return False
    return all(bat[a] for a in n.args if dep[a])


def batched_nodes(g: Graph, dep: list[bool], batch: int) -> list[bool]:
    """For each node, whether it depends on the input row by row: axis 0 is the batch and
    row b depends on input row b only. CROWN keeps coefficients per batch row for these;
    any other input-dependent node is bounded by IBP where CROWN meets it."""
    bat = [False] * len(g.nodes)
    for n in g.nodes:
        if not dep[n.id]:
            continue
        if n.op == "input":
            bat[n.id] = True
            continue
        if not n.shape or n.shape[0] != batch or not _keeps_batch_axis(n, g):
            continue
        bat[n.id] = _rows_kept(n, g, dep, bat)
    return bat


def prepare(graph_or_model: Any, params: Mapping[str, Any], lower: Any, upper: Any,
            covers: str) -> tuple[Graph, Array, Array]:
    """The graph and the checked box (finite, lower <= upper, batch axis first)."""
    if covers not in COVERS:
        raise ValueError(f"covers must be one of {COVERS}, got {covers!r}")
    lo, hi = host(lower), host(upper)
    if lo.shape != hi.shape:
        raise ShapeError(f"lower has shape {lo.shape}, upper {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
        raise ValueError("the input box needs finite lower <= upper everywhere")
    if lo.ndim < 2:
        raise ShapeError(f"the input box needs a batch axis first, got shape {lo.shape}")
    g = as_graph(graph_or_model, params, lo.shape)
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UnsupportedOperation(
            "graph", "float", f"bounds need one input and one output, got {len(g.inputs)} "
            f"inputs and {len(g.outputs)} outputs"
        )
    return g, lo, hi


def spec_matrix(C: Any, g: Graph, batch: int) -> Array:
    """The spec rows as (batch, rows, *output shape without batch); identity by default."""
    out = g.nodes[g.outputs[0][1]]
    if not out.shape or out.shape[0] != batch:
        raise ShapeError(f"the output (shape {out.shape}) must keep the batch axis of "
                         f"size {batch} first")
    width = int(np.prod(out.shape[1:]))
    if C is None:
        c = np.broadcast_to(np.eye(width), (batch, width, width))
    else:
        c = np.asarray(C, dtype=np.float64)
        if c.ndim == 2:
            c = np.broadcast_to(c, (batch,) + c.shape)
        if c.ndim != 3 or c.shape[0] != batch or c.shape[2] != width:
            raise ShapeError(f"C must be (rows, {width}) or ({batch}, rows, {width}), "
                             f"got {np.shape(C)}")
    return np.asarray(c).reshape((batch, c.shape[1]) + out.shape[1:])


def intersect(a: Bounds, b: Bounds) -> Bounds:
    """The intersection of two sound bounds of the same quantity (still sound)."""
    if a.lower.shape != b.lower.shape:
        raise ShapeError(f"bounds of shapes {a.lower.shape} and {b.lower.shape}")
    return Bounds(np.maximum(a.lower, b.lower), np.minimum(a.upper, b.upper),
                  f"{a.method}&{b.method}")


def margin_matrix(label: int, classes: int) -> Array:
    """The spec rows y_label - y_j for every j != label: (classes - 1, classes)."""
    if not 0 <= label < classes:
        raise ValueError(f"label {label} is not a class of {classes}")
    rows = [np.eye(classes)[label] - np.eye(classes)[j] for j in range(classes) if j != label]
    return np.array(rows)
