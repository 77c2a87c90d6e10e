"""torchlean.verify.vnn: VNN-COMP inputs and outputs (VNN-LIB properties, instance lists,
result files) and the verdict engine over them. See docs/verify-vnncomp.md.

Imports `torchlean.spec`, `torchlean.runtime` and `torchlean.verify`.
"""

from __future__ import annotations

from .engine import Verdict, verify_instance
from .results import ResultRow, ResultsCsv, read_instances, read_results, write_result_file
from .vnnlib import Case, InputBox, LinearConstraint, Property, format_vnnlib, read_vnnlib

__all__ = [
    "Case", "InputBox", "LinearConstraint", "Property", "format_vnnlib", "read_vnnlib",
    "Verdict", "verify_instance",
    "ResultRow", "ResultsCsv", "read_instances", "read_results", "write_result_file",
]
