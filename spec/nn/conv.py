"""Image layers over (N, C, H, W) inputs: `conv2d`, `max_pool2d`, `avg_pool2d`,
`global_avg_pool` and `batch_norm2d`, each a thin layer over `functional`'s composites.

Channel counts are typed (`Chw[C, H, W]`); spatial sizes stay `Any` because the output
size rule of a convolution is arithmetic mypy cannot do. A spatial size that leaves no
output raises ShapeError naming the layer when the forward pass meets it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Generic, TypeVar

from .. import functional as F
from ..errors import ShapeError
from ..value import Value
from .checks import call_text, positive_int
from .layer import Layer, Module, ParamSpec, Scope
from .norms import batch_norm_specs, check_batch_norm
from .shapetypes import Chw, M, N, Vec

__all__ = [
    "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "BatchNorm2d", "conv2d",
    "max_pool2d", "avg_pool2d", "global_avg_pool", "batch_norm2d",
]

V = TypeVar("V", bound=Value)
Pair = int | tuple[int, int]


def _check_pair(where: str, name: str, value: object, minimum: int) -> None:
    pair = (value, value) if isinstance(value, int) else value
    if not isinstance(pair, tuple) or len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair
    ):
        raise ValueError(f"{where}: {name} must be an int >= {minimum} or a pair, got {value!r}")


def _run(layer: Module, scope: Scope[V], fn: Callable[[], V]) -> V:
    """Call `fn`, re-raising a shape error with the layer's path in front."""
    try:
        return fn()
    except ShapeError as e:
        raise ShapeError(f"{scope.where(layer)}: {e}") from None


