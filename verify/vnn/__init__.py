"""torchlean.verify.vnn: real verification problems in their exchange formats, and
verdicts (`holds`, `violated`, `unknown`, `timeout`) re-checked before they are reported.

ONNX models in and out: `load_onnx(path)` imports a model as a TorchLean graph with named
parameters (`OnnxModel`, runnable in every field); `save_onnx(graph, params, path)` writes
a graph (or a built nn model) as ONNX. The `onnx` package is needed only when these are
called (`pip install 'torchlean[onnx]'`). VNN-LIB properties (`read_vnnlib`), instance
lists and result files (`results`), and the verdict engine (`verify_instance`). See
docs/verify-vnncomp.md.

Imports `torchlean.spec`, `torchlean.runtime` and the rest of `torchlean.verify`.
"""

from .engine import Verdict, verify_instance
from .onnx_export import EXPORT_OPSET, save_onnx
from .onnx_import import DEFAULT_MAX_BYTES, MAX_OPSET, MIN_OPSET, OnnxModel, load_onnx
from .onnx_ops import SUPPORTED_OPS
from .onnx_values import OnnxUnsupported
from .results import ResultRow, ResultsCsv, read_instances, read_results, write_result_file
from .vnnlib import Case, InputBox, LinearConstraint, Property, format_vnnlib, read_vnnlib

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXPORT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "OnnxModel",
    "OnnxUnsupported",
    "SUPPORTED_OPS",
    "load_onnx",
    "save_onnx",
    "Case",
    "InputBox",
    "LinearConstraint",
    "Property",
    "format_vnnlib",
    "read_vnnlib",
    "Verdict",
    "verify_instance",
    "ResultRow",
    "ResultsCsv",
    "read_instances",
    "read_results",
    "write_result_file",
]
