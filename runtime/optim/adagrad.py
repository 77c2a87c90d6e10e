"""`adagrad`: Adagrad with learning-rate decay and weight decay.

It divides by a square root of the accumulated squared gradients, so over `exact` it
raises `UnsupportedOperation` for 'sqrt'; over `interval` it encloses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ...spec import functional as F
from ...spec.value import Value
from .base import LearningRate, Number, Optimizer, ScalarMath, check_lr, check_real

__all__ = ["Adagrad", "adagrad"]

V = TypeVar("V", bound=Value)


@dataclass(frozen=True)
class Adagrad(Optimizer):
    """Adagrad hyperparameters; build with `adagrad(...)`. Equations in its docstring."""

    lr: LearningRate
    lr_decay: Number = 0
    weight_decay: Number = 0
    initial_accumulator_value: Number = 0
    eps: Number = 1e-10
    name = "adagrad"
    needs_sqrt = True

    def __post_init__(self) -> None:
        check_lr(self.name, self.lr)
        check_real(self.name, "lr_decay", self.lr_decay, low=0)
        check_real(self.name, "weight_decay", self.weight_decay, low=0)
        check_real(self.name, "initial_accumulator_value", self.initial_accumulator_value, low=0)
        check_real(self.name, "eps", self.eps, low=0, low_open=True)

    def slots(self) -> tuple[str, ...]:
        return ("sum",)

    def _init_one(self, p: V) -> dict[str, V]:
        start = F.constant(p, self.initial_accumulator_value)
        return {"sum": F.broadcast_to(start, p.shape)}

    def _coefficients(self, m: ScalarMath[V], lr: Number, t: int) -> dict[str, V]:
        c: dict[str, Any] = {"eps": m.num(self.eps)}
        c["clr"] = m.num(lr) / (1 + (t - 1) * m.num(self.lr_decay))
        if self.weight_decay != 0:
            c["weight_decay"] = m.num(self.weight_decay)
        return {k: m.value(v) for k, v in c.items()}

    def _update_one(
        self, p: V, g: V, bufs: Mapping[str, V], c: Mapping[str, V], first: bool
    ) -> tuple[V, dict[str, V]]:
        if self.weight_decay != 0:
            g = g + c["weight_decay"] * p
        total = bufs["sum"] + g * g
        std = F.sqrt(total) + c["eps"]
        return p - c["clr"] * g / std, {"sum": total}  # (clr * g) / std, as ATen's addcdiv


def adagrad(
    lr: LearningRate = 1e-2,
    lr_decay: Number = 0,
    weight_decay: Number = 0,
    initial_accumulator_value: Number = 0,
    eps: Number = 1e-10,
) -> Adagrad:
    """Adagrad, with PyTorch's `torch.optim.Adagrad` update.

    At update t = 1, 2, ... with learning rate lr_t, for each parameter p with gradient
    grad, starting from s = initial_accumulator_value:

        g   = grad + weight_decay * p                   (when weight_decay != 0)
        clr = lr_t / (1 + (t - 1) * lr_decay)
        s   = s + g * g
        p   = p - clr * g / (sqrt(s) + eps)

    The state keeps `sum` (s) per parameter. Raises ValueError for lr < 0, lr_decay < 0,
    weight_decay < 0, initial_accumulator_value < 0 or eps <= 0; UnsupportedOperation over
    a field without irrational square roots (`exact`).
    """
    return Adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps)
