"""Learning-rate schedules: pure functions of the number of completed updates.

A schedule `s` is called as `s(step)` and gives the learning rate of the update that
follows `step` completed updates, so `s(0)` is the first update's rate. This is PyTorch's
convention for a scheduler stepped once after every `optimizer.step()`: the rate after
`step` calls of `scheduler.step()`. Every optimizer accepts a schedule where it accepts a
number.

Schedules compute in Python arithmetic on their hyperparameters: `step` and
`exponential` keep `Fraction`s exact (powers by repeated multiplication, the same
roundings on every platform for floats); `cosine` is a float except where its value is
one of its hyperparameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Number, check_real, int_power

__all__ = ["StepSchedule", "ExponentialSchedule", "CosineSchedule", "step", "exponential", "cosine"]


def _check_count(who: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{who}: {name} must be an int >= {low}, got {value!r}")


def _check_step(who: str, t: object) -> int:
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValueError(f"{who}: the step must be an int >= 0, got {t!r}")
    return t


def _power(x: Number, n: int) -> Number:
    return 1 if n == 0 else int_power(x, n)


@dataclass(frozen=True)
class StepSchedule:
    """lr * gamma ** (step // step_size); build with `step(...)`."""

    lr: Number
    step_size: int
    gamma: Number = 0.1

    def __post_init__(self) -> None:
        check_real("schedules.step", "lr", self.lr, low=0)
        _check_count("schedules.step", "step_size", self.step_size, 1)
        check_real("schedules.step", "gamma", self.gamma, low=0)

    def __call__(self, step: int) -> Number:
        t = _check_step("schedules.step", step)
        return self.lr * _power(self.gamma, t // self.step_size)


@dataclass(frozen=True)
class ExponentialSchedule:
    """lr * gamma ** step; build with `exponential(...)`."""

    lr: Number
    gamma: Number

    def __post_init__(self) -> None:
        check_real("schedules.exponential", "lr", self.lr, low=0)
        check_real("schedules.exponential", "gamma", self.gamma, low=0)

    def __call__(self, step: int) -> Number:
        t = _check_step("schedules.exponential", step)
        return self.lr * _power(self.gamma, t)


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warmup, then cosine annealing to min_lr; build with `cosine(...)`."""

    lr: Number
    total_steps: int
    warmup_steps: int = 0
    min_lr: Number = 0

    def __post_init__(self) -> None:
        who = "schedules.cosine"
        check_real(who, "lr", self.lr, low=0)
        _check_count(who, "warmup_steps", self.warmup_steps, 0)
        _check_count(who, "total_steps", self.total_steps, self.warmup_steps + 1)
        check_real(who, "min_lr", self.min_lr, low=0, high=self.lr)

    def __call__(self, step: int) -> Number:
        t = _check_step("schedules.cosine", step)
        warm, total = self.warmup_steps, self.total_steps
        if t < warm:
            return self.lr * (t + 1) / (warm + 1)
        if t == warm:
            return self.lr
        if t >= total:
            return self.min_lr
        cos = math.cos(math.pi * (t - warm) / (total - warm))
        return self.min_lr + (self.lr - self.min_lr) * (1 + cos) / 2


def step(lr: Number, step_size: int, gamma: Number = 0.1) -> StepSchedule:
    """Step decay, PyTorch's `StepLR`: lr(t) = lr * gamma ** (t // step_size).

    Raises ValueError for lr < 0, step_size < 1 or gamma < 0.
    """
    return StepSchedule(lr, step_size, gamma)


def exponential(lr: Number, gamma: Number) -> ExponentialSchedule:
    """Exponential decay, PyTorch's `ExponentialLR`: lr(t) = lr * gamma ** t.

    Raises ValueError for lr < 0 or gamma < 0.
    """
    return ExponentialSchedule(lr, gamma)


def cosine(
    lr: Number, total_steps: int, warmup_steps: int = 0, min_lr: Number = 0
) -> CosineSchedule:
    """Linear warmup over `warmup_steps` updates, then PyTorch's `CosineAnnealingLR`
    from lr down to min_lr over the remaining `total_steps - warmup_steps` updates:

        lr(t) = lr * (t + 1) / (warmup_steps + 1)                       t < warmup_steps
        lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2
                                                         W <= t <= T (W, T: warmup, total)
        lr(t) = min_lr                                                  t >= T

    Warmup convention: the first update already moves (lr / (W + 1), not 0) and the rate
    reaches lr at t = W, where the cosine starts; this is PyTorch's
    `SequentialLR([LinearLR(start_factor=1 / (W + 1), total_iters=W),
    CosineAnnealingLR(T_max=T - W, eta_min=min_lr)], milestones=[W])`. Unlike
    `CosineAnnealingLR`, which rises again after T_max, the rate then stays at min_lr.

    Raises ValueError for lr < 0, warmup_steps < 0, total_steps <= warmup_steps, or
    min_lr outside [0, lr].
    """
    return CosineSchedule(lr, total_steps, warmup_steps, min_lr)
