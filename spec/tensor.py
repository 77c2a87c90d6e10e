"""`Tensor`: a concrete value of a field, evaluated directly from the op table.

This is the reference evaluator: no tape, no graph, each op's shape rule checked and its
forward rule run on the field. `tensor(data, dtype)` builds one.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from .convert import convert_array, holds_text, parse_text
from .errors import UnsupportedOperation
from .fields import Field, get_field
from .fields.base import Array, Constant
from .fields.native import NativeFloatField
from .ops.registry import Attrs, OpDef
from .shapes import Shape
from .value import ShapeT, Value

__all__ = ["Tensor", "tensor"]


class Tensor(Value[ShapeT]):
    """A concrete tensor: a field, a shape and the field's array.

    `Tensor[S]` states a static shape type S (see torchlean.spec.nn); a bare `Tensor` is
    untyped."""

    __slots__ = ("data", "_field", "_shape")

    def __init__(self, data: Array, field: Field) -> None:
        self.data = data
        self._field = field
        self._shape: Shape = field.shape_of(data)

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def field(self) -> Field:
        return self._field

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def _same_context(self, other: Value) -> bool:
        return other._field is self._field  # type: ignore[attr-defined]  # same type: Tensor

    def _apply(self, op: OpDef, inputs: tuple[Self, ...], attrs: Attrs) -> Self:
        field = self._field
        if len(inputs) == 1:  # the common unary case, without building generators
            (t,) = inputs
            shapes: tuple[Shape, ...] = (t._shape,)
            arrays: tuple[Array, ...] = (t.data,)
        else:
            shapes = tuple([t._shape for t in inputs])
            arrays = tuple([t.data for t in inputs])
        out_shape = op.shape(shapes, attrs)
        try:
            data = op.forward(field, arrays, attrs)
        except UnsupportedOperation as e:
            if e.op == op.tag:
                raise
            raise UnsupportedOperation(op.tag, e.field, f"it needs {e}") from None
        shape = field.shape_of(data)
        if shape != out_shape:  # the forward rule disagrees with the shape rule: a bug
            raise AssertionError(f"{op.tag}: forward gave {shape}, shape rule {out_shape}")
        out = object.__new__(type(self))  # what __init__ does, with the shape known
        out.data, out._field, out._shape = data, field, shape
        return out

    def _lift(self, value: Constant) -> Self:
        return type(self)(self._field.constant(value, like=self.data), self._field)

    def to(self, dtype: str | Field) -> Tensor:
        """This tensor in field `dtype`: itself when already there; exactly into `exact`
        (a float becomes its exact rational value; NaN or infinity raises DomainError),
        rounded once to nearest-even into the float fields, enclosed into `interval`
        (see `torchlean.spec.convert`). Between the native float fields the result stays
        on the tensor's device; other conversions give host tensors."""
        field = get_field(dtype)
        if field is self._field:
            return self
        if isinstance(field, NativeFloatField) and isinstance(self._field, NativeFloatField):
            return Tensor(field.asarray(self.data), field)
        return Tensor(convert_array(self.numpy(), field, "Tensor.to"), field)

    def astype(self, dtype: str | Field) -> Tensor:
        """The same as `to(dtype)` (NumPy's spelling)."""
        return self.to(dtype)

    def numpy(self) -> np.ndarray[Any, Any]:
        """The values as a NumPy array (float arrays, or object arrays for exact/interval)."""
        return self._field.to_numpy(self.data)

    def tolist(self) -> Any:
        """The values as nested Python lists."""
        return self.numpy().tolist()

    def item(self) -> Any:
        """The single value of a one-element tensor."""
        if self.size != 1:
            raise ValueError(f"item: tensor of shape {self._shape} has {self.size} elements")
        return self.numpy().reshape(()).item()

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", threshold=20)
        return f"Tensor({body}, dtype={self._field.name}, shape={self._shape})"


def tensor(data: object, dtype: str | Field = "float") -> Tensor:
    """A concrete tensor of `data` in field `dtype`. `data` may be numbers, nested lists,
    arrays, a Tensor of any field (converted as `Tensor.to` does), or text such as "1/10",
    "0.1" or "-2e-3", read as the exact rational it writes (then rounded once into a float
    field) and never evaluated; text that is not a number raises DataFormatError naming
    the item."""
    field = get_field(dtype)
    if isinstance(data, Tensor):
        return data.to(field)
    if holds_text(data):
        return Tensor(convert_array(parse_text(data, field), field, "tensor"), field)
    return Tensor(field.asarray(data), field)
