"""torchlean.verify: gradient checks, rounding-error bounds, IBP/CROWN, certificates, strategies.

Imports `torchlean.spec` and `torchlean.runtime`.

Gradient checks: `gradcheck(f_or_task, inputs, method=...)` returns a `GradcheckReport`;
`assert_gradients_match(...)` raises `GradientMismatch` with it. Hypothesis strategies
live in `torchlean.verify.strategies`, the pytest fixture in
`torchlean.verify.pytest_plugin`.
"""

from .adapters import register_adapter
from .dual import DualField
from .gradcheck import METHODS, assert_gradients_match, gradcheck
from .kinks import kink_distance
from .mpfloat import MPFloatField
from .report import Comparison, GradcheckReport, GradientMismatch

__all__ = [
    "METHODS",
    "Comparison",
    "DualField",
    "GradcheckReport",
    "GradientMismatch",
    "MPFloatField",
    "assert_gradients_match",
    "gradcheck",
    "kink_distance",
    "register_adapter",
]
