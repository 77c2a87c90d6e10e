"""Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_` computes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from ...spec import functional as F
from ...spec.value import Value
from .base import Number, check_real, require_sqrt

__all__ = ["clip_by_global_norm"]

V = TypeVar("V", bound=Value)

# PyTorch's guard against a zero norm in max_norm / (norm + eps) (torch/nn/utils/clip_grad.py).
_EPS = 1e-6


def clip_by_global_norm(grads: Mapping[str, V], max_norm: Number) -> tuple[dict[str, V], V]:
    """Scale all gradients together so that their joint Euclidean norm is at most about
    `max_norm`; returns the clipped gradients and the norm before clipping.

    As `torch.nn.utils.clip_grad_norm_(norm_type=2)`:

        norm  = sqrt(sum_i sum(g_i * g_i))
        scale = min(max_norm / (norm + 1e-6), 1)
        g_i   = g_i * scale

    (Multiplying by a scale of exactly 1 leaves a gradient unchanged in every field, so
    this is "scale only when below 1" without branching on data.) The norm needs a square
    root: over `exact` this raises UnsupportedOperation. An empty mapping raises ValueError.
    """
    check_real("clip_by_global_norm", "max_norm", max_norm, low=0)
    if not grads:
        raise ValueError("clip_by_global_norm: no gradients given")
    like = next(iter(grads.values()))
    require_sqrt("clip_by_global_norm", like)
    # PyTorch takes the norm of the per-tensor norms; the same real number, and summing
    # squares directly saves two ops per tensor and keeps interval enclosures tighter.
    squares = [F.sum(g * g) for g in grads.values()]
    total_sq = squares[0]
    for s in squares[1:]:
        total_sq = total_sq + s
    total = F.sqrt(total_sq)
    scale = F.minimum(F.constant(like, max_norm) / (total + _EPS), 1)
    return {name: g * scale for name, g in grads.items()}, total
