"""One function per op of the table (and the few one-op conveniences: power, flatten,
getitem, sum_to_shape, ...) on any `Value`: what `Value`'s operators and methods call, and
what `functional` re-exports.

Arguments are validated and normalised here (axes resolved, -1 in reshape filled in,
index expressions turned into slices) so that the op records see canonical attributes.
Imports only the op registry (not the op definitions, which build on these functions).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ShapeError
from .fields.base import PI, Constant
from .ops.registry import apply
from .shapes import normalize_axes, size_of

if TYPE_CHECKING:
    from .value import Value

V = TypeVar("V", bound="Value")
Operand = Any  # a Value or a plain number

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "abs",
    "square",
    "power",
    "sqrt",
    "exp",
    "log",
    "log1p",
    "expm1",
    "tanh",
    "sigmoid",
    "softplus",
    "erf",
    "gelu",
    "silu",
    "sin",
    "cos",
    "relu",
    "leaky_relu",
    "maximum",
    "minimum",
    "where",
    "greater",
    "step",
    "sum",
    "mean",
    "max",
    "matmul",
    "transpose",
    "swap_last",
    "reshape",
    "flatten",
    "broadcast_to",
    "sum_to_shape",
    "concat",
    "slice_axes",
    "apply_unslice",
    "getitem",
    "softmax",
    "log_softmax",
    "one_hot",
    "argmax_mask",
    "pi",
    "constant",
    "zeros_like",
    "ones_like",
]


# -- elementwise -------------------------------------------------------------
def add(a: V, b: Operand) -> V:
    """a + b with broadcasting."""
    return apply("add", a, b)


def sub(a: V, b: Operand) -> V:
    """a - b with broadcasting."""
    return apply("sub", a, b)


def mul(a: V, b: Operand) -> V:
    """a * b with broadcasting."""
    return apply("mul", a, b)


def div(a: V, b: Operand) -> V:
    """a / b with broadcasting."""
    return apply("div", a, b)


def neg(a: V) -> V:
    """-a."""
    return apply("neg", a)


def abs(a: V) -> V:  # noqa: A001  (mirrors numpy's name)
    """|a|."""
    return apply("abs", a)


def square(a: V) -> V:
    """a * a."""
    return apply("square", a)


def power(a: V, exponent: int) -> V:
    """a ** exponent for a non-negative integer exponent, by repeated squaring."""
    if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 0:
        raise ValueError(f"power: exponent must be a non-negative int, got {exponent!r}")
    result: V | None = None
    base = a
    while exponent:
        if exponent & 1:
            result = base if result is None else mul(result, base)
        exponent >>= 1
        if exponent:
            base = square(base)
    return result if result is not None else ones_like(a)


def sqrt(a: V) -> V:
    """Square root."""
    return apply("sqrt", a)


def exp(a: V) -> V:
    """e ** a."""
    return apply("exp", a)


def log(a: V) -> V:
    """Natural logarithm."""
    return apply("log", a)


def log1p(a: V) -> V:
    """log(1 + a)."""
    return apply("log1p", a)


def expm1(a: V) -> V:
    """exp(a) - 1."""
    return apply("expm1", a)


def tanh(a: V) -> V:
    """Hyperbolic tangent."""
    return apply("tanh", a)


def sigmoid(a: V) -> V:
    """1 / (1 + exp(-a))."""
    return apply("sigmoid", a)


def softplus(a: V) -> V:
    """log(1 + exp(a))."""
    return apply("softplus", a)


def erf(a: V) -> V:
    """The error function."""
    return apply("erf", a)


def gelu(a: V) -> V:
    """a * Phi(a), the exact (erf) GELU."""
    return apply("gelu", a)


def silu(a: V) -> V:
    """a * sigmoid(a)."""
    return apply("silu", a)


def sin(a: V) -> V:
    """Sine."""
    return apply("sin", a)


def cos(a: V) -> V:
    """Cosine."""
    return apply("cos", a)


def relu(a: V) -> V:
    """max(a, 0); its derivative at 0 is taken as 0."""
    return apply("relu", a)


def leaky_relu(a: V, negative_slope: float = 0.01) -> V:
    """a where a > 0, else negative_slope * a."""
    return apply("leaky_relu", a, negative_slope=negative_slope)


def maximum(a: V, b: Operand) -> V:
    """Elementwise max; on ties the gradient goes to `a`."""
    return apply("maximum", a, b)


def minimum(a: V, b: Operand) -> V:
    """Elementwise min; on ties the gradient goes to `a`."""
    return apply("minimum", a, b)


def where(cond: V, a: Operand, b: Operand) -> V:
    """a where cond is nonzero, else b (cond holds 0/1 values, e.g. from `greater`)."""
    return apply("where", cond, a, b)


def greater(a: V, b: Operand) -> V:
    """1 where a > b, else 0 (no gradient)."""
    return apply("greater", a, b)


def step(a: V) -> V:
    """Heaviside step: 1 where a > 0, else 0 (no gradient)."""
    return apply("step", a)


# -- reductions ---------------------------------------------------------------
def sum(a: V, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> V:  # noqa: A001
    """Sum over `axis` (all axes when None)."""
    return apply("sum", a, axes=normalize_axes("sum", axis, a.ndim), keepdims=keepdims)


def mean(a: V, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> V:
    """Mean over `axis` (all axes when None)."""
    return apply("mean", a, axes=normalize_axes("mean", axis, a.ndim), keepdims=keepdims)


def max(a: V, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> V:  # noqa: A001
    """Max over `axis`; the gradient goes to the first maximum in row-major order."""
    return apply("max", a, axes=normalize_axes("max", axis, a.ndim), keepdims=keepdims)


def argmax_mask(a: V, axis: int | Sequence[int] | None = None) -> V:
    """0/1 tensor marking the first maximum of each group over `axis` (no gradient)."""
    return apply("argmax_mask", a, axes=normalize_axes("argmax_mask", axis, a.ndim))


# -- linear algebra and structure ------------------------------------------------
def matmul(a: V, b: V) -> V:
    """NumPy matmul semantics: vectors are promoted to matrices and the added dim dropped."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands must not be scalars, got {a.shape} and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:  # checked before promoting vectors, to name the given shapes
        raise ShapeError(
            f"matmul: inner dims differ: {a.shape} @ {b.shape} ({a.shape[-1]} != {inner_b})"
        )
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    out: V = apply("matmul", a2, b2)
    if a.ndim == 1 and b.ndim == 1:
        return reshape(out, ())
    if a.ndim == 1:
        return reshape(out, out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        return reshape(out, out.shape[:-1])
    return out


def transpose(a: V, axes: Sequence[int] | None = None) -> V:
    """Permute axes (reverse them when None), as numpy.transpose."""
    if axes is None:
        perm = tuple(reversed(range(a.ndim)))
    else:
        perm = tuple(ax + a.ndim if -a.ndim <= ax < 0 else ax for ax in axes)
    return apply("transpose", a, axes=perm)


def swap_last(a: V) -> V:
    """Swap the last two axes (the matrix transpose of a batch)."""
    if a.ndim < 2:
        raise ShapeError(f"swap_last: needs rank >= 2, got shape {a.shape}")
    perm = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return apply("transpose", a, axes=perm)


def reshape(a: V, shape: Sequence[int]) -> V:
    """Reshape to `shape`; one dim may be -1 and is then inferred."""
    dims = list(shape)
    if dims.count(-1) > 1:
        raise ShapeError(f"reshape: at most one -1 allowed, got {tuple(dims)}")
    if -1 in dims:
        known = size_of(tuple(d for d in dims if d != -1))
        if known == 0 or a.size % known:
            raise ShapeError(f"reshape: cannot reshape {a.shape} into {tuple(dims)}")
        dims[dims.index(-1)] = a.size // known
    target = tuple(dims)
    if target == a.shape:
        return a
    return apply("reshape", a, shape=target)


def flatten(a: V, start_axis: int = 1) -> V:
    """Merge the axes from `start_axis` on into one (batch axes before it are kept)."""
    start = normalize_axes("flatten", start_axis, a.ndim)[0] if a.ndim else 0
    return reshape(a, a.shape[:start] + (size_of(a.shape[start:]),))


def broadcast_to(a: V, shape: Sequence[int]) -> V:
    """Broadcast to `shape` by NumPy's rules."""
    target = tuple(shape)
    if target == a.shape:
        return a
    return apply("broadcast_to", a, shape=target)


def sum_to_shape(g: V, shape: Sequence[int]) -> V:
    """Sum `g` down to `shape`: the adjoint of broadcasting `shape` up to g's shape."""
    target = tuple(shape)
    if g.shape == target:
        return g
    lead = g.ndim - len(target)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(target) if d == 1 and g.shape[lead + i] != 1
    )
    return reshape(sum(g, axes, keepdims=False), target) if axes else reshape(g, target)


