"""Counterexample search: random and corner sampling, then projected gradient descent on
the margin of the unsafe condition. Untrusted: every point it proposes goes through the
caller's `confirm` (exact) before it is reported.

The margin of a point is `min over groups g of max over rows r in g of (C[r].y - d[r])`:
it is <= 0 exactly when the point meets some group (every row of that group at or below
its right-hand side), so the search minimises it. With `restarts`, a targeted search
follows: from random points, one per group, signed-gradient steps on that group's own
margin (the largest excess over its rows), so that a group other than the nearest one
is also pursued (PGD with restarts, Madry et al. 2018, on margin losses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .bab import ConfirmFn, EvalFn, Problem

__all__ = ["margin", "attack", "targeted_pgd"]

Arr = np.ndarray[Any, np.dtype[np.float64]]
GradFn = Callable[[Arr, Arr], Arr]  # (points (N, n), row weights (N, R)) -> (N, n)


def margin(values: Arr, problem: Problem) -> tuple[Arr, Arr]:
    """The margin of each point (N,) from its row values (N, R), and the row that sets it
    (the worst row of the best group), for the gradient step."""
    per_group = []
    worst_row = []
    for g in problem.groups:
        rows = np.asarray(g)
        excess = values[:, rows] - problem.d_up[rows]
        per_group.append(excess.max(axis=1))
        worst_row.append(rows[np.argmax(excess, axis=1)])
    groups = np.stack(per_group, axis=1)  # (N, G)
    best = np.argmin(groups, axis=1)
    rows_of = np.stack(worst_row, axis=1)
    return groups[np.arange(len(best)), best], rows_of[np.arange(len(best)), best]


def _corners(lo: Arr, hi: Arr, limit: int) -> Arr:
    n = lo.shape[0]
    if n > 12 or (1 << n) > limit:
        return np.empty((0, n))
    bits = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1
    return np.where(bits == 1, hi[None, :], lo[None, :])


def attack(problem: Problem, evaluate: EvalFn, gradient: GradFn | None, confirm: ConfirmFn,
           *, seed: int = 0, samples: int = 512, steps: int = 40, starts: int = 16,
           restarts: int = 0, deadline: float | None = None) -> Arr | None:
    """A confirmed counterexample in the problem's box, or None if none was found.

    Samples `samples` uniform points plus the centre and (for up to 12 inputs) the
    corners; then runs `steps` signed-gradient steps from the `starts` best points, each
    projected back into the box; then `restarts` rounds of `targeted_pgd`. `gradient`
    may be None (sampling only).
    """
    lo, hi = problem.lower, problem.upper
    rng = np.random.default_rng(seed)
    pts = np.concatenate([
        (0.5 * (lo + hi))[None, :],
        _corners(lo, hi, 4096),
        lo + (hi - lo) * rng.random((samples, lo.shape[0])),
    ])
    found = _first_confirmed(pts, problem, evaluate, confirm)
    if found is not None or gradient is None:
        return found
    m, _ = margin(np.asarray(evaluate(pts), np.float64), problem)
    x = pts[np.argsort(m)[:starts]].copy()
    step = 0.25 * (hi - lo)
    for _ in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            return None
        vals = np.asarray(evaluate(x), np.float64)
        m, rows = margin(vals, problem)
        weights = np.zeros_like(vals)
        weights[np.arange(len(rows)), rows] = 1.0
        g = np.asarray(gradient(x, weights), np.float64)
        x = np.clip(x - step * np.sign(g), lo, hi)
        found = _first_confirmed(x, problem, evaluate, confirm)
        if found is not None:
            return found
        step = step * 0.85
    if restarts > 0:
        return targeted_pgd(problem, evaluate, gradient, confirm, rng=rng, restarts=restarts,
                            steps=steps, deadline=deadline)
    return None


def targeted_pgd(problem: Problem, evaluate: EvalFn, gradient: GradFn, confirm: ConfirmFn,
                 *, rng: np.random.Generator | None = None, restarts: int = 4,
                 steps: int = 40, deadline: float | None = None) -> Arr | None:
    """A confirmed counterexample found by `restarts` rounds of targeted projected
    gradient descent, or None: each round starts one uniform random point per group and
    takes `steps` signed-gradient steps on that group's margin (its largest excess
    C[r].y - d[r]), the step shrinking from half the box's width by 0.9 a step."""
    lo, hi = problem.lower, problem.upper
    rng = np.random.default_rng(0) if rng is None else rng
    groups = [np.asarray(g) for g in problem.groups]
    target = np.arange(len(groups))
    for _ in range(restarts):
        x = lo + (hi - lo) * rng.random((len(groups), lo.shape[0]))
        step = 0.5 * (hi - lo)
        for _ in range(steps):
            if deadline is not None and time.monotonic() > deadline:
                return None
            vals = np.asarray(evaluate(x), np.float64)
            weights = np.zeros_like(vals)
            for i, rows in zip(target, groups, strict=True):
                weights[i, rows[np.argmax(vals[i, rows] - problem.d_up[rows])]] = 1.0
            g = np.asarray(gradient(x, weights), np.float64)
            x = np.clip(x - step * np.sign(g), lo, hi)
            found = _first_confirmed(x, problem, evaluate, confirm)
            if found is not None:
                return found
            step = step * 0.9
    return None


def _first_confirmed(pts: Arr, problem: Problem, evaluate: EvalFn,
                     confirm: ConfirmFn) -> Arr | None:
    m, _ = margin(np.asarray(evaluate(pts), np.float64), problem)
    for i in np.argsort(m):
        if m[i] > 0:
            return None
        if confirm(pts[i]):
            return np.asarray(pts[i], np.float64)
    return None
