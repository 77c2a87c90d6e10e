"""Rounding-error bounds: a sound bound on |float32 result - real result| of a model over
an input box (ieee32exec, or native float32 in any summation order), and the steered
executions (`worst_order`) that show how close a bound comes to the worst case.

Modules: `bound` (the entry points and the report), `model` (the error model), `rules`
and `affine` (the per-op rule tables of the two passes), `propagate` (the passes over a
graph), `observe` (observed errors), `worst_order` (steered executions).

Imports `torchlean.spec`, `torchlean.runtime` and `torchlean.verify.bounds` (zonotopes).
"""

from . import worst_order
from .bound import (
    ENCLOSURES,
    METHODS,
    MODES,
    ULP_BUDGET,
    RoundingBoundError,
    RoundingReport,
    as_graph,
    error_bound,
    error_bound_at,
    observed_error,
)

__all__ = ["METHODS", "ENCLOSURES", "MODES", "ULP_BUDGET", "RoundingBoundError",
           "RoundingReport", "error_bound", "error_bound_at", "observed_error", "as_graph",
           "worst_order"]
