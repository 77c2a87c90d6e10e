"""What an ONNX value is while a model is imported, and the errors an import raises.

A value is either traced (a `Value` of the graph being built) or a `Const`: a NumPy array
known at import time (an initializer, a Constant node's tensor, a shape, or something
folded from those by a structural op). Constants turn into graph parameters only where an
op uses them as data; shape tensors never reach the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec.errors import DataFormatError, UnsupportedOperation

__all__ = ["Const", "OnnxUnsupported", "node_where"]


@dataclass(frozen=True)
class Const:
    """An array known at import time. `scalar` marks a 0-d float of a Constant node, which
    becomes a field constant (exact in every field) rather than a parameter."""

    array: np.ndarray[Any, Any]
    scalar: bool = False

    @property
    def is_float(self) -> bool:
        return bool(self.array.dtype.kind == "f")

    def ints(self, where: str, what: str) -> list[int]:
        """The entries as Python ints (DataFormatError unless the array holds integers)."""
        if self.array.dtype.kind not in "iub":
            raise DataFormatError(where, f"{what} must be an integer tensor, got "
                                  f"{self.array.dtype}")
        return [int(v) for v in self.array.reshape(-1)]


class OnnxUnsupported(UnsupportedOperation):
    """An ONNX operator, attribute or attribute value this importer or exporter does not
    translate. `op` is the ONNX op type (or TorchLean op tag, on export)."""

    def __init__(self, where: str, op: str, reason: str) -> None:
        self.op = op
        self.field = "onnx"
        self.where = where
        Exception.__init__(self, f"{where}: {reason}")


def node_where(path: str, index: int, name: str, op_type: str) -> str:
    """How errors name an ONNX node: file, position, name and op type."""
    label = name if name else "<unnamed>"
    return f"{path}: node {index} ({label!r}, {op_type})"
