"""`rmsprop`: RMSprop, optionally centered and with momentum.

It divides by a square root of the squared-gradient average, so over `exact` it raises
`UnsupportedOperation` for 'sqrt'; over `interval` it encloses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ...spec import functional as F
from ...spec.value import Value
from .adam import lerp
from .base import LearningRate, Number, Optimizer, ScalarMath, check_lr, check_real

__all__ = ["RMSprop", "rmsprop"]

V = TypeVar("V", bound=Value)


@dataclass(frozen=True)
class RMSprop(Optimizer):
    """RMSprop hyperparameters; build with `rmsprop(...)`. Equations in its docstring."""

    lr: LearningRate
    alpha: Number = 0.99
    eps: Number = 1e-8
    weight_decay: Number = 0
    momentum: Number = 0
    centered: bool = False
    name = "rmsprop"
    needs_sqrt = True

    def __post_init__(self) -> None:
        check_lr(self.name, self.lr)
        check_real(self.name, "alpha", self.alpha, low=0, high=1, high_open=True)
        check_real(self.name, "eps", self.eps, low=0, low_open=True)
        check_real(self.name, "weight_decay", self.weight_decay, low=0)
        check_real(self.name, "momentum", self.momentum, low=0)
        if not isinstance(self.centered, bool):
            raise TypeError(f"rmsprop: centered must be a bool, got {self.centered!r}")

    def slots(self) -> tuple[str, ...]:
        return (
            ("square_avg",)
            + (("momentum_buffer",) if self.momentum != 0 else ())
            + (("grad_avg",) if self.centered else ())
        )

    def _init_one(self, p: V) -> dict[str, V]:
        return {slot: F.zeros_like(p) for slot in self.slots()}

    def _coefficients(self, m: ScalarMath[V], lr: Number, t: int) -> dict[str, V]:
        alpha = m.num(self.alpha)
        w = 1 - alpha
        c: dict[str, Any] = {"lr": m.num(lr), "alpha": alpha, "w": w, "1-w": 1 - w}
        c["eps"] = m.num(self.eps)
        if self.weight_decay != 0:
            c["weight_decay"] = m.num(self.weight_decay)
        if self.momentum != 0:
            c["momentum"] = m.num(self.momentum)
        return {k: m.value(v) for k, v in c.items()}

    def _update_one(
        self, p: V, g: V, bufs: Mapping[str, V], c: Mapping[str, V], first: bool
    ) -> tuple[V, dict[str, V]]:
        if self.weight_decay != 0:
            g = g + c["weight_decay"] * p
        new: dict[str, V] = {}
        square_avg = new["square_avg"] = bufs["square_avg"] * c["alpha"] + c["w"] * g * g
        if self.centered:
            w_small = abs(1 - self.alpha) < 0.5
            grad_avg = new["grad_avg"] = lerp(bufs["grad_avg"], g, c["w"], w_small, c["1-w"])
            avg = F.sqrt(square_avg - grad_avg * grad_avg) + c["eps"]
        else:
            avg = F.sqrt(square_avg) + c["eps"]
        if self.momentum != 0:
            buf = new["momentum_buffer"] = bufs["momentum_buffer"] * c["momentum"] + g / avg
            return p - c["lr"] * buf, new
        return p - c["lr"] * g / avg, new  # (lr * g) / avg, as ATen's addcdiv


def rmsprop(
    lr: LearningRate = 1e-2,
    alpha: Number = 0.99,
    eps: Number = 1e-8,
    weight_decay: Number = 0,
    momentum: Number = 0,
    centered: bool = False,
) -> RMSprop:
    """RMSprop, with PyTorch's `torch.optim.RMSprop` update.

    At update t = 1, 2, ... with learning rate lr_t, for each parameter p with gradient
    grad, starting from s = a = b = 0:

        g   = grad + weight_decay * p                   (when weight_decay != 0)
        s   = alpha * s + (1 - alpha) * g * g
        a   = lerp(a, g, 1 - alpha) = alpha * a + (1 - alpha) * g      (centered)
        avg = sqrt(s - a * a) + eps  if centered  else  sqrt(s) + eps
        b   = momentum * b + g / avg,  p = p - lr_t * b   (when momentum != 0)
        p   = p - lr_t * g / avg                          (when momentum == 0)

    The state keeps `square_avg` (s), `momentum_buffer` (b, when momentum != 0) and
    `grad_avg` (a, when centered). Raises ValueError for lr < 0, alpha outside [0, 1),
    eps <= 0, weight_decay < 0 or momentum < 0; UnsupportedOperation over a field without
    irrational square roots (`exact`).
    """
    return RMSprop(lr, alpha, eps, weight_decay, momentum, centered)
