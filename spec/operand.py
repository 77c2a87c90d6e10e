"""`Operand`: what the op registry needs of a tensor-like value to apply an op to it.

`Value` (spec/value.py) adds the operators and methods on top; the registry only reads
this protocol, so it does not import `Value` (whose operators call the registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from .errors import FieldMismatchError
from .fields.base import Constant, Field
from .shapes import Shape

if TYPE_CHECKING:
    from .ops.registry import Attrs, OpDef

__all__ = ["Operand"]


class Operand:
    """A tensor-shaped value in some evaluation context (concrete, taped or symbolic)."""

    __slots__ = ()

    # Subclasses define these four. (Not an ABC: ABCMeta's isinstance is several times
    # slower, and `apply` runs isinstance on every operand of every op.)
    @property
    def shape(self) -> Shape:
        """The tensor's shape."""
        raise NotImplementedError

    @property
    def field(self) -> Field:
        """The scalar field the tensor's numbers live in."""
        raise NotImplementedError

    def _apply(self, op: OpDef, inputs: tuple[Self, ...], attrs: Attrs) -> Self:
        """Apply `op` to `inputs` (all of this kind and field) in this context."""
        raise NotImplementedError

    def _lift(self, value: Constant) -> Self:
        """A 0-d constant of this context and field."""
        raise NotImplementedError

    # Nesting depth of differentiation contexts: concrete and symbolic values are 0, a
    # tape tracer is one more than the values it wraps. `apply` evaluates in the deepest
    # operand's context, which coerces the others.
    _level: int = 0

    # `other` is Any: subclasses narrow it to their own kind (the registry only passes
    # operands of the same type here, or of a lower level to `_coerce`).
    def _same_context(self, other: Any) -> bool:
        """Whether `other` (of the same type) lives in this value's context and field."""
        return other.field is self.field

    def _coerce(self, other: Any) -> Self:
        """`other` as a value of this context; only the same kind and field by default."""
        if type(other) is type(self) and other.field is self.field:
            return other  # same type, checked above
        raise FieldMismatchError(
            f"operands mix {type(self).__name__}[{self.field}] and "
            f"{type(other).__name__}[{other.field}]"
        )

