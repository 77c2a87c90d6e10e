"""The reverse-mode walk shared by the eager tape (`Tape.backward`) and IR autodiff
(`graph.autodiff.grad_graph`): cotangents flow from one node down to the leaves, each op
node passing on what its VJP rule gives, accumulated as `previous + new` in node order
from the top. Sharing it is what keeps eager and compiled gradients the same computation,
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..spec.errors import TorchLeanError
from ..spec.ops.registry import Attrs, OpDef
from ..spec.value import Value

__all__ = ["NotDifferentiableError", "Pass", "node_cotangents", "accumulate"]

V = TypeVar("V", bound=Value)

Pass = tuple[tuple[int | None, ...], tuple[V | None, ...]] | None
"""What a node passes on: its parents' node numbers (None: nothing to receive) and their
cotangents (None: none), or None for a leaf, whose cotangent is kept."""


class NotDifferentiableError(TorchLeanError, TypeError):
    """The output depends, through an op with no VJP rule, on a value being differentiated."""


def node_cotangents(op: OpDef, g: V, inputs: tuple[V, ...], output: V, attrs: Attrs,
                    needs: tuple[bool, ...] | None, where: str) -> tuple[V | None, ...]:
    """The VJP rule's cotangents of one op node (all inputs, or those flagged in `needs`);
    a piecewise-constant op passes none; an op with no rule raises naming `where`."""
    if op.piecewise_constant:
        return ()
    vjp = op.vjp
    if vjp is None:
        raise NotDifferentiableError(f"{where} has no VJP rule, so it cannot be differentiated")
    if needs is None:
        return vjp(g, inputs, output, attrs)  # type: ignore[return-value]
    return op.cotangents(g, inputs, output, attrs, needs)  # type: ignore[return-value]


def accumulate(top: int, seed: V, visit: Callable[[int, V], Pass[V]]) -> dict[int, V]:
    """Cotangents of the leaves below node `top`, seeded with `seed` there: nodes are
    visited from `top` down, each once it has received a cotangent; `visit(i, g)` says
    what node i passes on (see `Pass`)."""
    cts: dict[int, V] = {top: seed}
    leaves: dict[int, V] = {}
    for i in range(top, -1, -1):
        g = cts.pop(i, None)
        if g is None:
            continue
        passed = visit(i, g)
        if passed is None:
            leaves[i] = g
            continue
        parents, grads = passed
        if not grads:  # piecewise constant: nothing flows on
            continue
        for parent, gi in zip(parents, grads, strict=True):
            if parent is None or gi is None:
                continue
            prev = cts.get(parent)
            cts[parent] = gi if prev is None else prev + gi
    return leaves