@dataclass(frozen=True, slots=True, repr=False)
class Conv2d(Layer[Chw[N, Any, Any], Chw[M, Any, Any]], Generic[N, M]):
    """2-D convolution (PyTorch's nn.Conv2d, zero padding). Parameters "weight"
    (out, in // groups, kh, kw) and "bias" (out,), both U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    with fan_in = in // groups * kh * kw (PyTorch's kaiming_uniform(a=sqrt(5)) default)."""

    in_channels: N
    out_channels: M
    kernel: Pair
    stride: Pair = 1
    padding: Pair = 0
    dilation: Pair = 1
    groups: int = 1
    bias: bool = True

    def __post_init__(self) -> None:
        where = call_text("conv2d", in_channels=self.in_channels,
                          out_channels=self.out_channels, kernel=self.kernel)
        positive_int(where, "in_channels", self.in_channels)
        positive_int(where, "out_channels", self.out_channels)
        positive_int(where, "groups", self.groups)
        _check_pair(where, "kernel", self.kernel, 1)
        _check_pair(where, "stride", self.stride, 1)
        _check_pair(where, "padding", self.padding, 0)
        _check_pair(where, "dilation", self.dilation, 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{where}: groups={self.groups} must divide both channel counts")
        if not isinstance(self.bias, bool):
            raise ValueError(f"{where}: bias must be a bool, got {self.bias!r}")

    def _kernel(self) -> tuple[int, int]:
        k = self.kernel
        return (k, k) if isinstance(k, int) else k

    def describe(self) -> str:
        kh, kw = self._kernel()
        return f"conv2d {self.in_channels}->{self.out_channels} {kh}x{kw}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        kh, kw = self._kernel()
        cg = self.in_channels // self.groups
        bound = 1.0 / math.sqrt(cg * kh * kw)
        weight = ParamSpec("weight", (self.out_channels, cg, kh, kw), "uniform", bound)
        if not self.bias:
            return (weight,)
        return (weight, ParamSpec("bias", (self.out_channels,), "uniform", bound))

    def forward(self, x: V, scope: Scope[V]) -> V:
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ShapeError(f"{scope.where(self)}: expected input (N, {self.in_channels}, H, W)"
                             f", got {x.shape}")
        b = scope.param("bias") if self.bias else None
        return _run(self, scope, lambda: F.conv2d(
            x, scope.param("weight"), b, self.stride, self.padding, self.dilation, self.groups))

    def input_width(self) -> int | None:
        return None

    def output_width(self, width: int | None) -> int | None:
        return None

    def __repr__(self) -> str:
        return (f"conv2d({self.in_channels}, {self.out_channels}, {self.kernel!r}, "
                f"stride={self.stride!r}, padding={self.padding!r}, "
                f"dilation={self.dilation!r}, groups={self.groups}, bias={self.bias})")


@dataclass(frozen=True, slots=True, repr=False)
class MaxPool2d(Layer[Chw[Any, Any, Any], Chw[Any, Any, Any]]):
    """Max pooling (PyTorch's nn.MaxPool2d); gradient to the first row-major winner."""

    kernel: Pair
    stride: Pair | None = None
    padding: Pair = 0

    def __post_init__(self) -> None:
        where = call_text("max_pool2d", kernel=self.kernel, stride=self.stride)
        _check_pair(where, "kernel", self.kernel, 1)
        if self.stride is not None:
            _check_pair(where, "stride", self.stride, 1)
        _check_pair(where, "padding", self.padding, 0)

    def describe(self) -> str:
        return f"max_pool2d {self.kernel}"

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _run(self, scope, lambda: F.max_pool2d(x, self.kernel, self.stride, self.padding))

    def output_width(self, width: int | None) -> int | None:
        return None

    def __repr__(self) -> str:
        return f"max_pool2d({self.kernel!r}, stride={self.stride!r}, padding={self.padding!r})"


@dataclass(frozen=True, slots=True, repr=False)
class AvgPool2d(Layer[Chw[Any, Any, Any], Chw[Any, Any, Any]]):
    """Average pooling, zero padding counted (PyTorch's nn.AvgPool2d defaults)."""

    kernel: Pair
    stride: Pair | None = None
    padding: Pair = 0

    def __post_init__(self) -> None:
        where = call_text("avg_pool2d", kernel=self.kernel, stride=self.stride)
        _check_pair(where, "kernel", self.kernel, 1)
        if self.stride is not None:
            _check_pair(where, "stride", self.stride, 1)
        _check_pair(where, "padding", self.padding, 0)

    def describe(self) -> str:
        return f"avg_pool2d {self.kernel}"

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _run(self, scope, lambda: F.avg_pool2d(x, self.kernel, self.stride, self.padding))

    def output_width(self, width: int | None) -> int | None:
        return None

    def __repr__(self) -> str:
        return f"avg_pool2d({self.kernel!r}, stride={self.stride!r}, padding={self.padding!r})"


@dataclass(frozen=True, slots=True, repr=False)
class GlobalAvgPool(Layer[Chw[N, Any, Any], Vec[N]]):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""

    def describe(self) -> str:
        return "global_avg_pool"

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _run(self, scope, lambda: F.global_avg_pool(x))

    def output_width(self, width: int | None) -> int | None:
        return None

    def __repr__(self) -> str:
        return "global_avg_pool()"


@dataclass(frozen=True, slots=True, repr=False)
class BatchNorm2d(Layer[Chw[N, Any, Any], Chw[N, Any, Any]], Generic[N]):
    """Batch normalisation per channel of (N, C, H, W) inputs (PyTorch's nn.BatchNorm2d):
    statistics over (N, H, W); running statistics as `batch_norm` (unbiased variance with
    count N*H*W, momentum update in train mode only)."""

    num_features: N
    eps: float = 1e-5
    momentum: float = 0.1

    def __post_init__(self) -> None:
        check_batch_norm("batch_norm2d", self.num_features, self.eps, self.momentum)

    def describe(self) -> str:
        return f"batch_norm2d {self.num_features}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return batch_norm_specs(self.num_features)

    def forward(self, x: V, scope: Scope[V]) -> V:
        n = self.num_features
        if x.ndim != 4 or x.shape[1] != n:
            raise ShapeError(f"{scope.where(self)}: expected input (N, {n}, H, W), got {x.shape}")
        axes = (0, 2, 3)
        if scope.ctx.mode == "eval":
            mean = F.reshape(scope.buffer("running_mean"), (n, 1, 1))
            var = F.reshape(scope.buffer("running_var"), (n, 1, 1))
        else:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ShapeError(f"{scope.where(self)}: train mode needs at least 2 values "
                                 f"per channel, got {x.shape}")
            mean = F.mean(x, axes, keepdims=True)
            var = F.mean(F.square(x - mean), axes, keepdims=True)
            m = Fraction(self.momentum)
            flat_mean, flat_var = F.reshape(mean, (n,)), F.reshape(var, (n,))
            unbiased = flat_var * Fraction(count, count - 1)
            scope.update("running_mean", scope.buffer("running_mean") * (1 - m) + flat_mean * m)
            scope.update("running_var", scope.buffer("running_var") * (1 - m) + unbiased * m)
        normed = (x - mean) / F.sqrt(var + Fraction(self.eps))
        return (normed * F.reshape(scope.param("weight"), (n, 1, 1))
                + F.reshape(scope.param("bias"), (n, 1, 1)))

    def input_width(self) -> int | None:
        return None

    def __repr__(self) -> str:
        return f"batch_norm2d({self.num_features}, eps={self.eps!r}, momentum={self.momentum!r})"


def conv2d(in_channels: N, out_channels: M, kernel: Pair, stride: Pair = 1, padding: Pair = 0,
           dilation: Pair = 1, groups: int = 1, bias: bool = True) -> Conv2d[N, M]:
    """A 2-D convolution layer (N, in, H, W) -> (N, out, OH, OW), as PyTorch's nn.Conv2d
    (kernel, stride, padding, dilation: an int or an (h, w) pair). Bad sizes raise
    ValueError; an input too small for the kernel raises ShapeError naming the layer."""
    return Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, groups, bias)


def max_pool2d(kernel: Pair, stride: Pair | None = None, padding: Pair = 0) -> MaxPool2d:
    """Max pooling over (N, C, H, W) (PyTorch's nn.MaxPool2d; stride defaults to kernel)."""
    return MaxPool2d(kernel, stride, padding)


def avg_pool2d(kernel: Pair, stride: Pair | None = None, padding: Pair = 0) -> AvgPool2d:
    """Average pooling over (N, C, H, W) (PyTorch's nn.AvgPool2d; stride defaults to kernel)."""
    return AvgPool2d(kernel, stride, padding)


def global_avg_pool() -> GlobalAvgPool[Any]:
    """Mean over H and W: (N, C, H, W) -> (N, C)."""
    return GlobalAvgPool()


def batch_norm2d(n: N, eps: float = 1e-5, momentum: float = 0.1) -> BatchNorm2d[N]:
    """Batch normalisation of (N, n, H, W) inputs (PyTorch's nn.BatchNorm2d(n))."""
    return BatchNorm2d(n, eps, momentum)
