"""The op table: one `OpDef` record per op, and `apply`, the single way ops are used.

An op is a tag, a shape rule, a forward rule written only against `Field` primitives,
and a VJP rule written with other ops (so eager tapes, compiled graphs and higher-order
derivatives all reuse it). Eager, compiled, gradient checks, error bounds and IBP read
this table; nothing re-derives an op's meaning elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, TypeVar

from ..errors import FieldMismatchError
from ..fields.base import Array, Field, SymbolicPi
from ..operand import Operand
from ..shapes import Shape

if TYPE_CHECKING:
    from ..value import Value

__all__ = [
    "ATTR_KINDS",
    "KINDS",
    "AttrValue",
    "Attrs",
    "OpDef",
    "OPS",
    "Props",
    "register",
    "get_op",
    "apply",
    "apply_op",
    "VjpPart",
    "vjp_from_parts",
]

AttrValue: TypeAlias = Any  # int, float, Fraction, str, bool, None, or tuples of these
Attrs: TypeAlias = Mapping[str, AttrValue]
ShapeRule: TypeAlias = Callable[[tuple[Shape, ...], Attrs], Shape]
ForwardRule: TypeAlias = Callable[[Field, tuple[Array, ...], Attrs], Array]
VjpRule: TypeAlias = Callable[
    ["Value", tuple["Value", ...], "Value", Attrs], tuple["Value | None", ...]
]

VjpPart: TypeAlias = Callable[["Value", tuple["Value", ...], "Value", Attrs], "Value | None"]

V = TypeVar("V", bound="Value")

KINDS: tuple[str, ...] = (
    "elementwise",  # each output element from the same-index elements of the broadcast inputs
    "reduction",  # each output element from a group of input elements along `axes`
    "axiswise",  # same shape as the input; each element from its group along an axis
    "contraction",  # matmul: sums of products over the inner dimension
    "structural",  # moves, copies or zero-fills elements, no arithmetic
    "encoding",  # one_hot: integer labels to 0/1 rows
)
"""The kinds of op, as analyses ask about them (fusion groups elementwise ops only)."""

ATTR_KINDS: tuple[str, ...] = ("int", "bool", "number", "ints", "spec")
"""What an attribute may hold: an int, a bool, a number (int, float, Fraction), a tuple of
ints, or a slice spec (a tuple of (start, stop, step) triples)."""


class Props(TypedDict, total=False):
    """The boolean properties of an OpDef, for registration helpers to pass on."""

    rational: bool
    linear: bool
    piecewise_linear: bool
    monotone: bool


@dataclass(frozen=True, slots=True)
class OpDef:
    """One op: its tag, shape rule, forward rule over any field, and VJP rule, and the
    properties analyses ask about it.

    `arity` is the number of tensor inputs (-1: any number). `vjp` is None for ops with no
    derivative rule; `piecewise_constant` ops (comparisons, one_hot, ...) have derivative
    zero wherever it exists, so gradients simply do not flow through them.

    Properties: `kind` (one of `KINDS`); `attr_schema`, the op's attributes as (name,
    kind) pairs (kinds from `ATTR_KINDS`), exactly the attributes a node of the op has;
    `rational`: on rational inputs the forward rule's value is rational and the `exact`
    field computes it (so no real-valued function is involved); `linear`: linear in its
    inputs jointly; `piecewise_linear`: continuous and piecewise linear in its inputs
    (linear ops included); `monotone`: nondecreasing in every input, for every value of
    its attributes.
    """

    tag: str
    arity: int
    shape: ShapeRule
    forward: ForwardRule
    vjp: VjpRule | None = None
    piecewise_constant: bool = False
    doc: str = ""
    vjp_parts: tuple[VjpPart | None, ...] | None = None
    kind: str = ""  # required (keyword): an op of no kind is refused
    attr_schema: tuple[tuple[str, str], ...] = ()
    rational: bool = False
    linear: bool = False
    piecewise_linear: bool = False
    monotone: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"op {self.tag!r}: kind {self.kind!r} is not one of {KINDS}")
        for name, kind in self.attr_schema:
            if kind not in ATTR_KINDS:
                raise ValueError(f"op {self.tag!r}: attribute {name!r} has kind {kind!r}, "
                                 f"not one of {ATTR_KINDS}")
        if self.linear and not self.piecewise_linear:
            raise ValueError(f"op {self.tag!r}: a linear op is piecewise linear too")

    def cotangents(
        self, g: Value, inputs: tuple[Value, ...], out: Value, attrs: Attrs,
        needs: tuple[bool, ...],
    ) -> tuple[Value | None, ...]:
        """The VJP rule's cotangents for the inputs flagged in `needs` (None for the others
        where the op has `vjp_parts`; otherwise all of them, as `vjp` gives)."""
        parts = self.vjp_parts
        if parts is None or all(needs):
            assert self.vjp is not None
            return self.vjp(g, inputs, out, attrs)
        return tuple(
            part(g, inputs, out, attrs) if need and part is not None else None
            for part, need in zip(parts, needs, strict=True)
        )


def vjp_from_parts(parts: tuple[VjpPart | None, ...]) -> VjpRule:
    """The whole VJP rule of an op whose rule is given per input (see `OpDef.vjp_parts`)."""

    def vjp(g: Value, inputs: tuple[Value, ...], out: Value, attrs: Attrs) -> tuple[
        Value | None, ...
    ]:
        return tuple([None if p is None else p(g, inputs, out, attrs) for p in parts])

    if len(parts) == 2 and None not in parts:  # binary ops: without the loop (hot path)
        part_a, part_b = parts
        assert part_a is not None and part_b is not None

        def vjp2(g: Value, inputs: tuple[Value, ...], out: Value, attrs: Attrs) -> tuple[
            Value | None, ...
        ]:
            return part_a(g, inputs, out, attrs), part_b(g, inputs, out, attrs)

        return vjp2
    return vjp


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add `op` to the table; a tag may be registered once."""
    if op.tag in OPS:
        raise ValueError(f"op {op.tag!r} is already registered")
    OPS[op.tag] = op
    return op


