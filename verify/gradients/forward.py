"""Forward-mode directional derivatives of f by evaluating it on dual numbers.

The directions are pushed through f in blocks of K at once (one evaluation of f per
block); the result is one directional derivative per direction, in the base field:
exact rationals over `exact`, enclosures over `interval`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...spec.errors import ShapeError
from ...spec.fields.base import Field
from ...spec.tensor import Tensor
from ...spec.value import Value
from .directions import Directions
from .dual import Dual, DualField
from .trees import Tree, map_values, rebuild

__all__ = ["forward_derivatives"]


def forward_derivatives(
    f: Callable[..., Any],
    args: Sequence[Tree],
    argnums: Sequence[int],
    leaves: Sequence[Value],
    base: Field,
    directions: Directions,
    block: int,
) -> tuple[np.ndarray[Any, Any], Counter[str]]:
    """The derivative of f at `args` along each direction, and the kinks met.

    `args` hold tensors of `base`; `leaves` are the differentiated ones in leaf order.
    """
    dual = DualField(base)

    def lift(v: Value) -> Value:
        assert isinstance(v, Tensor)
        return Tensor(Dual(v.data, None), dual)

    fixed = tuple(map_values(lift, a) for a in args)
    out = np.empty(directions.count, dtype=object)
    for rows in directions.chunks(block):
        seeds = directions.seeds(base, rows)
        seeded = [
            Tensor(Dual(v.data, s), dual) for v, s in zip(leaves, seeds, strict=True)  # type: ignore[attr-defined]
        ]
        result = f(*rebuild(fixed, argnums, seeded))
        if not isinstance(result, Tensor) or not isinstance(result.field, DualField):
            raise TypeError(
                f"gradcheck: f must return a tensor computed from its inputs, got {result!r}"
            )
        if result.shape != ():
            raise ShapeError(f"gradcheck: f must return a scalar (shape ()), got {result.shape}")
        tangent = result.data.tangent
        if tangent is None:
            values = [base.constant(0)] * len(rows)
            host = np.array([base.to_numpy(v).reshape(()).item() for v in values] + [None],
                            dtype=object)[:-1]
        else:
            host = np.asarray(base.to_numpy(tangent), dtype=object).reshape(len(rows))
        out[rows.start : rows.stop] = host
    return out, dual.kinks
