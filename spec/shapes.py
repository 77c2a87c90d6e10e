"""Shapes as plain tuples of dims, and the shape arithmetic every op rule shares."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ShapeError

__all__ = [
    "Shape",
    "as_shape",
    "broadcast_shapes",
    "normalize_axes",
    "reduced_shape",
    "size_of",
]

Shape = tuple[int, ...]


def as_shape(dims: Sequence[int] | int, *, what: str = "shape") -> Shape:
    """Return `dims` as a shape tuple, rejecting negative or non-integer dims."""
    seq = (dims,) if isinstance(dims, int) else tuple(dims)
    for d in seq:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ShapeError(f"{what}: dims must be non-negative ints, got {seq!r}")
    return seq


def size_of(shape: Shape) -> int:
    """Number of elements of a tensor of this shape."""
    n = 1
    for d in shape:
        n *= d
    return n


def broadcast_shapes(op: str, *shapes: Shape) -> Shape:
    """NumPy broadcasting of `shapes`; a mismatch raises ShapeError naming `op`."""
    first = shapes[0] if shapes else ()
    if all(s == first for s in shapes):
        return first
    ndim = max((len(s) for s in shapes), default=0)
    out: list[int] = []
    for i in range(-ndim, 0):
        dim = 1
        for s in shapes:
            if len(s) >= -i:
                d = s[i]
                if d != 1 and dim != 1 and d != dim:
                    shown = ", ".join(str(x) for x in shapes)
                    raise ShapeError(f"{op}: shapes {shown} do not broadcast")
                if d != 1:
                    dim = d
        out.append(dim)
    return tuple(out)


def normalize_axes(op: str, axes: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Sorted non-negative axes; None means all axes. Out-of-range or repeated axes raise."""
    if axes is None:
        return tuple(range(ndim))
    seq = (axes,) if isinstance(axes, int) else tuple(axes)
    out = []
    for a in seq:
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} out of range for a tensor of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {seq!r}")
    return tuple(sorted(out))


def reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    """The shape left after reducing `axes` (already normalized)."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)
