"""torchlean.spec: shapes, scalar fields, the op table, model structure and losses.

One definition of every op, generic over scalar fields. This package imports nothing
else of TorchLean; `runtime` and `verify` build on it.
"""

from __future__ import annotations

from . import fields, functional, ops
from .errors import (
    DataFormatError,
    FieldMismatchError,
    ShapeError,
    TorchLeanError,
    UnsupportedOperation,
)
from .fields import FIELD_NAMES, Field, exact, float32, float64, get_field, ieee32exec, interval
from .ops import OPS, OpDef, apply, elementwise, get_op, reductions, structural  # noqa: F401  (registers the op table)
from .shapes import Shape
from .tensor import Tensor, tensor
from .value import Value

evaluate = apply  # run any op over any field: spec.evaluate("add", x, y)

__all__ = [
    "DataFormatError", "FieldMismatchError", "ShapeError", "TorchLeanError",
    "UnsupportedOperation", "FIELD_NAMES", "Field", "exact", "float32", "float64",
    "get_field", "ieee32exec", "interval", "OPS", "OpDef", "apply", "evaluate", "get_op",
    "Shape", "Tensor", "tensor", "Value", "fields", "functional", "ops",
]
