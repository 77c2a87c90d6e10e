"""Re-batching: the same model graph over a batch of N inputs instead of 1.

Models imported from files (ONNX) are traced with the batch size their file declares,
usually 1; branch and bound wants to bound thousands of boxes in one call. `rebatch`
rewrites a graph whose input has a leading axis of 1 so that it takes N rows, and
refuses unless every op provably treats that axis row by row: then row i of the new graph
computes exactly what the old graph computes for input row i (same ops, same order, same
constants), in every field.

Each op's batching rule lives in one `RuleTable` ("batching"): given the node and which
operands carry the batch axis, it returns the node's new attributes or raises. The
shapes are then re-derived by the op table's shape rules (`passes.check_shapes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...spec.errors import ShapeError, UnsupportedOperation
from ...spec.ops import OPS
from ...spec.ops.rules import RuleTable
from .ir import Graph, Node, freeze_attrs
from .passes import check_shapes

__all__ = ["rebatch", "BATCHING"]

Attrs = dict[str, Any]
# rule(node, batched operands, shapes of the operands) -> new attributes
BatchRule = Callable[[Node, tuple[bool, ...], tuple[tuple[int, ...], ...]], Attrs]
BATCHING: RuleTable[BatchRule] = RuleTable("batching")


def _refuse(n: Node, why: str) -> UnsupportedOperation:
    return UnsupportedOperation(n.op, "float", f"node %{n.id}: {why}", analysis="batching")


def _rowwise(n: Node, batched: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]) -> Attrs:
    """Elementwise ops: rows stay rows when the batched operands have the output's rank
    (a constant of higher rank would broadcast the batch axis away from the front)."""
    rank = max(len(s) for s in shapes)
    if any(b and len(s) != rank for b, s in zip(batched, shapes, strict=True)):
        raise _refuse(n, "a constant of higher rank moves the batch axis")
    return n.attr_dict


def _axes_kept(n: Node, batched: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]) -> Attrs:
    """Reductions and softmax: fine when they never act on axis 0."""
    at = n.attr_dict
    axes = at.get("axes")
    axes = tuple(axes) if axes is not None else (at["axis"],) if "axis" in at else None
    if axes is None or 0 in axes:
        raise _refuse(n, "reduces over the batch axis")
    return at


def _matmul(n: Node, batched: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]) -> Attrs:
    """Rows stay apart when the batch axis is the output's leading axis and no operand
    contracts over it: a batched left operand of rank >= the other's (its axis 0 is a row
    or a broadcast axis), or a batched operand of rank >= 3 in a broadcast axis."""
    (ra, rb), (ba, bb) = (len(shapes[0]), len(shapes[1])), batched
    left_ok = ba and ra >= max(rb, 2) and (ra >= 3 or rb == 2)
    right_ok = bb and rb >= 3 and rb >= ra
    if ba and bb:
        ok = ra == rb >= 3
    else:
        ok = left_ok or right_ok
    if not ok:
        raise _refuse(n, f"{shapes[0]} @ {shapes[1]} would contract over the batch axis")
    return n.attr_dict


def _transpose(n: Node, batched: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]) -> Attrs:
    if tuple(n.attr("axes"))[0] != 0:
        raise _refuse(n, "moves the batch axis")
    return n.attr_dict


def _with_batch(shape: Any, n: Node, size: int) -> tuple[int, ...]:
    target = tuple(shape)
    if not target or target[0] != 1:
        raise _refuse(n, f"target shape {target} does not keep the batch axis first")
    return (size, *target[1:])


def _slice(n: Node, batched: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]) -> Attrs:
    spec = tuple(tuple(s) for s in n.attr("spec"))
    if spec[0] != (0, 1, 1):
        raise _refuse(n, "slices the batch axis")
    return {**n.attr_dict, "spec": ((0, -1, 1), *spec[1:])}  # -1: filled in by `rebatch`


def _concat(n: Node, batched: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]) -> Attrs:
    if n.attr("axis") == 0 or not all(batched):
        raise _refuse(n, "concatenates along the batch axis, or a constant with rows")
    return n.attr_dict


BATCHING.rule("add", "sub", "mul", "div", "neg", "abs", "square", "sqrt", "exp", "log",
              "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos", "erf", "gelu",
              "silu", "relu", "leaky_relu", "maximum", "minimum", "where", "greater",
              "step")(_rowwise)
BATCHING.rule("sum", "mean", "max", "argmax_mask", "softmax", "log_softmax")(_axes_kept)
BATCHING.rule("matmul")(_matmul)
BATCHING.rule("transpose")(_transpose)
BATCHING.rule("slice")(_slice)
BATCHING.rule("concat")(_concat)
BATCHING.rule("reshape", "broadcast_to", "unslice")(lambda n, b, s: n.attr_dict)
BATCHING.refuse("class indices carry no batch of boxes", "one_hot")


def rebatch(graph: Graph, size: int) -> Graph:
    """`graph` (one input whose leading axis is 1) over `size` input rows.

    Raises UnsupportedOperation naming the node when an op could mix rows, and
    ShapeError when the input does not lead with an axis of 1.
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    inputs = graph.inputs
    if len(inputs) != 1 or not inputs[0].shape or inputs[0].shape[0] != 1:
        raise ShapeError(f"rebatch needs one input with a leading axis of 1, got "
                         f"{[n.shape for n in inputs]}")
    BATCHING.check_ops(graph.nodes, skip=("input", "param", "const", "literal"))
    batched = [False] * len(graph.nodes)
    nodes: list[Node] = []
    for n in graph.nodes:
        if n.op == "input":
            batched[n.id] = True
            nodes.append(Node(n.id, n.op, n.args, n.attrs, (size, *n.shape[1:])))
            continue
        which = tuple(batched[a] for a in n.args)
        if n.is_leaf or n.is_constant or not any(which):
            nodes.append(n)
            continue
        batched[n.id] = True
        if not n.shape or n.shape[0] != 1:
            raise _refuse(n, f"its output {n.shape} does not keep the batch axis first")
        shapes = tuple(graph.nodes[a].shape for a in n.args)
        at = BATCHING.get(n.op, f"node %{n.id}")(n, which, shapes)
        if n.op in ("reshape", "broadcast_to"):
            at = {**at, "shape": _with_batch(at["shape"], n, size)}
        elif n.op == "unslice":
            if tuple(tuple(s) for s in at["spec"])[0] != (0, 1, 1):
                raise _refuse(n, "places rows along the batch axis")
            at = {**at, "shape": _with_batch(at["shape"], n, size),
                  "spec": ((0, size, 1), *tuple(tuple(s) for s in at["spec"])[1:])}
        elif n.op == "slice":
            at = {**at, "spec": ((0, size, 1), *at["spec"][1:])}
        nodes.append(Node(n.id, n.op, n.args, freeze_attrs(at), (size, *n.shape[1:])))
    out = Graph(graph.field, tuple(nodes), graph.outputs)
    for name, i in out.outputs:
        if not batched[i]:
            raise _refuse(out.nodes[i], f"output {name!r} does not depend on the input")
    check_shapes(out)
    assert all(op in OPS for op in BATCHING.rules)
    return out