def concat(tensors: Sequence[V], axis: int = 0) -> V:
    """Join tensors along an existing axis."""
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    ax = normalize_axes("concat", axis, tensors[0].ndim)[0]
    return apply("concat", *tensors, axis=ax)


def slice_axes(a: V, spec: Sequence[tuple[int, int, int]]) -> V:
    """Basic slicing with one resolved (start, stop, step) per axis (step > 0)."""
    return apply("slice", a, spec=tuple(tuple(s) for s in spec))


def apply_unslice(g: V, shape: Sequence[int], spec: Sequence[tuple[int, int, int]]) -> V:
    """Zeros of `shape` with `g` written where `spec` slices (the adjoint of slicing)."""
    return apply("unslice", g, shape=tuple(shape), spec=tuple(tuple(s) for s in spec))


def getitem(a: V, index: Any) -> V:
    """NumPy basic indexing: ints, slices (positive steps), Ellipsis and None."""
    items = index if isinstance(index, tuple) else (index,)
    if ellipses := [i for i, it in enumerate(items) if it is Ellipsis]:
        if len(ellipses) > 1:
            raise IndexError("getitem: only one Ellipsis allowed")
        k = ellipses[0]
        used = len([it for it in items if it is not None and it is not Ellipsis])
        items = items[:k] + (slice(None),) * (a.ndim - used) + items[k + 1 :]
    spec: list[tuple[int, int, int]] = []
    out_shape: list[int] = []
    axis = 0
    for it in items:
        if it is None:
            out_shape.append(1)
            continue
        if axis >= a.ndim:
            raise IndexError(f"getitem: too many indices for a tensor of shape {a.shape}")
        n = a.shape[axis]
        if isinstance(it, bool) or not isinstance(it, (int, slice)):
            raise IndexError(f"getitem: unsupported index {it!r} (ints, slices, None, ...)")
        if isinstance(it, int):
            i = it + n if it < 0 else it
            if not 0 <= i < n:
                raise IndexError(f"getitem: index {it} out of range for axis {axis} of size {n}")
            spec.append((i, i + 1, 1))
        else:
            start, stop, stride = it.indices(n)
            if stride <= 0:
                raise IndexError("getitem: only positive slice steps are supported")
            spec.append((start, builtins.max(start, stop), stride))
            out_shape.append(len(range(start, stop, stride)))
        axis += 1
    for rest in range(axis, a.ndim):
        spec.append((0, a.shape[rest], 1))
        out_shape.append(a.shape[rest])
    full = all(s == (0, a.shape[i], 1) for i, s in enumerate(spec))
    sliced = a if full else slice_axes(a, spec)
    return reshape(sliced, tuple(out_shape))


