"""torchlean.verify: gradient checks, rounding-error bounds, IBP/CROWN, certificates, strategies.

Imports `torchlean.spec` and `torchlean.runtime`.

Gradient checks: `gradcheck(f_or_task, inputs, method=...)` returns a `GradcheckReport`;
`assert_gradients_match(...)` raises `GradientMismatch` with it. Hypothesis strategies
live in `torchlean.verify.strategies`, the pytest fixture in
`torchlean.verify.pytest_plugin`.

Robustness: `bounds.ibp` / `bounds.crown` (sound in binary64), `certify_robustness` and
`check_certificate` (exact re-check over Fraction); see docs/verify-bounds.md.

Rounding: `rounding.error_bound` bounds |float32 - real| over a box; `worst_order` runs
the steered executions that show how close the bound is to the worst case.

VNN-COMP formats (`torchlean.verify.vnn`): `load_onnx` imports an ONNX model as a graph
with named parameters, `save_onnx` writes one; see docs/verify-vnncomp.md.
"""

from . import bounds, gradients, rounding
from .bounds.certificate import Certificate, CheckResult, certify_robustness, check_certificate
from .bounds.model_file import export_model, load_model
from .gradients import (
    METHODS,
    Comparison,
    DualField,
    GradcheckReport,
    GradientMismatch,
    MPFloatField,
    assert_gradients_match,
    gradcheck,
    kink_distance,
    register_adapter,
    strategies,
)
from .rounding import worst_order
from .vnn import load_onnx, save_onnx

__all__ = [
    "export_model",
    "load_model",
    "rounding",
    "gradients",
    "strategies",
    "worst_order",
    "METHODS",
    "Certificate",
    "CheckResult",
    "bounds",
    "certify_robustness",
    "check_certificate",
    "Comparison",
    "DualField",
    "GradcheckReport",
    "GradientMismatch",
    "MPFloatField",
    "assert_gradients_match",
    "gradcheck",
    "kink_distance",
    "register_adapter",
    "load_onnx",
    "save_onnx",
]
