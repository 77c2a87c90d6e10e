"""The `Field` interface: what the numbers are and how each primitive rounds.

A field owns an array representation (NumPy float arrays, object arrays of Fractions or
mpmath intervals, ...) and implements every primitive the op table's forward rules use.
Op forward rules call nothing but these methods, so a new field gets every op.

`ArrayField` implements the structural primitives (reshape, slicing, concatenation, ...)
once for fields whose values are a single array of some array namespace.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, TypeAlias

import numpy as np

from ..errors import UnsupportedOperation
from ..shapes import Shape

__all__ = ["Array", "Constant", "PI", "SymbolicPi", "Field", "ArrayField", "SliceSpec"]

# Each field chooses its own representation; the op table never looks inside.
Array: TypeAlias = Any


class SymbolicPi:
    """The type of `PI`, the constant pi: each field materialises it in its own arithmetic."""

    def __repr__(self) -> str:
        return "PI"


PI = SymbolicPi()
Constant: TypeAlias = int | float | Fraction | SymbolicPi
# Basic slicing of every axis: (start, stop, step) with non-negative resolved bounds.
SliceSpec: TypeAlias = tuple[tuple[int, int, int], ...]


class Field(ABC):
    """A scalar field: a representation of tensors and the primitives over it."""

    name: str = "field"

    def __repr__(self) -> str:
        return self.name

    def unsupported(self, op: str, reason: str = "") -> UnsupportedOperation:
        """The error this field raises for an op it cannot evaluate."""
        return UnsupportedOperation(op, self.name, reason)

    # -- conversion ---------------------------------------------------------------
    @abstractmethod
    def asarray(self, data: object) -> Array:
        """Convert nested lists, numbers or arrays into this field's representation."""

    @abstractmethod
    def constant(self, value: Constant, like: Array | None = None) -> Array:
        """A 0-d array holding `value` in this field (exactly, or rounded as the field rounds),
        in the same array namespace and device as `like` when given."""

    @abstractmethod
    def shape_of(self, a: Array) -> Shape:
        """The shape of a value of this field."""

    @abstractmethod
    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]:
        """A NumPy view for display and comparison: float arrays, or object arrays."""

    def full(self, shape: Shape, value: Constant) -> Array:
        """A tensor of `shape` filled with `value`."""
        return self.broadcast_to(self.constant(value), shape)  # NumPy-backed fields only

    # -- elementwise arithmetic (NumPy broadcasting) ---------------------------------
    @abstractmethod
    def add(self, a: Array, b: Array) -> Array: ...
    @abstractmethod
    def sub(self, a: Array, b: Array) -> Array: ...
    @abstractmethod
    def mul(self, a: Array, b: Array) -> Array: ...
    @abstractmethod
    def div(self, a: Array, b: Array) -> Array: ...
    @abstractmethod
    def neg(self, a: Array) -> Array: ...
    @abstractmethod
    def abs(self, a: Array) -> Array: ...
    @abstractmethod
    def maximum(self, a: Array, b: Array) -> Array: ...
    @abstractmethod
    def minimum(self, a: Array, b: Array) -> Array: ...
    @abstractmethod
    def sqrt(self, a: Array) -> Array: ...

    # -- transcendental functions: each field says how it rounds -------------------
    def exp(self, a: Array) -> Array:
        raise self.unsupported("exp")

    def log(self, a: Array) -> Array:
        raise self.unsupported("log")

    def log1p(self, a: Array) -> Array:
        raise self.unsupported("log1p")

    def expm1(self, a: Array) -> Array:
        raise self.unsupported("expm1")

    def tanh(self, a: Array) -> Array:
        raise self.unsupported("tanh")

    def sigmoid(self, a: Array) -> Array:
        raise self.unsupported("sigmoid")

    def softplus(self, a: Array) -> Array:
        raise self.unsupported("softplus")

    def erf(self, a: Array) -> Array:
        raise self.unsupported("erf")

    def gelu(self, a: Array) -> Array:
        raise self.unsupported("gelu")

    def sin(self, a: Array) -> Array:
        raise self.unsupported("sin")

    def cos(self, a: Array) -> Array:
        raise self.unsupported("cos")

    # -- piecewise-constant primitives: results are 0/1 in the field -----------------
    @abstractmethod
    def step(self, a: Array) -> Array:
        """Heaviside step: 1 where a > 0, else 0 (so step(0) = 0)."""

    @abstractmethod
    def greater(self, a: Array, b: Array) -> Array:
        """1 where a > b, else 0."""

    @abstractmethod
    def select(self, cond: Array, a: Array, b: Array) -> Array:
        """a where cond is nonzero, else b (cond holds 0/1 values of this field)."""

    @abstractmethod
    def one_hot(self, labels: Array, num_classes: int) -> Array:
        """0/1 rows with a one at each integer label; a non-integer or out-of-range label
        raises ValueError naming it."""

    @abstractmethod
    def argmax_mask(self, a: Array, axes: tuple[int, ...]) -> Array:
        """0/1 array of a's shape marking, in each reduced group, the first maximum in
        row-major order."""

    # -- reductions and contractions ---------------------------------------------
    @abstractmethod
    def sum(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array: ...
    @abstractmethod
    def max(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array: ...
    @abstractmethod
    def matmul(self, a: Array, b: Array) -> Array:
        """Batched matrix product of arrays of rank >= 2 with broadcast batch dims."""

    # -- structure -------------------------------------------------------------
    @abstractmethod
    def reshape(self, a: Array, shape: Shape) -> Array: ...
    @abstractmethod
    def permute(self, a: Array, axes: tuple[int, ...]) -> Array: ...
    @abstractmethod
    def broadcast_to(self, a: Array, shape: Shape) -> Array: ...
    @abstractmethod
    def concat(self, arrays: Sequence[Array], axis: int) -> Array: ...
    @abstractmethod
    def slice(self, a: Array, spec: SliceSpec) -> Array: ...
    @abstractmethod
    def unslice(self, a: Array, shape: Shape, spec: SliceSpec) -> Array:
        """Zeros of `shape` with `a` written into the region `spec` selects."""


def _slices(spec: SliceSpec) -> tuple[Any, ...]:
    # The trailing Ellipsis keeps results arrays, also for 0-d object arrays.
    return (*(slice(s, e, k) for s, e, k in spec), Ellipsis)


class ArrayField(Field):
    """Structural primitives for fields whose values are one array of a namespace."""

    def xp(self, a: Array) -> Any:
        """The array namespace of `a` (NumPy for NumPy arrays and scalars)."""
        if type(a) is np.ndarray:  # the common case, without attribute lookups
            return np
        get_ns = getattr(a, "__array_namespace__", None)
        return np if get_ns is None or isinstance(a, np.generic) else get_ns()

    def shape_of(self, a: Array) -> Shape:
        return tuple(a.shape)

    def reshape(self, a: Array, shape: Shape) -> Array:
        return self.xp(a).reshape(a, shape)

    def permute(self, a: Array, axes: tuple[int, ...]) -> Array:
        return self.xp(a).permute_dims(a, axes)

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        return self.xp(a).broadcast_to(a, shape)

    def concat(self, arrays: Sequence[Array], axis: int) -> Array:
        return self.xp(arrays[0]).concat(list(arrays), axis=axis)

    def slice(self, a: Array, spec: SliceSpec) -> Array:
        return a[_slices(spec)]

    def unslice(self, a: Array, shape: Shape, spec: SliceSpec) -> Array:
        out = self.xp(a).zeros(shape, dtype=a.dtype, device=a.device)
        out[_slices(spec)] = a
        return out


def check_integral_labels(values: np.ndarray[Any, Any], num_classes: int) -> np.ndarray[Any, Any]:
    """Labels as an int64 array; a non-integer or out-of-range label raises ValueError."""
    flat = values.reshape(-1)
    if flat.dtype.kind in "fiub":  # numeric: one vectorised check (NaN fails every test)
        good = (flat >= 0) & (flat < num_classes)
        if flat.dtype.kind == "f":
            good &= np.floor(flat) == flat
        if not good.all():
            i = int(np.argmin(good))
            raise ValueError(f"one_hot: label {flat[i]!r} at flat index {i} is not an integer "
                             f"in [0, {num_classes})")
        return flat.astype(np.int64).reshape(values.shape)
    labels = np.empty(flat.shape, dtype=np.int64)
    for i, v in enumerate(flat):
        finite = not isinstance(v, (float, np.floating)) or math.isfinite(v)
        iv = int(v) if finite else -1
        if iv != v or not 0 <= iv < num_classes:
            raise ValueError(
                f"one_hot: label {v!r} at flat index {i} is not an integer in [0, {num_classes})"
            )
        labels[i] = iv
    return labels.reshape(values.shape)


def fold_axes_last(a: np.ndarray[Any, Any], axes: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Move the reduced `axes` to the end and merge them into one axis (row-major order)."""
    keep = [i for i in range(a.ndim) if i not in axes]
    moved = np.transpose(a, keep + list(axes))
    group = math.prod(a.shape[i] for i in axes)
    return moved.reshape(tuple(a.shape[i] for i in keep) + (group,))


def first_max_mask(host: np.ndarray[Any, Any], axes: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Boolean mask of the first row-major maximum in each group of `axes`.

    Works on float and object arrays alike (it only needs `np.argmax`'s comparisons).
    """
    folded = fold_axes_last(host, axes)
    if folded.size == 0:
        return np.zeros(host.shape, dtype=bool)
    winners = np.argmax(folded, axis=-1)
    mask = np.zeros(folded.shape, dtype=bool)
    np.put_along_axis(mask, winners[..., None], True, axis=-1)
    return unfold_axes_last(mask, host.shape, axes)


def unfold_axes_last(
    folded: np.ndarray[Any, Any], shape: Shape, axes: tuple[int, ...]
) -> np.ndarray[Any, Any]:
    """Inverse of `fold_axes_last`: back to `shape` with the reduced axes in place."""
    keep = [i for i in range(len(shape)) if i not in axes]
    moved_shape = tuple(shape[i] for i in keep) + tuple(shape[i] for i in axes)
    return np.transpose(folded.reshape(moved_shape), np.argsort(keep + list(axes)))


def restore_keepdims(r: np.ndarray[Any, Any], shape: Shape, axes: tuple[int, ...]) -> Any:
    """Reshape a reduction result to keepdims form."""
    return r.reshape(tuple(1 if i in axes else d for i, d in enumerate(shape)))
