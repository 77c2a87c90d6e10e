"""Counterexample search: finds planted violations, never reports an unconfirmed point."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.verify.vnn.attack import attack, margin
from torchlean.verify.vnn.bab import Problem

Arr = np.ndarray[Any, Any]
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.3, -1.0]])  # two rows of C . f(x) = W x


def _eval(x: Arr) -> Arr:
    return np.asarray(x @ W.T)


def _grad(x: Arr, weights: Arr) -> Arr:
    return np.asarray(weights @ W)


def _problem(d0: float, d1: float, groups: tuple[tuple[int, ...], ...]) -> Problem:
    return Problem(np.full(3, -1.0), np.full(3, 1.0), groups, np.array([d0, d1]))


def test_margin_is_min_over_groups_of_max_over_rows() -> None:
    p = _problem(0.0, 0.0, ((0,), (0, 1)))
    m, rows = margin(np.array([[1.0, -5.0], [-1.0, 2.0]]), p)
    assert m.tolist() == [1.0, -1.0] and rows.tolist()[1] == 0


def test_gradient_steps_reach_a_vertex_sampling_misses() -> None:
    # min of W0 . x over the cube is -3.5 at (-1, 1, -1); only a thin corner is below -3.4
    p = _problem(-3.4, 10.0, ((0,),))
    seen: list[Arr] = []

    def confirm(x: Arr) -> bool:
        seen.append(x)
        return bool(_eval(x[None, :])[0, 0] <= -3.4)

    x = attack(p, _eval, _grad, confirm, samples=4, seed=1)
    assert x is not None and _eval(x[None, :])[0, 0] <= -3.4
    assert np.all(np.abs(x) <= 1.0)


@settings(max_examples=30, deadline=None)
@given(st.floats(-4.0, 4.0), st.integers(0, 2**31 - 1))
def test_only_confirmed_points_are_returned(d: float, seed: int) -> None:
    p = _problem(d, d, ((0, 1),))
    x = attack(p, _eval, _grad, lambda x: False, seed=seed, samples=16, steps=5)
    assert x is None
    truth = -3.5 <= d  # the conjunction: both rows <= d; W0 reaches -3.5 alone
    x = attack(p, _eval, _grad, lambda x: bool(np.all(_eval(x[None, :]) <= d)),
               seed=seed, samples=16, steps=5)
    if x is not None:
        assert truth and np.all(_eval(x[None, :]) <= d)


# two groups over [0, 1]^50: group 0 (100 - sum x <= 49.5) is nearest at random points but
# out of reach (its excess is >= 0.5, at x = 1); group 1 (3 sum x <= 1) only near x = 0,
# the other way: a search that follows the nearest group never turns towards it
A2 = np.vstack([-np.ones(50), 3 * np.ones(50)])
B2 = np.array([100.0, 0.0])


def _eval2(x: Arr) -> Arr:
    return np.asarray(x @ A2.T + B2)


def _grad2(x: Arr, weights: Arr) -> Arr:
    return np.asarray(weights @ A2)


def test_targeted_restarts_reach_a_group_the_nearest_one_hides() -> None:
    p = Problem(np.zeros(50), np.ones(50), ((0,), (1,)), np.array([49.5, 1.0]))
    tried: list[Arr] = []

    def confirm(x: Arr) -> bool:
        tried.append(x)
        return bool(_eval2(x[None])[0, 1] <= 1.0)

    assert attack(p, _eval2, _grad2, confirm, samples=64) is None
    x = attack(p, _eval2, _grad2, confirm, samples=64, restarts=1)
    assert x is not None and np.all((0 <= x) & (x <= 1)) and 3 * x.sum() <= 1.0
    assert any(np.array_equal(x, t) for t in tried)  # only a confirmed point comes back


def test_targeted_restarts_report_nothing_unconfirmed() -> None:
    p = Problem(np.zeros(50), np.ones(50), ((0,), (1,)), np.array([49.5, 1.0]))
    tried: list[Arr] = []

    def refuse(x: Arr) -> bool:
        tried.append(x)
        return False

    assert attack(p, _eval2, _grad2, refuse, samples=64, restarts=3) is None
    assert tried and all(np.all((0 <= t) & (t <= 1)) for t in tried)  # proposed, in the box
