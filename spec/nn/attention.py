"""Sequence layers: `embedding` (integer ids -> rows) and `multi_head_attention`
(self-attention over (N, L, d_model) inputs), written with `functional`'s composites."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .. import functional as F
from ..errors import ShapeError
from ..value import Value
from .checks import call_text, positive_int
from .layer import Layer, ParamSpec, Scope
from .shapetypes import M, Mat, N, Scalar, Vec

__all__ = ["Embedding", "MultiHeadAttention", "embedding", "multi_head_attention"]

V = TypeVar("V", bound=Value)


@dataclass(frozen=True, slots=True, repr=False)
class Embedding(Layer[Scalar, Vec[M]], Generic[N, M]):
    """A lookup table (PyTorch's nn.Embedding): ids (...) -> (..., dim). Parameter
    "weight" (num, dim) initialised U(-sqrt(3), sqrt(3)) -- unit variance like PyTorch's
    N(0, 1), since parameter specs offer only uniform draws."""

    num: N
    dim: M

    def __post_init__(self) -> None:
        where = call_text("embedding", num=self.num, dim=self.dim)
        positive_int(where, "num", self.num)
        positive_int(where, "dim", self.dim)

    def describe(self) -> str:
        return f"embedding {self.num}x{self.dim}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        return (ParamSpec("weight", (self.num, self.dim), "uniform", math.sqrt(3.0)),)

    def forward(self, x: V, scope: Scope[V]) -> V:
        try:
            return F.embedding(x, scope.param("weight"))
        except ValueError as e:  # ShapeError is one too
            raise type(e)(f"{scope.where(self)}: {e}") from None

    def input_width(self) -> int | None:
        return None

    def output_width(self, width: int | None) -> int | None:
        return self.dim

    def __repr__(self) -> str:
        return f"embedding({self.num}, {self.dim})"


@dataclass(frozen=True, slots=True, repr=False)
class MultiHeadAttention(Layer[Mat[Any, N], Mat[Any, N]], Generic[N]):
    """Self-attention (PyTorch's nn.MultiheadAttention(d, heads, batch_first=True) with
    query = key = value = x): parameters "in_proj_weight" (3d, d), "in_proj_bias" (3d,),
    "out_proj_weight" (d, d), "out_proj_bias" (d,). Weights U(-1/sqrt(d), 1/sqrt(d)),
    biases 0 (PyTorch uses xavier_uniform for in_proj; the bound differs)."""

    d_model: N
    heads: int
    causal: bool = False

    def __post_init__(self) -> None:
        where = call_text("multi_head_attention", d_model=self.d_model, heads=self.heads)
        positive_int(where, "d_model", self.d_model)
        positive_int(where, "heads", self.heads)
        if self.d_model % self.heads:
            raise ValueError(f"{where}: heads must divide d_model")
        if not isinstance(self.causal, bool):
            raise ValueError(f"{where}: causal must be a bool, got {self.causal!r}")

    def describe(self) -> str:
        return f"multi_head_attention d={self.d_model} heads={self.heads}"

    def own_specs(self) -> tuple[ParamSpec, ...]:
        d = self.d_model
        bound = 1.0 / math.sqrt(d)
        return (
            ParamSpec("in_proj_weight", (3 * d, d), "uniform", bound),
            ParamSpec("in_proj_bias", (3 * d,), "zeros"),
            ParamSpec("out_proj_weight", (d, d), "uniform", bound),
            ParamSpec("out_proj_bias", (d,), "zeros"),
        )

    def forward(self, x: V, scope: Scope[V]) -> V:
        d, h = self.d_model, self.heads
        if x.ndim != 3 or x.shape[-1] != d:
            raise ShapeError(f"{scope.where(self)}: expected input (N, L, {d}), got {x.shape}")
        n, length = x.shape[0], x.shape[1]
        qkv = F.matmul(x, F.transpose(scope.param("in_proj_weight"))) + scope.param(
            "in_proj_bias")

        def heads_of(part: int) -> V:
            t = F.slice_axes(qkv, [(0, n, 1), (0, length, 1), (part * d, (part + 1) * d, 1)])
            return F.transpose(F.reshape(t, (n, length, h, d // h)), (0, 2, 1, 3))

        mask = None
        if self.causal:
            tri = np.tril(np.ones((length, length)))
            mask = scope.ctx.constant(x, scope.qualify("causal_mask"), tri)
        att = F.scaled_dot_product_attention(heads_of(0), heads_of(1), heads_of(2), mask)
        merged = F.reshape(F.transpose(att, (0, 2, 1, 3)), (n, length, d))
        return F.matmul(merged, F.transpose(scope.param("out_proj_weight"))) + scope.param(
            "out_proj_bias")

    def input_width(self) -> int | None:
        return self.d_model

    def __repr__(self) -> str:
        return f"multi_head_attention({self.d_model}, {self.heads}, causal={self.causal})"


def embedding(num: N, dim: M) -> Embedding[N, M]:
    """A table of `num` rows of size `dim` looked up by integer ids (ids of the model's
    field, e.g. 0., 3., 1.); an out-of-range id raises ValueError naming the layer."""
    return Embedding(num, dim)


def multi_head_attention(d_model: N, heads: int, causal: bool = False) -> MultiHeadAttention[N]:
    """Self-attention over (N, L, d_model) with `heads` heads (d_model % heads == 0);
    `causal` masks later positions."""
    return MultiHeadAttention(d_model, heads, causal)
