"""torchlean.verify.vnn: VNN-COMP inputs and outputs (VNN-LIB properties, instance lists,
result files) and the verdict engine over them.

Imports `torchlean.spec`, `torchlean.runtime` and `torchlean.verify`.
"""

from __future__ import annotations

from .vnnlib import Case, InputBox, LinearConstraint, Property, format_vnnlib, read_vnnlib

__all__ = ["Case", "InputBox", "LinearConstraint", "Property", "format_vnnlib", "read_vnnlib"]
