"""`sgd`: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

Only rational operations, so it runs exactly over `exact` and encloses over `interval`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ...spec import functional as F
from ...spec.value import Value
from .base import LearningRate, Number, Optimizer, ScalarMath, check_lr, check_real

__all__ = ["SGD", "sgd"]

V = TypeVar("V", bound=Value)


@dataclass(frozen=True)
class SGD(Optimizer):
    """SGD hyperparameters; build with `sgd(...)`. Update equations in `sgd`'s docstring."""

    lr: LearningRate
    momentum: Number = 0
    dampening: Number = 0
    weight_decay: Number = 0
    nesterov: bool = False
    name = "sgd"

    def __post_init__(self) -> None:
        check_lr(self.name, self.lr)
        check_real(self.name, "momentum", self.momentum, low=0)
        check_real(self.name, "dampening", self.dampening, low=0, high=1)
        check_real(self.name, "weight_decay", self.weight_decay, low=0)
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"sgd: nesterov must be a bool, got {self.nesterov!r}")
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(
                "sgd: nesterov=True needs momentum > 0 and dampening == 0, got "
                f"momentum={self.momentum!r}, dampening={self.dampening!r}"
            )

    def slots(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _init_one(self, p: V) -> dict[str, V]:
        return {"momentum_buffer": F.zeros_like(p)} if self.momentum != 0 else {}

    def first_update_differs(self) -> bool:
        return self.momentum != 0  # the buffer starts at the first gradient

    def _coefficients(self, m: ScalarMath[V], lr: Number, t: int) -> dict[str, V]:
        c = {"lr": m.value(m.num(lr))}
        if self.weight_decay != 0:
            c["weight_decay"] = m.value(m.num(self.weight_decay))
        if self.momentum != 0:
            c["momentum"] = m.value(m.num(self.momentum))
            if self.dampening != 0:
                c["1-dampening"] = m.value(1 - m.num(self.dampening))
        return c

    def _update_one(
        self, p: V, g: V, bufs: Mapping[str, V], c: Mapping[str, V], first: bool
    ) -> tuple[V, dict[str, V]]:
        if self.weight_decay != 0:
            g = g + c["weight_decay"] * p
        if self.momentum == 0:
            return p - c["lr"] * g, {}
        if first:
            buf = g  # PyTorch starts the buffer at the first gradient, undamped
        elif self.dampening != 0:
            buf = bufs["momentum_buffer"] * c["momentum"] + c["1-dampening"] * g
        else:
            buf = bufs["momentum_buffer"] * c["momentum"] + g
        d = g + c["momentum"] * buf if self.nesterov else buf
        return p - c["lr"] * d, {"momentum_buffer": buf}


def sgd(
    lr: LearningRate,
    momentum: Number = 0,
    dampening: Number = 0,
    weight_decay: Number = 0,
    nesterov: bool = False,
) -> SGD:
    """Stochastic gradient descent, with PyTorch's `torch.optim.SGD` update.

    At update t = 1, 2, ... with learning rate lr_t (a number, or a schedule's value at
    t - 1), for each parameter p with gradient grad:

        g   = grad + weight_decay * p                  (when weight_decay != 0)
        buf = g                                        (t = 1, when momentum != 0)
        buf = momentum * buf + (1 - dampening) * g     (t > 1)
        d   = g + momentum * buf  if nesterov  else buf   (d = g when momentum == 0)
        p   = p - lr_t * d

    The state keeps `momentum_buffer` per parameter when momentum != 0. Raises ValueError
    for lr < 0, momentum < 0, dampening outside [0, 1], weight_decay < 0, or nesterov
    without momentum or with dampening.
    """
    return SGD(lr, momentum, dampening, weight_decay, nesterov)
