"""Sound bounds on the binary32-vs-real error of a model: `error_bound`, `error_bound_at`.

For every node of a graph IR this module propagates a rigorous enclosure [lo, hi] of the
REAL value over an input box, and an upper bound e on |fl(node) - real(node)|, where fl is
the binary32 execution and real the real-number semantics of the same graph with the same
binary32 parameters. The error model (docs/verify-rounding.md has the derivations):

- fl(a op b) = (a op b)(1 + d) + h, |d| <= u = 2^-24. The underflow term |h| <= 2^-150
  (half the subnormal spacing) is added only for *, /, the functions and the rounding of
  inputs/constants, and only where the result may be below 2^-126: a sum or difference of
  binary32 numbers that is subnormal is exact (both operands are multiples of 2^-149), and
  sqrt of a nonzero binary32 is at least 2^-74.5, never subnormal.
- left folds (sum, mean, matmul entries): Higham's gamma_m = m u / (1 - m u) per term
  (Accuracy and Stability of Numerical Algorithms, 2nd ed., sections 3.1 and 4.2). In
  `ieee32exec` the zero-seeded left fold of n terms applies m = n - k + 1 additions to
  term k >= 2 and n - 1 to term 1 (plus one for a matmul's product); in
  `float32_any_order` every term gets gamma_n (any order, any blocking, FMA or not).
- functions: one correct rounding of f(computed input), plus Lipschitz propagation with a
  rigorous bound of |f'| over the enclosure widened by the input error; in
  `float32_any_order` the vendor libm is assumed within `ULP_BUDGET` ulps.

All bounds are computed in binary64 with every operation rounded outward (the next
binary64 number after each correctly rounded NumPy op) or, for the long sums of a fold,
in round-to-nearest with a stated gamma factor covering it (`fold`), and function images
through `spec.fields.interval_math`, so a bound is an upper bound of the exact quantity,
never an approximation. Values that could reach the binary32 overflow threshold are
refused.

This module holds the entry points and the report; the error model is in `model`, the
per-op rules in `rules` (elementwise) and `affine`, the passes over a graph in
`propagate`, and the observed errors in `observe`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .affine import AFFINE_MAX_SIZE, TooLarge, lin
from .model import ENCLOSURES, METHODS, MODES, U32, ULP_BUDGET, Arr, RoundingBoundError
from .observe import observed_error, sample_points
from .propagate import (
    RealPass,
    as_f64,
    as_graph,
    check_rules,
    input_boxes,
    params32,
    propagate_affine,
    propagate_elementwise,
)
from .rules import is_structural

__all__ = [
    "METHODS",
    "ENCLOSURES",
    "MODES",
    "ULP_BUDGET",
    "U32",
    "AFFINE_MAX_SIZE",
    "RoundingBoundError",
    "RoundingReport",
    "error_bound",
    "error_bound_at",
    "observed_error",
    "as_graph",
]

@dataclass
class RoundingReport:
    """Per-output error bounds (float64 arrays, each an upper bound of the exact bound),
    the real-value enclosures, the node contributing most, and sampled observations."""

    mode: str
    u: float
    bounds: dict[str, Arr]
    enclosures: dict[str, tuple[Arr, Arr]]
    method: str = "affine"
    contributions: dict[str, float] = field(default_factory=dict)
    observed: dict[str, Arr] = field(default_factory=dict)
    samples: int = 0

    @property
    def bound(self) -> float:
        """The largest bound over all output elements."""
        return max(float(np.max(b, initial=0.0)) for b in self.bounds.values())

    @property
    def max_observed(self) -> float:
        return max((float(np.max(o, initial=0.0)) for o in self.observed.values()), default=0.0)

    @property
    def ratio(self) -> float:
        """bound / max observed error (inf when nothing was observed)."""
        obs = self.max_observed
        return self.bound / obs if obs > 0 else math.inf

    @property
    def top_node(self) -> tuple[str, float] | None:
        """The node whose own roundings alone cause the largest output bound."""
        if not self.contributions:
            return None
        return max(self.contributions.items(), key=lambda kv: kv[1])

    def __str__(self) -> str:
        lines = [f"rounding bound ({self.mode}, {self.method}, "
                 f"u = 2^{int(math.log2(self.u))}): "
                 f"max {self.bound:.3e}"]
        for name, b in self.bounds.items():
            lines.append(f"  {name}: max {float(np.max(b, initial=0.0)):.3e}")
        if self.top_node:
            lines.append(f"  largest contribution: {self.top_node[0]} ({self.top_node[1]:.3e})")
        if self.samples:
            lines.append(f"  observed over {self.samples} samples: {self.max_observed:.3e} "
                         f"(bound / observed = {self.ratio:.3g})")
        return "\n".join(lines)


def error_bound(model_or_graph: Any, params: Mapping[str, Any] | None, box: Any,
                dtype: str = "ieee32exec", *, inputs_are_float32: bool = True,
                samples: int = 0, seed: int = 0, attribute: bool = True,
                u: float = U32, method: str = "affine",
                enclosure: str = "zonotope") -> RoundingReport:
    """Bounds on |fl(f(x)) - f(x)| for every x in the box, per output element.

    `box` is (lower, upper) for a one-input graph or a mapping input name -> (lower, upper).
    `dtype` is "ieee32exec" (fixed left folds, correctly rounded functions) or
    "float32_any_order" (any summation order and FMA, ULP_BUDGET-ulp functions).
    With `inputs_are_float32` the inputs are the binary32 numbers in the box (endpoints
    must be binary32); otherwise any reals in the box, rounded to binary32 on entry.
    `samples` > 0 also runs ieee32exec at that many points (endpoints, midpoint, random)
    against the real value. `u` is binary32's 2^-24; another value models rounding to
    that unit with binary32's underflow and overflow thresholds kept (so u = 2^-53 gives a
    conservative binary64 bound, as bench/bench_fpbench.py uses; the tests use 2^-25).
    `method` "affine" (default) carries first-order error terms with signs through the
    graph (errors passing through W @ may cancel); "elementwise" propagates magnitudes
    only. Both are sound; the report's bound is the smaller of the two per element
    for "affine". A graph where a node with rounding errors has over AFFINE_MAX_SIZE
    elements falls back to "elementwise" (report.method says which was used).
    `enclosure` "zonotope" (default) encloses the real values with zonotopes (linear
    layers exact, DeepZ ReLUs) intersected with the interval rules, and bounds each
    ieee32exec matmul's partial sums through them; "interval" uses the interval rules alone.
    The report's `contributions` are, for "affine", the part of the bound carried by each
    node's own symbols (a node that gets no linear rule also carries the errors it received);
    for "elementwise", the bound with only that node rounding.
    """
    if dtype not in MODES:
        raise ValueError(f"dtype must be one of {MODES}, got {dtype!r}")
    if enclosure not in ENCLOSURES:
        raise ValueError(f"enclosure must be one of {ENCLOSURES}, got {enclosure!r}")
    first = box if not isinstance(box, Mapping) else next(iter(box.values()))
    graph = as_graph(model_or_graph, as_f64(first[0]).shape)
    if params is None:
        params = getattr(model_or_graph, "params", {})
    check_rules(graph)
    p32 = params32(graph, params)
    boxes = input_boxes(graph, box)
    if inputs_are_float32:
        for name, (lo, hi) in boxes.items():
            for v in (lo, hi):
                if np.any(v.astype(np.float32).astype(np.float64) != v):
                    raise RoundingBoundError(
                        f"input {name!r}: box endpoints are not binary32 values; round them "
                        "or pass inputs_are_float32=False")
    real = RealPass() if enclosure == "zonotope" else None
    env = propagate_elementwise(graph, p32, boxes, dtype, u, inputs_are_float32, real=real)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    forms = None
    if method == "affine":
        try:
            forms = propagate_affine(graph, env, dtype, u, real.smag if real else None)
        except TooLarge:  # dense coefficient blocks would not fit: the stated fallback
            method = "elementwise"
    report = RoundingReport(
        dtype, u,
        {name: (forms[i].e if forms else env[i].e) for name, i in graph.outputs},
        {name: (env[i].lo, env[i].hi) for name, i in graph.outputs},
        method=method,
    )
    if attribute and forms:
        for j in sorted({j for _, i in graph.outputs for j in forms[i].blocks}):
            worst = max(float(np.max(lin({j: forms[i].blocks[j]}, tuple(graph.nodes[i].shape)),
                                      initial=0.0))
                        for _, i in graph.outputs if j in forms[i].blocks)
            # capped: the bound is min(affine, elementwise), a block alone is at most it
            report.contributions[f"%{j} ({graph.nodes[j].op})"] = min(worst, report.bound)
    elif attribute:
        for n in graph.nodes:
            if n.op in ("param",) or (not n.is_leaf and not n.is_constant
                                      and is_structural(n.op)):
                continue
            alone = propagate_elementwise(graph, p32, boxes, dtype, u, inputs_are_float32,
                                          only=n.id, real=real)
            worst = max(float(np.max(alone[i].e, initial=0.0)) for _, i in graph.outputs)
            if worst > 1e-300:  # skip exact leaves (an _up of 0 is the least subnormal)
                report.contributions[f"%{n.id} ({n.op})"] = worst
    if samples:
        pts = sample_points(boxes, samples, seed, inputs_are_float32)
        report.observed = observed_error(graph, p32, pts)
        report.samples = len(pts)
    return report


def error_bound_at(model_or_graph: Any, params: Mapping[str, Any] | None, x: Any,
                   dtype: str = "ieee32exec", **kwargs: Any) -> RoundingReport:
    """`error_bound` over the one-point box {x} (a mapping name -> x for several inputs)."""
    box = ({k: (v, v) for k, v in x.items()} if isinstance(x, Mapping) else (x, x))
    return error_bound(model_or_graph, params, box, dtype, **kwargs)

