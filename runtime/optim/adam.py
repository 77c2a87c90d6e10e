"""`adam` and `adamw`: Adam with L2-coupled or decoupled weight decay.

Both divide by a square root of the second-moment average, so over `exact` they raise
`UnsupportedOperation` for 'sqrt' at `init`/`update`; over `interval` they enclose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ...spec import functional as F
from ...spec.value import Value
from .base import LearningRate, Number, Optimizer, ScalarMath, check_lr, check_real, int_power

__all__ = ["Adam", "AdamW", "adam", "adamw", "lerp"]

V = TypeVar("V", bound=Value)


def lerp(a: V, b: V, w: V, w_small: bool, one_minus_w: V) -> V:
    """a + w * (b - a), evaluated as PyTorch's lerp does (ATen Lerp.h): from `a` when the
    weight is small (|w| < 0.5), else from `b` as b - (b - a) * (1 - w)."""
    return a + w * (b - a) if w_small else b - (b - a) * one_minus_w


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam hyperparameters; build with `adam(...)`. Update equations in `adam`'s docstring."""

    lr: LearningRate
    betas: tuple[Number, Number]
    eps: Number
    weight_decay: Number
    name = "adam"
    needs_sqrt = True
    decoupled: ClassVar[bool] = False  # True: AdamW's decoupled weight decay

    def __post_init__(self) -> None:
        who = self.name
        check_lr(who, self.lr)
        if not isinstance(self.betas, tuple) or len(self.betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {self.betas!r}")
        check_real(who, "betas[0]", self.betas[0], low=0, high=1, high_open=True)
        check_real(who, "betas[1]", self.betas[1], low=0, high=1, high_open=True)
        check_real(who, "eps", self.eps, low=0, low_open=True)
        check_real(who, "weight_decay", self.weight_decay, low=0)

    def slots(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _init_one(self, p: V) -> dict[str, V]:
        return {"exp_avg": F.zeros_like(p), "exp_avg_sq": F.zeros_like(p)}

    def _coefficients(self, m: ScalarMath[V], lr: Number, t: int) -> dict[str, V]:
        beta1, beta2 = m.num(self.betas[0]), m.num(self.betas[1])
        w1 = 1 - beta1
        step_size = m.num(lr) / (1 - int_power(beta1, t))
        c: dict[str, Any] = {
            "w1": w1,
            "1-w1": 1 - w1,
            "beta2": beta2,
            "1-beta2": 1 - beta2,
            "bias_correction2_sqrt": m.sqrt(1 - int_power(beta2, t)),
            "eps": m.num(self.eps),
            "step_size": step_size,
        }
        if self.weight_decay != 0:
            wd = m.num(self.weight_decay)
            c["decay"] = 1 - m.num(lr) * wd if self.decoupled else wd
        return {k: m.value(v) for k, v in c.items()}

    def _update_one(
        self, p: V, g: V, bufs: Mapping[str, V], c: Mapping[str, V], first: bool
    ) -> tuple[V, dict[str, V]]:
        if self.weight_decay != 0:
            if self.decoupled:
                p = p * c["decay"]
            else:
                g = g + c["decay"] * p
        exp_avg = lerp(bufs["exp_avg"], g, c["w1"], abs(1 - self.betas[0]) < 0.5, c["1-w1"])
        exp_avg_sq = bufs["exp_avg_sq"] * c["beta2"] + c["1-beta2"] * g * g
        denom = F.sqrt(exp_avg_sq) / c["bias_correction2_sqrt"] + c["eps"]
        new_p = p - c["step_size"] * exp_avg / denom  # (s * m) / d, as ATen's addcdiv
        return new_p, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW hyperparameters; build with `adamw(...)`. Update equations in `adamw`'s docstring."""

    name = "adamw"
    decoupled = True


def adam(
    lr: LearningRate = 1e-3,
    betas: tuple[Number, Number] = (0.9, 0.999),
    eps: Number = 1e-8,
    weight_decay: Number = 0,
) -> Adam:
    """Adam, with PyTorch's `torch.optim.Adam` update (amsgrad=False).

    At update t = 1, 2, ... with learning rate lr_t, for each parameter p with gradient
    grad, starting from m = v = 0:

        g = grad + weight_decay * p                    (when weight_decay != 0)
        m = lerp(m, g, 1 - beta1)      = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - (lr_t / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    The state keeps `exp_avg` (m) and `exp_avg_sq` (v) per parameter. Raises ValueError
    for lr < 0, betas outside [0, 1), eps <= 0 or weight_decay < 0; UnsupportedOperation
    over a field without irrational square roots (`exact`).
    """
    return Adam(lr, _pair(betas), eps, weight_decay)


def adamw(
    lr: LearningRate = 1e-3,
    betas: tuple[Number, Number] = (0.9, 0.999),
    eps: Number = 1e-8,
    weight_decay: Number = 1e-2,
) -> AdamW:
    """AdamW: Adam with decoupled weight decay, with PyTorch's `torch.optim.AdamW` update.

    As `adam` with weight_decay = 0, after first shrinking each parameter:

        p = p * (1 - lr_t * weight_decay)
        m = lerp(m, grad, 1 - beta1)
        v = beta2 * v + (1 - beta2) * grad * grad
        p = p - (lr_t / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Same state and errors as `adam`.
    """
    return AdamW(lr, _pair(betas), eps, weight_decay)


def _pair(betas: Any) -> Any:
    """Lists are accepted for betas as PyTorch accepts them; anything else is checked later."""
    return tuple(betas) if isinstance(betas, list) else betas
