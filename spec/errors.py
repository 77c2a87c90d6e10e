"""The typed errors every layer raises at its boundary.

Each error says what was wrong in terms of the user's objects (op tags, shapes, layer
paths, files and lines), never as a deep NumPy traceback.
"""

from __future__ import annotations

__all__ = [
    "TorchLeanError",
    "ShapeError",
    "UnsupportedOperation",
    "FieldMismatchError",
    "DataFormatError",
    "DomainError",
]


class TorchLeanError(Exception):
    """Base class of every error TorchLean raises on purpose."""


class ShapeError(TorchLeanError, ValueError):
    """Shapes that do not fit an op's shape rule or a layer's declared shape."""


class UnsupportedOperation(TorchLeanError, NotImplementedError):
    """An op that a scalar field (or a backend) cannot evaluate, such as exp over `exact`,
    or that an analysis (IBP, CROWN, a rounding bound, ...) has no rule for.

    With `analysis` the message names the analysis instead of the field.
    """

    def __init__(self, op: str, field: str, reason: str = "", *,
                 analysis: str | None = None) -> None:
        self.op = op
        self.field = field
        self.analysis = analysis
        detail = f": {reason}" if reason else ""
        where = f"by analysis {analysis!r}" if analysis else f"in field {field!r}"
        super().__init__(f"op {op!r} is not supported {where}{detail}")


class FieldMismatchError(TorchLeanError, TypeError):
    """Operands from two different scalar fields (or evaluation contexts) were mixed."""


class DomainError(TorchLeanError, ValueError):
    """A function applied where it has no real value (log of a negative interval, NaN)."""


class DataFormatError(TorchLeanError, ValueError):
    """A file or serialized object that does not have the expected format.

    `where` names the file and the line, byte offset or field that was wrong.
    """

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")
