"""Tangent arithmetic with a leading direction axis, over any base field.

Forward-mode derivatives are computed for K directions at once: a tangent of a value of
shape s is one base-field array of shape (K,) + s. Tangents only ever meet linear
operations (sums, products with a primal that carries no direction axis, structural
moves), so these few helpers are all dual numbers need. `None` stands for an
identically zero tangent (constants), which saves the work of carrying zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...spec.fields.base import Array, Field, SliceSpec
from ...spec.shapes import Shape

__all__ = ["TangentOps"]


class TangentOps:
    """Linear operations on tangents `(K,) + shape` of one base field."""

    def __init__(self, base: Field) -> None:
        self.base = base

    # -- shapes -----------------------------------------------------------------
    def count(self, t: Array) -> int:
        """K, the number of directions a tangent carries."""
        return int(self.base.shape_of(t)[0])

    def pad(self, t: Array, rank: int) -> Array:
        """Insert unit axes after the direction axis so a value of rank `rank` broadcasts
        against the tangent's value part (NumPy aligns shapes on the right)."""
        shape = self.base.shape_of(t)
        missing = rank - (len(shape) - 1)
        if missing <= 0:
            return t
        return self.base.reshape(t, (shape[0],) + (1,) * missing + tuple(shape[1:]))

    def fit(self, t: Array, k: int, shape: Shape) -> Array:
        """Broadcast a tangent to exactly (K,) + shape."""
        target = (k,) + tuple(shape)
        t = self.pad(t, len(shape))
        return t if self.base.shape_of(t) == target else self.base.broadcast_to(t, target)

    def zeros(self, k: int, shape: Shape) -> Array:
        """An explicit zero tangent."""
        return self.base.full((k,) + tuple(shape), 0)

    # -- linear combinations ------------------------------------------------------
    def add(self, a: Array | None, b: Array | None, shape: Shape) -> Array | None:
        """a + b, either possibly zero (None), as a tangent of a value of `shape`."""
        if a is None and b is None:
            return None
        if a is None or b is None:
            only = a if a is not None else b
            return self.fit(only, self.count(only), shape)
        rank = len(shape)
        out = self.base.add(self.pad(a, rank), self.pad(b, rank))
        return self.fit(out, self.count(out), shape)

    def neg(self, a: Array | None) -> Array | None:
        """-a."""
        return None if a is None else self.base.neg(a)

    def sub(self, a: Array | None, b: Array | None, shape: Shape) -> Array | None:
        """a - b."""
        return self.add(a, self.neg(b), shape)

    def scale(self, t: Array | None, factor: Array, shape: Shape) -> Array | None:
        """factor * t for a primal `factor` (no direction axis), broadcast to `shape`."""
        if t is None:
            return None
        out = self.base.mul(self.pad(t, len(shape)), factor)
        return self.fit(out, self.count(out), shape)

    def divide(self, t: Array | None, divisor: Array, shape: Shape) -> Array | None:
        """t / divisor for a primal divisor."""
        if t is None:
            return None
        out = self.base.div(self.pad(t, len(shape)), divisor)
        return self.fit(out, self.count(out), shape)

    def select(
        self, cond: Array, a: Array | None, b: Array | None, shape: Shape
    ) -> Array | None:
        """a where the primal `cond` is nonzero, else b."""
        if a is None and b is None:
            return None
        k = self.count(a if a is not None else b)
        ta = self.fit(a, k, shape) if a is not None else self.zeros(k, shape)
        tb = self.fit(b, k, shape) if b is not None else self.zeros(k, shape)
        return self.base.select(cond, ta, tb)

    # -- reductions and contractions ----------------------------------------------
    @staticmethod
    def shift(axes: Sequence[int]) -> tuple[int, ...]:
        """Axes of a value, as axes of its tangent."""
        return tuple(a + 1 for a in axes)

    def sum(self, t: Array | None, axes: tuple[int, ...], keepdims: bool) -> Array | None:
        """Sum over value axes."""
        return None if t is None else self.base.sum(t, self.shift(axes), keepdims)

    def matmul_left(self, t: Array | None, b: Array, shape: Shape) -> Array | None:
        """t @ b for a primal right operand."""
        if t is None:
            return None
        rank = max(len(self.base.shape_of(t)) - 1, len(self.base.shape_of(b)))
        out = self.base.matmul(self.pad(t, rank), b)
        return self.fit(out, self.count(out), shape)

    def matmul_right(self, a: Array, t: Array | None, shape: Shape) -> Array | None:
        """a @ t for a primal left operand."""
        if t is None:
            return None
        rank = max(len(self.base.shape_of(t)) - 1, len(self.base.shape_of(a)))
        out = self.base.matmul(a, self.pad(t, rank))
        return self.fit(out, self.count(out), shape)

    # -- structure ---------------------------------------------------------------------
    def reshape(self, t: Array | None, shape: Shape) -> Array | None:
        """Reshape the value part."""
        return None if t is None else self.base.reshape(t, (self.count(t),) + tuple(shape))

    def permute(self, t: Array | None, axes: tuple[int, ...]) -> Array | None:
        """Permute the value axes."""
        return None if t is None else self.base.permute(t, (0,) + self.shift(axes))

    def broadcast_to(self, t: Array | None, shape: Shape) -> Array | None:
        """Broadcast the value part."""
        return None if t is None else self.fit(t, self.count(t), shape)

    def concat(
        self, parts: Sequence[Array | None], shapes: Sequence[Shape], axis: int
    ) -> Array | None:
        """Concatenate along a value axis; zero parts are made explicit when needed."""
        present = [t for t in parts if t is not None]
        if not present:
            return None
        k = self.count(present[0])
        full = [
            t if t is not None else self.zeros(k, s)
            for t, s in zip(parts, shapes, strict=True)
        ]
        return self.base.concat(full, axis + 1)

    def slice(self, t: Array | None, spec: SliceSpec) -> Array | None:
        """Basic slicing of the value part."""
        if t is None:
            return None
        return self.base.slice(t, ((0, self.count(t), 1),) + tuple(spec))

    def unslice(self, t: Array | None, shape: Shape, spec: SliceSpec) -> Array | None:
        """Zeros of `shape` with the tangent written into the region `spec`."""
        if t is None:
            return None
        k = self.count(t)
        return self.base.unslice(t, (k,) + tuple(shape), ((0, k, 1),) + tuple(spec))