def get_op(tag: str) -> OpDef:
    """The record of op `tag`; an unknown tag raises KeyError listing the known ones."""
    try:
        return OPS[tag]
    except KeyError:
        raise KeyError(f"unknown op {tag!r}; known ops: {', '.join(sorted(OPS))}") from None


def apply(tag: str, first: V, *rest: object, **attrs: AttrValue) -> V:
    """Apply op `tag` to tensor operands; the first is a tensor, later plain numbers are
    lifted into its field."""
    op = OPS.get(tag) or get_op(tag)
    result: V = apply_op(op, (first, *rest), attrs)
    return result


def apply_op(op: OpDef, inputs: tuple[Any, ...], attrs: Attrs) -> Any:
    """Apply the record `op` to `inputs` in the deepest operand's context (see `apply`)."""
    first = inputs[0]
    if not isinstance(first, Operand):
        raise TypeError(f"{op.tag}: the first operand must be a tensor, got {first!r}")
    n = len(inputs)
    if n == 1:  # the common unary case: nothing to reconcile
        if op.arity not in (-1, 1):
            raise TypeError(f"{op.tag}: takes {op.arity} tensor operands, got 1")
        return first._apply(op, inputs, attrs)
    # The common n-ary case: every operand already of the first's kind and context (then
    # they are all at one level, and the general path below would change nothing).
    kind = type(first)
    if n == 2:  # binary ops, without a loop (hot path)
        x = inputs[1]
        if type(x) is kind and first._same_context(x):
            if op.arity not in (-1, 2):
                raise TypeError(f"{op.tag}: takes {op.arity} tensor operands, got 2")
            return first._apply(op, inputs, attrs)
    else:
        for x in inputs[1:]:
            if type(x) is not kind or not first._same_context(x):
                break
        else:
            if op.arity >= 0 and n != op.arity:
                raise TypeError(f"{op.tag}: takes {op.arity} tensor operands, got {n}")
            return first._apply(op, inputs, attrs)
    ref = first
    for x in inputs:
        if isinstance(x, Operand) and x._level > ref._level:
            ref = x  # a deeper context of the same family
    ref_type, field = type(ref), ref.field
    vals = []
    for x in inputs:
        if type(x) is ref_type and x._same_context(ref):
            vals.append(x)
        elif isinstance(x, Operand):
            if x.field is not field:
                raise FieldMismatchError(f"{op.tag}: operands mix fields {field} and {x.field}")
            try:
                vals.append(ref._coerce(x))
            except FieldMismatchError as e:
                raise FieldMismatchError(f"{op.tag}: {e}") from None
        elif isinstance(x, (int, float, Fraction, SymbolicPi)) and not isinstance(x, bool):
            vals.append(ref._lift(x))
        else:
            raise TypeError(f"{op.tag}: cannot use {type(x).__name__} {x!r} as an operand")
    if op.arity >= 0 and len(vals) != op.arity:
        raise TypeError(f"{op.tag}: takes {op.arity} tensor operands, got {len(vals)}")
    return ref._apply(op, tuple(vals), attrs)

