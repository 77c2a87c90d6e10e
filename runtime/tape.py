"""The eager tape: ops recorded as they run, as a plain value you can print and draw.

A `Traced` value wraps a primal value of the level below (a concrete tensor, or another
`Traced` when differentiating nested) and records each op applied to it on its `Tape`:
the op record, the parents' tape indices, the attributes, and the saved primal inputs
and output, which is all a VJP rule needs. `Tape.backward` runs the VJP rules in reverse;
the rules apply ops to primal values, so a backward pass is itself recorded on the tape
of the level below, which is how higher derivatives work.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from ..spec.errors import FieldMismatchError, TorchLeanError
from ..spec.fields.base import Constant, Field
from ..spec.ops.registry import Attrs, OpDef, apply_op
from ..spec.shapes import Shape
from ..spec.tensor import Tensor
from ..spec.value import Value
from .reverse import Pass, accumulate, node_cotangents

__all__ = ["Node", "Tape", "Traced", "GradientNaNError", "NanPolicy"]

NanPolicy = Literal["ignore", "warn", "raise"]


class GradientNaNError(TorchLeanError, FloatingPointError):
    """A NaN appeared in a gradient; the message names the node that produced it."""


@dataclass(slots=True)
class Node:
    """One tape entry: a leaf (op is None) or an op applied to earlier entries.

    Never mutated once recorded (not frozen only because a frozen dataclass is several
    times slower to construct, and the tape records one per op of an eager step)."""

    index: int
    op: OpDef | None
    parents: tuple[int | None, ...]  # tape index per input; None for a constant
    attrs: Attrs
    inputs: tuple[Value, ...]  # saved primal inputs
    output: Value  # saved primal output
    name: str = ""

    @property
    def tag(self) -> str:
        return "leaf" if self.op is None else self.op.tag

    @property
    def shape(self) -> Shape:
        return self.output.shape


class Tape:
    """An append-only list of nodes at one differentiation level."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.nodes: list[Node] = []

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def leaf(self, primal: Value, name: str = "") -> Traced:
        """Start tracking `primal` as an input to differentiate with respect to."""
        node = Node(len(self.nodes), None, (), {}, (), primal, name)
        self.nodes.append(node)
        return Traced(primal, self, node.index)

    def record(self, op: OpDef, inputs: tuple[Traced, ...], attrs: Attrs) -> Traced:
        """Run `op` on the inputs' primals and append the node."""
        # `apply_op` has checked the operands (their number included) at this level; below,
        # primals of one kind and context need no reconciling either (the hot paths).
        if len(inputs) == 2:
            a, b = inputs
            pa, pb = a.primal, b.primal
            primals: tuple[Value, ...] = (pa, pb)
            parents: tuple[int | None, ...] = (a.index, b.index)
            if type(pa) is type(pb) and pa._same_context(pb):
                out = pa._apply(op, primals, attrs)
            else:
                out = apply_op(op, primals, attrs)
        elif len(inputs) == 1:
            pa = inputs[0].primal
            primals, parents = (pa,), (inputs[0].index,)
            out = pa._apply(op, primals, attrs)
        else:
            primals = tuple([t.primal for t in inputs])
            parents = tuple([t.index for t in inputs])
            out = apply_op(op, primals, attrs)
        nodes = self.nodes
        index = len(nodes)
        nodes.append(Node(index, op, parents, attrs, primals, out))
        return Traced(out, self, index)

    def backward(
        self, out: Traced, seed: Value, *, nan: NanPolicy = "ignore"
    ) -> dict[int, Value]:
        """Cotangents of the leaves reached from `out`, seeded with `seed` at `out`."""
        if out.index is None:
            return {}
        nodes = self.nodes

        def visit(i: int, g: Value) -> Pass[Value]:
            node = nodes[i]
            op = node.op
            if op is None:
                return None
            parents = node.parents
            # Constants (parent None) need no cotangent; ops with per-input VJP parts skip
            # computing theirs (e.g. the data x in x @ W.T).
            needs = tuple([p is not None for p in parents]) if None in parents else None
            grads = node_cotangents(op, g, node.inputs, node.output, node.attrs, needs,
                                    f"op {node.tag!r} (tape node #{node.index})")
            if nan != "ignore":
                for parent, gi in zip(parents, grads, strict=False):  # () if none flow
                    if parent is not None and gi is not None:
                        _check_nan(gi, node, nan)
            return parents, grads

        return accumulate(out.index, seed, visit)

    # -- inspection -----------------------------------------------------------
    def __str__(self) -> str:
        rows = [("#", "op", "inputs", "shape", "attrs")]
        for n in self.nodes:
            ins = ", ".join("c" if p is None else str(p) for p in n.parents)
            attrs = ", ".join(f"{k}={v}" for k, v in n.attrs.items())
            label = f"leaf {n.name}".strip() if n.op is None else n.tag
            rows.append((str(n.index), label, ins, str(n.shape), attrs))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
            for r in rows
        ).rstrip()

    def to_dot(self) -> str:
        """The tape as Graphviz DOT text (leaves as boxes, constants elided)."""
        lines = ["digraph tape {", "  rankdir=LR;"]
        for n in self.nodes:
            label = f"{n.name or 'leaf'}\\n{n.shape}" if n.op is None else f"{n.tag}\\n{n.shape}"
            shape = "box" if n.op is None else "ellipse"
            lines.append(f'  n{n.index} [label="{label}", shape={shape}];')
            for p in n.parents:
                if p is not None:
                    lines.append(f"  n{p} -> n{n.index};")
        lines.append("}")
        return "\n".join(lines)


class Traced(Value):
    """A value on a tape: a primal of the level below plus its tape index."""

    __slots__ = ("primal", "tape", "index", "_level", "_shape")

    def __init__(self, primal: Value, tape: Tape, index: int | None) -> None:
        self.primal = primal
        self.tape = tape
        self.index = index  # None: a constant of this level, not on the tape
        self._level = tape.level
        self._shape = primal.shape  # read on every op (shape rules, functional checks)

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def field(self) -> Field:
        return self.primal.field

    def _apply(self, op: OpDef, inputs: tuple[Self, ...], attrs: Attrs) -> Self:
        return self.tape.record(op, inputs, attrs)  # type: ignore[return-value]

    def _lift(self, value: Constant) -> Self:
        return type(self)(self.primal._lift(value), self.tape, None)

    def _same_context(self, other: Value) -> bool:
        return other.tape is self.tape  # type: ignore[attr-defined]  # same type: Traced

    def _coerce(self, other: Value) -> Self:
        if isinstance(other, Traced) and other.tape is self.tape:
            return other  # type: ignore[return-value]
        if other._level >= self._level:
            raise FieldMismatchError(
                "operands come from two independent differentiation contexts (a value "
                "captured from another grad/vjp call); pass it as an argument instead"
            )
        return type(self)(other, self.tape, None)

    def __repr__(self) -> str:
        return f"Traced(level={self.tape.level}, index={self.index}, primal={self.primal!r})"


def _concrete(v: Value) -> Value:
    while isinstance(v, Traced):
        v = v.primal
    return v


def _check_nan(g: Value, node: Node, policy: NanPolicy) -> None:
    base = _concrete(g)
    if not isinstance(base, Tensor):
        return
    data: Any = base.numpy()
    if data.dtype.kind != "f" or not np.isnan(data).any():
        return
    msg = (
        f"NaN in the gradient flowing out of tape node #{node.index} ({node.tag}, output "
        f"shape {node.shape})"
    )
    if policy == "raise":
        raise GradientNaNError(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=4)
