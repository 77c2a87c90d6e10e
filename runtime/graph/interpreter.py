"""The reference executor: run a graph node by node with the op table on spec Tensors.

Each op node is evaluated with `spec.ops.apply` on concrete `Tensor`s, exactly what an
eager run does, so it works over every field and agrees with eager bit for bit. Constants
are lifted with the field's `constant` in the namespace and device of the first leaf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...spec.errors import FieldMismatchError, ShapeError
from ...spec.fields import Field, NativeFloatField, get_field
from ...spec.fields.base import Array
from ...spec.ops import apply
from ...spec.tensor import Tensor
from .encoding import decode_literal
from .ir import Graph

__all__ = ["interpret", "bind_leaves", "literal_array"]


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
    arrays = bind_leaves(graph, values, fld)
    like = arrays[0] if arrays else None
    leaf_values = iter(arrays)
    env: list[Tensor] = []
    for n in graph.nodes:
        if n.is_leaf:
            t = Tensor(next(leaf_values), fld)
        elif n.op == "const":
            t = Tensor(fld.constant(n.attr("value"), like=like), fld)
        elif n.op == "literal":
            t = Tensor(literal_array(fld, n, like), fld)
        else:
            args = [env[a] for a in n.args]
            t = apply(n.op, args[0], *args[1:], **n.attr_dict)
            if t.shape != n.shape:
                raise ShapeError(f"node %{n.id} ({n.op}): computed shape {t.shape}, the "
                                 f"graph declares {n.shape}")
        env.append(t)
    return {name: env[i] for name, i in graph.outputs}
