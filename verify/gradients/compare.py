"""Entry-by-entry comparison of an analytic derivative with a reference, into a `Comparison`.

Both sides may be floats, exact Fractions, mpmath numbers or intervals. An entry passes
when the distance between the two (as intervals; a number is a point) is at most its
tolerance. Whenever either side is not a plain float the test is done in exact rational
arithmetic on the endpoints, so interval containment and exact equality are decided
without rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from .report import Comparison
from .trees import interval_bounds

__all__ = ["compare", "Namer"]

# Maps an entry (or direction) number to its display name and index.
Namer = Callable[[int], tuple[str, tuple[int, ...] | None]]


def _mid(lo: Any, hi: Any) -> Any:
    if lo == hi:
        return lo
    if isinstance(lo, float) or isinstance(hi, float):
        return float(lo) / 2 + float(hi) / 2
    return (lo + hi) / 2


def _rel(err: float, ref: float) -> float:
    if err == 0:
        return 0.0
    return err / abs(ref) if ref != 0 else math.inf


def _pick_worst(
    errors: np.ndarray[Any, Any], excess: np.ndarray[Any, Any], failed: np.ndarray[Any, Any]
) -> int:
    """The failing entry furthest beyond its tolerance (ties, e.g. zero tolerances: the
    largest error), else the entry with the largest error."""
    errs = np.nan_to_num(np.asarray(errors, dtype=np.float64), nan=np.inf)
    if failed.any():
        candidates = np.flatnonzero(failed)
        return int(max(candidates, key=lambda j: (excess[j], errs[j])))
    return int(np.argmax(errs)) if errs.size else 0


def compare(
    label: str,
    analytic: np.ndarray[Any, Any],
    reference: np.ndarray[Any, Any],
    tolerance: np.ndarray[Any, Any],
    name_of: Namer,
    *,
    prove_bound: bool = False,
    exact_error: bool = False,
) -> Comparison:
    """Compare 1-d arrays of analytic and reference values with per-entry tolerances.

    With `prove_bound`, the reference is a rigorous enclosure of the true derivative and
    the comparison also reports max over entries of sup |analytic - t| for t in the
    enclosure, a proven bound on the analytic side's error. With `exact_error` and
    exact points on both sides, the exact rational maximum error is reported too.
    """
    a = np.asarray(analytic).reshape(-1)
    r = np.asarray(reference).reshape(-1)
    tol = np.asarray(tolerance, dtype=np.float64).reshape(-1)
    n = a.size
    if n == 0:
        return Comparison(label, True, 0, 0.0, 0.0, None, None, 0.0, 0.0, 0.0)
    if a.dtype != object and r.dtype != object:
        af, rf = a.astype(np.float64), r.astype(np.float64)
        with np.errstate(invalid="ignore"):
            err = np.abs(af - rf)
            failed = ~(err <= tol)  # NaN fails
            excess = np.where(tol > 0, err / np.where(tol > 0, tol, 1), np.inf)
        a_show, r_show = af, rf
        exact_err: Fraction | None = None
        bound: float | None = float(np.max(err)) if prove_bound else None
    else:
        alo, ahi = interval_bounds(a)
        rlo, rhi = interval_bounds(r)
        err = np.empty(n)
        excess = np.empty(n)
        failed = np.empty(n, dtype=bool)
        a_show, r_show = np.empty(n), np.empty(n)
        exact = exact_error and all(type(x) is Fraction for x in (*alo, *ahi, *rlo, *rhi))
        points = exact and all(x == y for x, y in zip((*alo, *rlo), (*ahi, *rhi), strict=True))
        worst_exact = Fraction(0)
        bound_val = 0.0
        for j in range(n):
            ends = (alo[j], ahi[j], rlo[j], rhi[j])
            if any(isinstance(v, float) and math.isnan(v) for v in ends):
                failed[j], err[j], excess[j] = True, math.nan, math.inf
                a_show[j] = r_show[j] = math.nan
                continue
            am, rm = _mid(alo[j], ahi[j]), _mid(rlo[j], rhi[j])
            a_show[j], r_show[j] = float(am), float(rm)
            gap = max(alo[j] - rhi[j], rlo[j] - ahi[j], 0)
            failed[j] = gap > Fraction(tol[j]) if math.isfinite(tol[j]) else False
            diff = abs(am - rm)
            err[j] = float(diff)
            excess[j] = float(gap) / tol[j] if tol[j] > 0 else (math.inf if gap > 0 else 0.0)
            if points:
                worst_exact = max(worst_exact, abs(alo[j] - rlo[j]))
            if prove_bound:
                bound_val = max(bound_val, float(max(abs(ahi[j] - rlo[j]), abs(rhi[j] - alo[j]))))
        exact_err = worst_exact if points else None
        bound = bound_val if prove_bound else None
    w = _pick_worst(err, excess, failed)
    name, index = name_of(w)
    rel = max((_rel(float(e), float(rv)) for e, rv in zip(err, r_show, strict=True)), default=0.0)
    return Comparison(
        label=label,
        passed=not bool(failed.any()),
        count=n,
        max_abs_error=float(np.max(np.nan_to_num(err, nan=np.inf))),
        max_rel_error=float(np.nan_to_num(rel, nan=np.inf)),
        worst_name=name,
        worst_index=index,
        worst_analytic=float(a_show[w]),
        worst_reference=float(r_show[w]),
        worst_tolerance=float(tol[w]),
        failures=int(np.count_nonzero(failed)),
        exact_max_abs_error=exact_err,
        error_bound=bound,
    )
