"""The op table. Importing this package registers every op; see `registry` for the record."""

from . import elementwise, reductions, structural  # noqa: F401  (registration)
from .registry import OPS, Attrs, AttrValue, OpDef, apply, get_op, register

__all__ = ["OPS", "Attrs", "AttrValue", "OpDef", "apply", "get_op", "register"]
