"""How far a point is from the kinks of a function: the places where a piecewise
primitive switches branch (ReLU and abs at 0, ties of maximum/minimum/comparisons, ties
between the two largest entries of a max reduction).

Near a kink a derivative may not exist and finite differences straddle two pieces, so
property tests keep their inputs at least a margin away (`kink_distance`). The probe
evaluates f once in binary64 and records the smallest such gap it meets. Max reductions
inside softmax/log_softmax are counted too, although those are smooth: the measure errs
on the side of calling a point near a kink.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...spec.fields.base import Array, first_max_mask
from ...spec.fields.native import NativeFloatField
from .trees import map_values, to_field

__all__ = ["KinkProbeField", "kink_distance"]


class KinkProbeField(NativeFloatField):
    """binary64 that remembers the smallest distance to a branch switch it evaluated."""

    def __init__(self) -> None:
        super().__init__("float", "float64")
        self.gap = math.inf

    def _note(self, distances: Any) -> None:
        d = np.abs(np.asarray(distances, dtype=np.float64))
        if d.size:
            self.gap = min(self.gap, float(np.min(d)))

    def abs(self, a: Array) -> Array:
        self._note(a)
        return super().abs(a)

    def maximum(self, a: Array, b: Array) -> Array:
        self._note(np.subtract(a, b))
        return super().maximum(a, b)

    def minimum(self, a: Array, b: Array) -> Array:
        self._note(np.subtract(a, b))
        return super().minimum(a, b)

    def step(self, a: Array) -> Array:
        self._note(a)
        return super().step(a)

    def greater(self, a: Array, b: Array) -> Array:
        self._note(np.subtract(a, b))
        return super().greater(a, b)

    def _runner_up_gap(self, a: Array, axes: tuple[int, ...]) -> None:
        host = np.asarray(a, dtype=np.float64)
        mask = first_max_mask(host, axes)
        if int(np.sum(mask)) == host.size:  # groups of one element: no tie possible
            return
        top = np.max(host, axis=axes, keepdims=True)
        rest = np.where(mask, -np.inf, host)
        second = np.max(rest, axis=axes, keepdims=True)
        gaps = (top - second)[np.isfinite(second)]
        self._note(gaps)

    def max(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        self._runner_up_gap(a, axes)
        return super().max(a, axes, keepdims)

    def argmax_mask(self, a: Array, axes: tuple[int, ...]) -> Array:
        self._runner_up_gap(a, axes)
        return super().argmax_mask(a, axes)


def kink_distance(f: Callable[..., Any], *inputs: Any) -> float:
    """The smallest distance from a kink met while evaluating f(*inputs) in binary64
    (inf when f meets none). Inputs are tensors or pytrees of them, as for gradcheck."""
    probe = KinkProbeField()
    f(*(map_values(lambda v: to_field(v, probe), a) for a in inputs))
    return probe.gap
