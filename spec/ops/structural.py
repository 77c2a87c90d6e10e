"""Ops that move numbers without arithmetic, plus matmul and one_hot."""

from __future__ import annotations

from .. import functional as F
from ..errors import ShapeError
from ..shapes import Shape, broadcast_shapes, size_of
from ..value import Value
from .registry import Attrs, OpDef, Props, apply, register, vjp_from_parts

Grads = tuple[Value | None, ...]

# Ops that only move elements: linear, hence piecewise linear, and monotone.
_MOVES: Props = {"rational": True, "linear": True, "piecewise_linear": True, "monotone": True}


def _matmul_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    a, b = shapes
    if len(a) == 2 and len(b) == 2 and a[1] == b[0]:  # the plain matrix product (hot path)
        return (a[0], b[1])
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul: operands must have rank >= 2, got {a} and {b}")
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul: inner dims differ: {a} @ {b} ({a[-1]} != {b[-2]})")
    try:
        batch = broadcast_shapes("matmul", a[:-2], b[:-2])
    except ShapeError:
        raise ShapeError(f"matmul: batch dims of {a} and {b} do not broadcast") from None
    return batch + (a[-2], b[-1])


# The op's operands and cotangent have rank >= 2, where F.matmul and F.swap_last are exactly
# these `apply` calls; calling them directly skips their vector-promotion checks (hot path).
def _swap_last(x: Value) -> Value:
    n = x.ndim
    return apply("transpose", x, axes=(1, 0) if n == 2 else (*range(n - 2), n - 1, n - 2))


