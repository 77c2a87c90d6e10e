"""Rounding allowances: how far a floating-point evaluation may drift from the real one.

`rounding_depth` counts the roundings a tape performs on any path to its output: one per
elementwise op, n per n-term reduction or dot product (the standard model's gamma_n for a
sum of n terms, Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1),
summed over the nodes, so it bounds the depth of every path. `gamma(L, u) = L u / (1 - L u)`
is then the standard relative error bound of L successive roundings with unit roundoff u.
These are first-order estimates (they ignore cancellation beyond the scales they are
applied to), used for tolerances of floating-point results, never for proofs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ...runtime.tape import Tape
from ...spec.ops.rules import RuleTable
from ...spec.shapes import size_of

__all__ = [
    "rounding_depth", "rounding_scale", "gamma", "gradient_allowance", "binary32_probe",
    "UNIT_ROUNDOFF_BINARY64", "PROBE_SAFETY", "ROUNDING_COSTS",
]

# binary32 rounding errors, scaled to binary64 (2^-29 = 2^-53 / 2^-24), times this margin:
# rounding errors are not exactly proportional to the unit from one format to the other.
PROBE_SAFETY = 16

UNIT_ROUNDOFF_BINARY64 = 2.0**-53


Shapes = list[tuple[int, ...]]
CostRule = Callable[[Shapes, tuple[int, ...], dict[str, object]], int]

ROUNDING_COSTS: RuleTable[CostRule] = RuleTable("gradcheck allowance")
"""Per op: how many roundings one output element may go through (see `rounding_depth`)."""


def _one(in_shapes: Shapes, out_shape: tuple[int, ...], attrs: dict[str, object]) -> int:
    return 1


def _composite(in_shapes: Shapes, out_shape: tuple[int, ...], attrs: dict[str, object]) -> int:
    return 3  # composite in some fields (e.g. x * Phi(x)): a few roundings


def _matmul(in_shapes: Shapes, out_shape: tuple[int, ...], attrs: dict[str, object]) -> int:
    return max(1, in_shapes[0][-1])


def _reduction(extra: int) -> CostRule:
    def cost(in_shapes: Shapes, out_shape: tuple[int, ...], attrs: dict[str, object]) -> int:
        axes = attrs.get("axes", ())
        assert isinstance(axes, tuple)
        return max(1, size_of(tuple(in_shapes[0][a] for a in axes)) + extra)

    return cost


def _softmax(in_shapes: Shapes, out_shape: tuple[int, ...], attrs: dict[str, object]) -> int:
    axis = attrs.get("axis", 0)
    assert isinstance(axis, int)
    return 2 * max(1, in_shapes[0][axis]) + 3  # max, sum, exp/log/div around them


ROUNDING_COSTS.rule(
    "add", "sub", "mul", "div", "neg", "abs", "square", "sqrt", "exp", "log", "log1p", "expm1",
    "sin", "cos", "relu", "leaky_relu", "maximum", "minimum", "step", "greater", "where",
    "argmax_mask", "transpose", "reshape", "broadcast_to", "concat", "slice", "unslice",
    "one_hot",
)(_one)
ROUNDING_COSTS.rule("erf", "gelu", "silu", "softplus", "sigmoid", "tanh")(_composite)
ROUNDING_COSTS.add("matmul", _matmul)
ROUNDING_COSTS.rule("sum", "max")(_reduction(0))
ROUNDING_COSTS.add("mean", _reduction(1))  # the division
ROUNDING_COSTS.rule("softmax", "log_softmax")(_softmax)


def rounding_depth(tape: Tape | Iterable[object]) -> int:
    """An upper bound L on the number of roundings along any path through the tape (>= 1)."""
    total = 0
    for node in tape:
        op = getattr(node, "op", None)
        if op is None:
            continue
        inputs = getattr(node, "inputs", ())
        shapes = [tuple(v.shape) for v in inputs]
        cost = ROUNDING_COSTS.get(op.tag, f"tape node of op {op.tag!r}")
        total += cost(shapes, tuple(node.shape), dict(node.attrs))  # type: ignore[attr-defined]
    return max(1, total)


def rounding_scale(tape: Tape | Iterable[object]) -> float:
    """The largest |value| any op on the tape produced: each rounding errs by at most u
    times its result, so this (not |f|, which may be a small difference of large terms)
    is the magnitude rounding errors are relative to."""
    largest = 0.0
    for node in tape:
        if getattr(node, "op", None) is None:
            continue
        out: Any = node.output  # type: ignore[attr-defined]
        host = np.asarray(out.numpy(), dtype=np.float64) if hasattr(out, "numpy") else None
        if host is not None and host.size:
            finite = np.abs(host[np.isfinite(host)])
            if finite.size:
                largest = max(largest, float(np.max(finite)))
    return largest


def gamma(depth: int, unit_roundoff: float) -> float:
    """gamma_L = L u / (1 - L u): relative error bound of L roundings (inf once L u >= 1)."""
    lu = depth * unit_roundoff
    return lu / (1 - lu) if lu < 1 else math.inf


def gradient_allowance(
    analytic_dir: np.ndarray[Any, np.dtype[np.float64]],
    scale: float,
    direction_l1: np.ndarray[Any, np.dtype[np.float64]],
    depth: int,
    unit_roundoff: float,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Allowance for the rounding error of a floating-point gradient, per direction u:
    gamma_{2L} (|<g, u>| + scale ||u||_1), with scale = max(||g||_inf, S).

    2L: the reverse pass performs about as many roundings as the forward pass. The scale
    term covers entries produced by cancellation of terms as large as the largest gradient
    entry or the largest intermediate value S (the caller passes the larger).
    """
    g = gamma(2 * depth, unit_roundoff)
    return np.asarray(g * (np.abs(analytic_dir) + scale * direction_l1), dtype=np.float64)


def binary32_probe(
    analytic32: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]
) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """PROBE_SAFETY * 2^-29 * |<g32, u> - reference| per direction, or None if binary32
    overflowed; `reference` is the same reverse-mode formula at high precision, so the
    difference is rounding alone.

    The same reverse-mode formula evaluated in binary32 shows how strongly this
    particular gradient amplifies rounding (cancellation in a softmax VJP, say), which
    the gamma term, relative to |g| and ||g||_inf alone, cannot see; scaled by the ratio
    of the unit roundoffs it estimates binary64's error.
    """
    a32 = np.asarray(analytic32, dtype=np.float64)
    diff = np.abs(a32 - np.asarray(reference, dtype=np.float64))
    if not np.all(np.isfinite(diff)):
        return None
    return np.asarray(PROBE_SAFETY * 2.0**-29 * diff, dtype=np.float64)
