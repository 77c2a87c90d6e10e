"""TorchLean: one model definition, run eagerly or compiled, exactly, in intervals or
bit-exactly in IEEE binary32, with gradients and error bounds you can check.

`import torchlean as tl` is the front door: `tl.nn` (models and losses), `tl.train`
(tasks, runner, fit loops, flags), `tl.optim`, `tl.autograd`, `tl.tensor`. The layers
live in `torchlean.spec`, `torchlean.runtime` and `torchlean.verify`.
"""

from __future__ import annotations

import logging as _logging
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

# The library logs (fit progress at INFO) and never prints; an application that wants the
# messages configures logging (e.g. logging.basicConfig(level=logging.INFO)).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "spec", "nn", "train", "optim", "data", "autograd", "functional", "Tensor", "tensor",
    "DataFormatError", "DomainError", "FieldMismatchError", "ShapeError", "TorchLeanError",
    "UnsupportedOperation", "__version__",
]
