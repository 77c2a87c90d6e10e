"""`transformer_encoder_block`: PyTorch's nn.TransformerEncoderLayer as a layer.

Post-norm by default (PyTorch's norm_first=False), ReLU feed-forward, no dropout:

    x = norm1(x + self_attn(x));  x = norm2(x + linear2(relu(linear1(x))))

and with `norm_first=True` the pre-norm form x = x + self_attn(norm1(x)); x = x +
linear2(relu(linear1(norm2(x)))). Children are named as PyTorch's ("self_attn",
"linear1", "linear2", "norm1", "norm2"); inside self_attn the output projection is
`multi_head_attention`'s "out_proj_weight"/"out_proj_bias" (PyTorch: "out_proj.weight",
"out_proj.bias").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .. import functional as F
from ..errors import ShapeError
from ..value import Value
from .attention import MultiHeadAttention
from .checks import call_text, positive_int
from .layer import Layer, Module, Scope
from .linear import Linear
from .norms import LayerNorm
from .shapetypes import Mat, N

__all__ = ["TransformerEncoderBlock", "transformer_encoder_block"]

V = TypeVar("V", bound=Value)


@dataclass(frozen=True, slots=True, repr=False)
class TransformerEncoderBlock(Layer[Mat[Any, N], Mat[Any, N]], Generic[N]):
    """Self-attention and a ReLU feed-forward, each with a residual and a layer norm, over
    (batch, length, d_model) (PyTorch's nn.TransformerEncoderLayer(d_model, heads, ff,
    dropout=0, batch_first=True, norm_first=norm_first))."""

    d_model: N
    heads: int
    ff: int
    causal: bool = False
    norm_first: bool = False
    eps: float = 1e-5

    def __post_init__(self) -> None:
        where = call_text("transformer_encoder_block", d_model=self.d_model,
                          heads=self.heads, ff=self.ff)
        positive_int(where, "ff", self.ff)
        if not isinstance(self.norm_first, bool):
            raise ValueError(f"{where}: norm_first must be a bool, got {self.norm_first!r}")
        self.children()  # validates d_model, heads, causal and eps through the sub-layers

    def describe(self) -> str:
        return f"transformer_encoder_block d={self.d_model} heads={self.heads} ff={self.ff}"

    def children(self) -> tuple[tuple[str, Module], ...]:
        d = self.d_model
        return (
            ("self_attn", MultiHeadAttention(d, self.heads, self.causal)),
            ("linear1", Linear(d, self.ff)),
            ("linear2", Linear(self.ff, d)),
            ("norm1", LayerNorm(d, self.eps)),
            ("norm2", LayerNorm(d, self.eps)),
        )

    def forward(self, x: V, scope: Scope[V]) -> V:
        d = self.d_model
        if x.ndim != 3 or x.shape[-1] != d:
            raise ShapeError(
                f"{scope.where(self)}: expected input (batch, length, {d}), got {x.shape}")
        parts = dict(self.children())

        def run(name: str, v: V) -> V:
            return parts[name].forward(v, scope.child(name))

        def attend(v: V) -> V:
            return run("self_attn", v)

        def feed(v: V) -> V:
            return run("linear2", F.relu(run("linear1", v)))

        if self.norm_first:
            x = x + attend(run("norm1", x))
            return x + feed(run("norm2", x))
        x = run("norm1", x + attend(x))
        return run("norm2", x + feed(x))

    def input_width(self) -> int | None:
        return self.d_model

    def __repr__(self) -> str:
        return (f"transformer_encoder_block({self.d_model}, {self.heads}, {self.ff}, "
                f"causal={self.causal}, norm_first={self.norm_first})")


def transformer_encoder_block(
    d_model: N, heads: int, ff: int, causal: bool = False, norm_first: bool = False
) -> TransformerEncoderBlock[N]:
    """A transformer encoder block over (batch, length, d_model) as PyTorch's
    nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0, batch_first=True): post-norm
    (pre-norm with `norm_first`), ReLU feed-forward of width `ff`; `causal` masks later
    positions. heads must divide d_model; bad sizes raise ValueError."""
    return TransformerEncoderBlock(d_model, heads, ff, causal, norm_first)
