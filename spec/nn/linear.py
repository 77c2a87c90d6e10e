"""`linear(i, o)`: y = x @ weight.T + bias over the last axis, as PyTorch's nn.Linear."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import ShapeError
from ..functional import matmul, transpose
from ..value import Value
from .checks import call_text, positive_int
from .layer import Layer, ParamSpec, Scope
from .shapetypes import M, N, Vec

__all__ = ["Linear", "linear"]

V = TypeVar("V", bound=Value)


@dataclass(frozen=True, slots=True, repr=False)
class Linear(Layer[Vec[N], Vec[M]], Generic[N, M]):
    """A dense layer from (..., in_features) to (..., out_features).

    Parameters: "weight" of shape (out_features, in_features) and, when `bias`, "bias" of
    shape (out_features,). Initialisation is PyTorch's default for nn.Linear: weight by
    kaiming_uniform_(a=sqrt(5)), which is U(-1/sqrt(in_features), 1/sqrt(in_features)),
    and bias U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    in_features: N
    out_features: M
    bias: bool = True

    def __post_init__(self) -> None:
        where = call_text("linear", in_features=self.in_features, out_features=self.out_features)
        positive_int(where, "in_features", self.in_features)
        positive_int(where, "out_features", self.out_features)
        if not isinstance(self.bias, bool):
            raise ValueError(f"{where}: bias must be a bool, got {self.bias!r}")

    def describe(self) -> str:
        return f"linear {self.in_features}->{self.out_features}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        bound = 1.0 / math.sqrt(self.in_features)
        weight = ParamSpec("weight", (self.out_features, self.in_features), "uniform", bound)
        if not self.bias:
            return (weight,)
        return (weight, ParamSpec("bias", (self.out_features,), "uniform", bound))

    def forward(self, x: V, scope: Scope[V]) -> V:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"{scope.where(self)}: expected input (..., {self.in_features}), got {x.shape}"
            )
        y = matmul(x, transpose(scope.param("weight")))
        return y + scope.param("bias") if self.bias else y

    def input_width(self) -> int | None:
        return self.in_features

    def output_width(self, width: int | None) -> int | None:
        return self.out_features

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        return f"linear({self.in_features}, {self.out_features}{extra})"


def linear(in_features: N, out_features: M, bias: bool = True) -> Linear[N, M]:
    """A dense layer (..., in_features) -> (..., out_features), as PyTorch's nn.Linear.

    Static type `Layer[Vec[in_features], Vec[out_features]]` with literal dims when the
    sizes are written as literals. Parameters "weight" (out, in) and "bias" (out,), both
    initialised U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's default). Non-positive sizes raise
    ValueError.
    """
    return Linear(in_features, out_features, bias)
