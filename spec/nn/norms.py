"""`layer_norm(n)` and `batch_norm(n)`: normalisation over features or over the batch.

Both are written with ops only (mean, square, sqrt, ...), so they run on every field
where those ops do (`exact` has no sqrt of a non-square: there they raise
UnsupportedOperation). Constants (eps, momentum, the unbiased-variance factor) are formed
as exact rationals and rounded by each field.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

from .. import functional as F
from ..errors import ShapeError
from ..value import Value
from .checks import call_text, positive_int, real_number
from .layer import Layer, ParamSpec, Scope
from .shapetypes import N, Vec

__all__ = ["LayerNorm", "BatchNorm", "layer_norm", "batch_norm"]

V = TypeVar("V", bound=Value)


def _affine_specs(n: int) -> tuple[ParamSpec, ParamSpec]:
    return ParamSpec("weight", (n,), "ones"), ParamSpec("bias", (n,), "zeros")



def check_batch_norm(layer: str, n: object, eps: object, momentum: object) -> None:
    """Reject a non-positive size, eps <= 0 or momentum outside [0, 1], naming the layer."""
    where = call_text(layer, n=n, eps=eps, momentum=momentum)
    positive_int(where, "n", n)
    if not real_number(where, "eps", eps) > 0:
        raise ValueError(f"{where}: eps must be positive, got {eps!r}")
    if not 0 <= real_number(where, "momentum", momentum) <= 1:
        raise ValueError(f"{where}: momentum must be in [0, 1], got {momentum!r}")


def batch_norm_specs(n: int) -> tuple[ParamSpec, ...]:
    """weight 1 and bias 0 (trained), running_mean 0 and running_var 1 (buffers)."""
    return (
        *_affine_specs(n),
        ParamSpec("running_mean", (n,), "zeros", buffer=True),
        ParamSpec("running_var", (n,), "ones", buffer=True),
    )

@dataclass(frozen=True, slots=True, repr=False)
class LayerNorm(Layer[Vec[N], Vec[N]], Generic[N]):
    """Normalise each example over its last axis of size n, then scale and shift.

    Parameters "weight" (n,) initialised to 1 and "bias" (n,) initialised to 0 (PyTorch's
    nn.LayerNorm defaults); the variance is the biased one, as PyTorch's.
    """

    normalized_shape: N
    eps: float = 1e-5

    def __post_init__(self) -> None:
        where = call_text("layer_norm", n=self.normalized_shape, eps=self.eps)
        positive_int(where, "n", self.normalized_shape)
        if not real_number(where, "eps", self.eps) > 0:
            raise ValueError(f"{where}: eps must be positive, got {self.eps!r}")

    def describe(self) -> str:
        return f"layer_norm {self.normalized_shape}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return _affine_specs(self.normalized_shape)

    def forward(self, x: V, scope: Scope[V]) -> V:
        n = self.normalized_shape
        if x.ndim < 1 or x.shape[-1] != n:
            raise ShapeError(f"{scope.where(self)}: expected input (..., {n}), got {x.shape}")
        centred = x - F.mean(x, -1, keepdims=True)
        var = F.mean(F.square(centred), -1, keepdims=True)
        normed = centred / F.sqrt(var + Fraction(self.eps))
        return normed * scope.param("weight") + scope.param("bias")

    def input_width(self) -> int | None:
        return self.normalized_shape

    def __repr__(self) -> str:
        return f"layer_norm({self.normalized_shape}, eps={self.eps!r})"


@dataclass(frozen=True, slots=True, repr=False)
class BatchNorm(Layer[Vec[N], Vec[N]], Generic[N]):
    """Batch normalisation of inputs (batch, n) (PyTorch's nn.BatchNorm1d on 2-D input).

    Train mode normalises with the batch mean and biased variance and returns running
    statistics updated as running = (1 - momentum) * running + momentum * batch_stat, with
    the unbiased batch variance (as PyTorch); eval mode normalises with the running
    statistics. Parameters "weight" (n,) = 1 and "bias" (n,) = 0; buffers
    "running_mean" (n,) = 0 and "running_var" (n,) = 1 (PyTorch's defaults; PyTorch's
    num_batches_tracked counter is not kept, it only matters when momentum is None).
    """

    num_features: N
    eps: float = 1e-5
    momentum: float = 0.1

    def __post_init__(self) -> None:
        check_batch_norm("batch_norm", self.num_features, self.eps, self.momentum)

    def describe(self) -> str:
        return f"batch_norm {self.num_features}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return batch_norm_specs(self.num_features)

    def forward(self, x: V, scope: Scope[V]) -> V:
        n = self.num_features
        if x.ndim != 2 or x.shape[1] != n:
            raise ShapeError(f"{scope.where(self)}: expected input (batch, {n}), got {x.shape}")
        eps = Fraction(self.eps)
        if scope.ctx.mode == "eval":
            mean, var = scope.buffer("running_mean"), scope.buffer("running_var")
            centred = x - mean
        else:
            batch = x.shape[0]
            if batch < 2:
                raise ShapeError(
                    f"{scope.where(self)}: train mode needs a batch of at least 2 to estimate "
                    f"the variance, got {x.shape}"
                )
            mean = F.mean(x, 0)
            centred = x - mean
            var = F.mean(F.square(centred), 0)
            m = Fraction(self.momentum)
            unbiased = var * Fraction(batch, batch - 1)
            scope.update("running_mean", scope.buffer("running_mean") * (1 - m) + mean * m)
            scope.update("running_var", scope.buffer("running_var") * (1 - m) + unbiased * m)
        normed = centred / F.sqrt(var + eps)
        return normed * scope.param("weight") + scope.param("bias")

    def input_width(self) -> int | None:
        return self.num_features

    def __repr__(self) -> str:
        return f"batch_norm({self.num_features}, eps={self.eps!r}, momentum={self.momentum!r})"


def layer_norm(n: N, eps: float = 1e-5) -> LayerNorm[N]:
    """Layer normalisation over the last axis of size n (PyTorch's nn.LayerNorm(n)):
    (x - mean) / sqrt(var + eps) * weight + bias, with weight = 1 and bias = 0 initially.
    Non-positive n or eps raises ValueError."""
    return LayerNorm(n, eps)


def batch_norm(n: N, eps: float = 1e-5, momentum: float = 0.1) -> BatchNorm[N]:
    """Batch normalisation of (batch, n) inputs (PyTorch's nn.BatchNorm1d(n)); running
    statistics are buffers, updated (and returned) in train mode only. Non-positive n or
    eps, or momentum outside [0, 1], raises ValueError."""
    return BatchNorm(n, eps, momentum)
