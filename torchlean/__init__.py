"""TorchLean: one model definition, run eagerly or compiled, exactly, in intervals or
bit-exactly in IEEE binary32, with gradients and error bounds you can check.

`import torchlean as tl` is the front door; the layers live in `torchlean.spec`,
`torchlean.runtime` and `torchlean.verify`.
"""

from __future__ import annotations

from . import spec
from .spec import functional
from .spec.errors import (
    DataFormatError,
    FieldMismatchError,
    ShapeError,
    TorchLeanError,
    UnsupportedOperation,
)
from .spec.tensor import Tensor, tensor

__version__ = "0.1.0"

__all__ = [
    "spec", "functional", "Tensor", "tensor", "DataFormatError", "FieldMismatchError",
    "ShapeError", "TorchLeanError", "UnsupportedOperation", "__version__",
]
