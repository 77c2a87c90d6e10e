"""Observed rounding errors: ieee32exec runs against the real value at sample points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.graph import Graph, interpret
from ...spec.fields import get_field
from ...spec.fields.interval import mpf_to_fraction
from ...spec.ops import OPS
from .model import Arr
from .propagate import as_f64

__all__ = ["observed_error", "sample_points"]

def sample_points(boxes: dict[str, tuple[Arr, Arr]], n: int, seed: int,
                  as32: bool) -> list[dict[str, Arr]]:
    """n points of the box: its lower and upper corners, its centre, then seeded random
    points (rounded to binary32 inside the box when `as32`)."""
    rng = np.random.default_rng(seed)
    pts: list[dict[str, Arr]] = []
    for k in range(n):
        pt = {}
        for name, (lo, hi) in boxes.items():
            v = lo if k == 0 else hi if k == 1 else (lo + hi) / 2 if k == 2 else \
                lo + (hi - lo) * rng.random(lo.shape)
            if as32:
                v = np.clip(v.astype(np.float32).astype(np.float64), lo, hi)
            pt[name] = np.asarray(v, dtype=np.float64)
        pts.append(pt)
    return pts


def observed_error(graph: Graph, params: Mapping[str, Any],
                   points: Sequence[Mapping[str, Any]]) -> dict[str, Arr]:
    """The largest |ieee32exec - real| per output element over the points: the real value
    over `exact` when every op is rational, else the `interval` field at 113 bits, taking
    the worst case over its enclosure (so the figure is an upper estimate of the error)."""
    rational = all(n.is_leaf or n.is_constant or OPS[n.op].rational for n in graph.nodes)
    p32 = {k: as_f64(v) for k, v in params.items() if k in {n.name for n in graph.params}}
    worst: dict[str, Arr] = {name: np.zeros(graph.nodes[i].shape) for name, i in graph.outputs}
    for pt in points:
        fl = interpret(graph, {**p32, **pt}, field="ieee32exec")
        ref_field = get_field("exact" if rational else "interval")
        exact_vals = {k: ref_field.asarray(np.asarray(v, dtype=np.float64))
                      for k, v in {**p32, **pt}.items()}
        ref = interpret(graph, exact_vals, field=ref_field)
        for name in worst:
            f = np.asarray(fl[name].data, dtype=np.float64)
            r = np.asarray(ref[name].data, dtype=object)
            err = np.empty(f.shape)
            for i in np.ndindex(f.shape):
                err[i] = _abs_diff(float(f[i]), r[i], rational)
            worst[name] = np.maximum(worst[name], err)
    return worst


def _abs_diff(f: float, r: Any, rational: bool) -> float:
    if rational:
        d = abs(Fraction(f) - r)
        return float(d)
    lo, hi = mpf_to_fraction(r.a), mpf_to_fraction(r.b)
    return float(max(abs(Fraction(f) - lo), abs(Fraction(f) - hi)))
