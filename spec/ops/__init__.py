"""The op table. `registry` holds the record and `apply`; `elementwise`, `reductions` and
`structural` register the ops (the `torchlean.spec` package imports them, so every op is
registered before any module of the package is used)."""

from .registry import OPS, Attrs, AttrValue, OpDef, apply, get_op, register

__all__ = ["OPS", "Attrs", "AttrValue", "OpDef", "apply", "get_op", "register"]
