"""Gradient checks: analytic gradients against central differences (binary64, mpmath),
forward-mode dual numbers (exact over Fraction, rigorous over intervals), kinks,
directions, the float allowance, and hypothesis strategies for tests.

Imports `torchlean.spec` and `torchlean.runtime`.
"""

from . import strategies
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
    "strategies",
]