def _matmul_vjp_a(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Value:
    a, b = xs
    ga = apply("matmul", g, _swap_last(b))
    return ga if ga.shape == a.shape else F.sum_to_shape(ga, a.shape)


def _matmul_vjp_b(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Value:
    # (gᵀa)ᵀ, not aᵀg: the same products and sums, but the matmul's result is laid out as
    # bᵀ. Parameters enter matmuls transposed (x @ W.T, as PyTorch's layers), so the
    # transpose VJP then hands back gᵀa itself, contiguous in W's own layout: flattening
    # gradients is a plain copy instead of a strided transpose (it is also PyTorch's
    # formula for a linear layer's weight gradient). Eager and compiled both use this rule.
    a, b = xs
    gb = _swap_last(apply("matmul", _swap_last(g), a))
    return gb if gb.shape == b.shape else F.sum_to_shape(gb, b.shape)


_MATMUL_PARTS = (_matmul_vjp_a, _matmul_vjp_b)
register(OpDef("matmul", 2, _matmul_shape, lambda f, xs, at: f.matmul(xs[0], xs[1]),
               vjp_from_parts(_MATMUL_PARTS),
               doc="batched matrix product (rank >= 2, batch dims broadcast)",
               vjp_parts=_MATMUL_PARTS, kind="contraction", rational=True))


def _transpose_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    (s,), perm = shapes, at["axes"]
    if perm == (1, 0) and len(s) == 2:  # the matrix transpose (hot path)
        return (s[1], s[0])
    if sorted(perm) != list(range(len(s))):
        raise ShapeError(f"transpose: {perm} is not a permutation of the axes of {s}")
    return tuple(s[p] for p in perm)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    if perm == (1, 0):  # the matrix transpose is its own inverse (hot path)
        return perm
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


register(OpDef("transpose", 1, _transpose_shape,
               lambda f, xs, at: f.permute(xs[0], at["axes"]),
               lambda g, xs, y, at: (apply("transpose", g, axes=_inverse(at["axes"])),),
               doc="permute axes", kind="structural", attr_schema=(("axes", "ints"),),
               **_MOVES))


def _reshape_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    (s,), target = shapes, at["shape"]
    if any(d < 0 for d in target) or size_of(target) != size_of(s):
        raise ShapeError(f"reshape: cannot reshape {s} ({size_of(s)} elements) into {target}")
    return tuple(target)


register(OpDef("reshape", 1, _reshape_shape,
               lambda f, xs, at: f.reshape(xs[0], at["shape"]),
               lambda g, xs, y, at: (F.reshape(g, xs[0].shape),),
               doc="same elements, new shape (row-major)", kind="structural",
               attr_schema=(("shape", "ints"),), **_MOVES))


def _broadcast_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    (s,), target = shapes, tuple(at["shape"])
    if len(target) < len(s) or broadcast_shapes("broadcast_to", s, target) != target:
        raise ShapeError(f"broadcast_to: cannot broadcast {s} to {target}")
    return target


register(OpDef("broadcast_to", 1, _broadcast_shape,
               lambda f, xs, at: f.broadcast_to(xs[0], at["shape"]),
               lambda g, xs, y, at: (F.sum_to_shape(g, xs[0].shape),),
               doc="NumPy broadcasting to a target shape", kind="structural",
               attr_schema=(("shape", "ints"),), **_MOVES))


def _concat_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    ax, first = at["axis"], shapes[0]
    for s in shapes:
        if len(s) != len(first) or not 0 <= ax < len(s) or any(
            d != e for i, (d, e) in enumerate(zip(s, first, strict=True)) if i != ax
        ):
            shown = ", ".join(str(x) for x in shapes)
            raise ShapeError(f"concat: shapes {shown} do not agree off axis {ax}")
    return first[:ax] + (sum(s[ax] for s in shapes),) + first[ax + 1 :]


def _concat_vjp(g: Value, xs: tuple[Value, ...], y: Value, at: Attrs) -> Grads:
    ax, start, grads = at["axis"], 0, []
    for x in xs:
        spec = [(0, d, 1) for d in g.shape]
        spec[ax] = (start, start + x.shape[ax], 1)
        grads.append(F.slice_axes(g, spec))
        start += x.shape[ax]
    return tuple(grads)


register(OpDef("concat", -1, _concat_shape,
               lambda f, xs, at: f.concat(xs, at["axis"]), _concat_vjp,
               doc="join along an existing axis", kind="structural",
               attr_schema=(("axis", "int"),), **_MOVES))


def _slice_shape(shape: Shape, spec: tuple[tuple[int, int, int], ...], tag: str) -> Shape:
    if len(spec) != len(shape):
        raise ShapeError(f"{tag}: spec {spec} has {len(spec)} axes, shape {shape} has {len(shape)}")
    out = []
    for (start, stop, stride), d in zip(spec, shape, strict=True):
        if not (0 <= start <= stop <= d and stride > 0):
            raise ShapeError(f"{tag}: slice {(start, stop, stride)} invalid for a dim of size {d}")
        out.append(len(range(start, stop, stride)))
    return tuple(out)


register(OpDef("slice", 1, lambda shapes, at: _slice_shape(shapes[0], at["spec"], "slice"),
               lambda f, xs, at: f.slice(xs[0], at["spec"]),
               lambda g, xs, y, at: (F.apply_unslice(g, xs[0].shape, at["spec"]),),
               doc="basic slicing with (start, stop, step) per axis", kind="structural",
               attr_schema=(("spec", "spec"),), **_MOVES))


def _unslice_shape(shapes: tuple[Shape, ...], at: Attrs) -> Shape:
    region = _slice_shape(tuple(at["shape"]), at["spec"], "unslice")
    if shapes[0] != region:
        raise ShapeError(
            f"unslice: input {shapes[0]} does not fill region {region} of {at['shape']}"
        )
    return tuple(at["shape"])


register(OpDef("unslice", 1, _unslice_shape,
               lambda f, xs, at: f.unslice(xs[0], at["shape"], at["spec"]),
               lambda g, xs, y, at: (F.slice_axes(g, at["spec"]),),
               doc="zeros of a shape with the input written into a sliced region",
               kind="structural", attr_schema=(("shape", "ints"), ("spec", "spec")), **_MOVES))

register(OpDef("one_hot", 1, lambda shapes, at: shapes[0] + (at["num_classes"],),
               lambda f, xs, at: f.one_hot(xs[0], at["num_classes"]),
               piecewise_constant=True,
               doc="0/1 rows with a one at each integer label", kind="encoding",
               attr_schema=(("num_classes", "int"),), rational=True))