# -- normalisations and labels --------------------------------------------------
def softmax(a: V, axis: int = -1) -> V:
    """exp(a - max) / sum(exp(a - max)) along `axis`."""
    return apply("softmax", a, axis=normalize_axes("softmax", axis, a.ndim)[0])


def log_softmax(a: V, axis: int = -1) -> V:
    """a - max - log(sum(exp(a - max))) along `axis`."""
    return apply("log_softmax", a, axis=normalize_axes("log_softmax", axis, a.ndim)[0])


def one_hot(labels: V, num_classes: int) -> V:
    """0/1 rows with a one at each integer label (labels are a tensor of integer values)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"one_hot: num_classes must be a positive int, got {num_classes!r}")
    return apply("one_hot", labels, num_classes=num_classes)


# -- constants -----------------------------------------------------------------
def constant(like: V, value: Constant) -> V:
    """A 0-d constant in `like`'s context and field."""
    return like._lift(value)


def pi(like: V) -> V:
    """The constant pi in `like`'s field (an enclosure over intervals)."""
    return like._lift(PI)


def zeros_like(a: V) -> V:
    """Zeros of a's shape."""
    return broadcast_to(a._lift(0), a.shape)


def ones_like(a: V) -> V:
    """Ones of a's shape."""
    return broadcast_to(a._lift(1), a.shape)
