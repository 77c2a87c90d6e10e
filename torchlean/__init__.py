"""TorchLean: one model definition, run eagerly or compiled, exactly, in intervals or
bit-exactly in IEEE binary32, with gradients and error bounds you can check.

`import torchlean as tl` is the front door: `tl.nn` (models and losses), `tl.train`
(tasks, runner, fit loops, flags), `tl.optim`, `tl.autograd`, `tl.tensor`. The layers
live in `torchlean.spec`, `torchlean.runtime` and `torchlean.verify`.
"""

from __future__ import annotations

from pathlib import Path as _Path

from . import _checkout

# From a source checkout's root, map spec/, runtime/, verify/ as an install would.
_checkout.map_layers(__name__, _Path(__file__).parent)

from . import spec, train  # noqa: E402
from .runtime import autograd, data, optim  # noqa: E402
from .spec import functional, nn  # noqa: E402
from .spec.errors import (  # noqa: E402
    DataFormatError,
    DomainError,
    FieldMismatchError,
    ShapeError,
    TorchLeanError,
    UnsupportedOperation,
)
from .spec.tensor import Tensor, tensor  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "spec", "nn", "train", "optim", "data", "autograd", "functional", "Tensor", "tensor",
    "DataFormatError", "DomainError", "FieldMismatchError", "ShapeError", "TorchLeanError",
    "UnsupportedOperation", "__version__",
]
