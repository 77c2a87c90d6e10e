"""Plumbing shared by fields whose values are NumPy object arrays of Python numbers.

Arithmetic runs element by element through the scalars' own operators, so the scalar
type decides the semantics (`Fraction` is exact, mpmath intervals enclose).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..shapes import Shape
from .base import (
    Array,
    ArrayField,
    Constant,
    check_integral_labels,
    first_max_mask,
    fold_axes_last,
    restore_keepdims,
)

__all__ = ["ObjectArrayField"]


def elementwise(fn: Callable[..., Any], nin: int) -> Callable[..., np.ndarray[Any, Any]]:
    """Vectorise a scalar function over object arrays (with broadcasting)."""
    ufunc = np.frompyfunc(fn, nin, 1)

    def run(*arrays: Any) -> np.ndarray[Any, Any]:
        return np.asarray(ufunc(*arrays), dtype=object)

    return run


class ObjectArrayField(ArrayField):
    """A field over object arrays; subclasses say how scalars convert and compare."""

    @abstractmethod
    def scalar(self, value: object) -> Any:
        """Convert one Python number (int, float, Fraction, NumPy scalar) to this field."""

    @property
    def zero(self) -> Any:
        return self.scalar(0)

    def asarray(self, data: object) -> Array:
        raw = np.asarray(data, dtype=object)
        return np.asarray(elementwise(self.scalar, 1)(raw), dtype=object).reshape(raw.shape)

    def constant(self, value: Constant, like: Array | None = None) -> Array:
        out = np.empty((), dtype=object)
        out[()] = self.scalar(value)
        return out

    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]:
        return np.asarray(a, dtype=object)

    def xp(self, a: Array) -> Any:
        return np

    def add(self, a: Array, b: Array) -> Array:
        return np.asarray(np.add(a, b), dtype=object)

    def sub(self, a: Array, b: Array) -> Array:
        return np.asarray(np.subtract(a, b), dtype=object)

    def mul(self, a: Array, b: Array) -> Array:
        return np.asarray(np.multiply(a, b), dtype=object)

    def div(self, a: Array, b: Array) -> Array:
        return np.asarray(np.true_divide(a, b), dtype=object)

    def neg(self, a: Array) -> Array:
        return np.asarray(np.negative(a), dtype=object)

    def sum(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        # A zero-seeded fold; any order is exact (Fraction) or enclosing (intervals).
        add_reduce: Any = np.add.reduce  # NumPy's stubs cannot type keepdims: bool
        out = add_reduce(a, axis=axes, keepdims=keepdims, initial=self.zero)
        return np.asarray(out, dtype=object)

    def max(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        folded = fold_axes_last(a, axes)
        if folded.shape[-1] == 0:
            raise ValueError(f"max: empty reduction over axes {axes} of shape {a.shape}")
        pick = elementwise(self.max2, 2)
        acc = folded[..., 0]
        for k in range(1, folded.shape[-1]):
            acc = pick(acc, folded[..., k])
        out = np.asarray(acc, dtype=object)
        return restore_keepdims(out, a.shape, axes) if keepdims else out

    def maximum(self, a: Array, b: Array) -> Array:
        return elementwise(self.max2, 2)(a, b)

    def minimum(self, a: Array, b: Array) -> Array:
        return elementwise(self.min2, 2)(a, b)

    @abstractmethod
    def max2(self, x: Any, y: Any) -> Any:
        """The larger of two scalars (an enclosure of it, for intervals)."""

    @abstractmethod
    def min2(self, x: Any, y: Any) -> Any:
        """The smaller of two scalars."""

    def matmul(self, a: Array, b: Array) -> Array:
        if a.shape[-1] == 0:
            shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
            return self.full(tuple(shape), 0).copy()
        return np.asarray(np.matmul(a, b), dtype=object)

    def one_hot(self, labels: Array, num_classes: int) -> Array:
        idx = check_integral_labels(self.label_values(labels), num_classes)
        hot = idx[..., None] == np.arange(num_classes)
        return np.where(hot, self.scalar(1), self.zero).astype(object)

    def label_values(self, labels: Array) -> np.ndarray[Any, Any]:
        """The labels as Python numbers for the integrality check."""
        return np.asarray(labels, dtype=object)

    def argmax_mask(self, a: Array, axes: tuple[int, ...]) -> Array:
        mask = first_max_mask(np.asarray(a, dtype=object), axes)
        return np.where(mask, self.scalar(1), self.zero).astype(object)

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        return np.broadcast_to(a, shape)

    def concat(self, arrays: Sequence[Array], axis: int) -> Array:
        return np.concatenate(list(arrays), axis=axis)

    def permute(self, a: Array, axes: tuple[int, ...]) -> Array:
        return np.transpose(a, axes)

    def unslice(self, a: Array, shape: Shape, spec: tuple[tuple[int, int, int], ...]) -> Array:
        out = np.full(shape, self.zero, dtype=object)
        region: Any = (*(slice(s, e, k) for s, e, k in spec), Ellipsis)
        out[region] = a
        return out
