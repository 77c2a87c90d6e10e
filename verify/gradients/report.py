"""What a gradient check found: `Comparison` (one analytic gradient against one reference),
`GradcheckReport` (the method, its comparisons, the verdict) and `GradientMismatch`, the
assertion error that carries a failing report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["Comparison", "GradcheckReport", "GradientMismatch"]


@dataclass(frozen=True)
class Comparison:
    """One analytic gradient checked against one reference derivative, entry by entry
    (or direction by direction).

    `max_abs_error` is the largest |analytic - reference| (midpoints for intervals);
    `max_rel_error` divides by |reference| (0/0 counts as 0, x/0 as inf). `worst_*`
    describe the worst entry: the one furthest beyond its tolerance when the check fails,
    else the one with the largest absolute error. `exact_max_abs_error` is the exact
    rational error when both sides are exact.
    """

    label: str
    passed: bool
    count: int
    max_abs_error: float
    max_rel_error: float
    worst_name: str | None
    worst_index: tuple[int, ...] | None
    worst_analytic: float
    worst_reference: float
    worst_tolerance: float
    failures: int = 0
    exact_max_abs_error: Fraction | None = None
    error_bound: float | None = None
    problem: str | None = None

    def summary(self) -> str:
        """A few lines describing this comparison."""
        verdict = "ok" if self.passed else "MISMATCH"
        lines = [f"  [{verdict}] {self.label}"]
        if self.problem is not None:
            lines.append(f"      {self.problem}")
            return "\n".join(lines)
        lines.append(
            f"      checked {self.count}, failed {self.failures}; max abs error "
            f"{self.max_abs_error:.3e}, max rel error {self.max_rel_error:.3e}"
        )
        if self.exact_max_abs_error is not None:
            lines.append(f"      exact max abs error: {self.exact_max_abs_error}")
        if self.error_bound is not None:
            lines.append(f"      proven: |analytic - true derivative| <= {self.error_bound:.3e}")
        if self.worst_name is not None:
            lines.append(
                f"      worst: {self.worst_name}: analytic {self.worst_analytic:.17g}, "
                f"reference {self.worst_reference:.17g}, tolerance {self.worst_tolerance:.3e}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class GradcheckReport:
    """The outcome of `verify.gradcheck`: passed only when every comparison passed."""

    method: str
    directions: str
    comparisons: tuple[Comparison, ...]
    tolerance: str
    kinks: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    @property
    def primary(self) -> Comparison:
        """The comparison that decides what the headline numbers show: the first failing
        one, else the first."""
        for c in self.comparisons:
            if not c.passed:
                return c
        return self.comparisons[0]

    @property
    def max_abs_error(self) -> float:
        return max(c.max_abs_error for c in self.comparisons)

    @property
    def max_rel_error(self) -> float:
        return max(c.max_rel_error for c in self.comparisons)

    @property
    def worst_name(self) -> str | None:
        return self.primary.worst_name

    @property
    def worst_index(self) -> tuple[int, ...] | None:
        return self.primary.worst_index

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        head = "PASSED" if self.passed else "FAILED"
        lines = [f"gradcheck {head}: method {self.method}, {self.directions}"]
        lines += [c.summary() for c in self.comparisons]
        lines.append(f"  tolerance: {self.tolerance}")
        if self.kinks:
            shown = ", ".join(f"{op} x{n}" for op, n in sorted(self.kinks.items()))
            lines.append(
                f"  kinks: the point is at a tie of {shown}; the derivative may not exist "
                "there (move inputs away from kinks: verify.strategies.away_from_kinks)"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class GradientMismatch(AssertionError):
    """Raised by `assert_gradients_match`; `report` holds the full GradcheckReport."""

    def __init__(self, report: GradcheckReport) -> None:
        super().__init__(str(report))
        self.report = report
