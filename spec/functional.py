"""The typed functional API over the op table: `F.add(x, y)`, `F.softmax(x, axis=-1)`, ...

Each function works on any `Value` (concrete, eager, symbolic) and returns the same kind.
Arguments are validated and normalised here (axes resolved, -1 in reshape filled in, index
expressions turned into slices) so that the op records see canonical attributes.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .errors import ShapeError
from .fields.base import Field
from .primitives import (
    abs,
    add,
    apply_unslice,
    argmax_mask,
    broadcast_to,
    concat,
    constant,
    cos,
    div,
    erf,
    exp,
    expm1,
    flatten,
    gelu,
    getitem,
    greater,
    leaky_relu,
    log,
    log1p,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    mul,
    neg,
    one_hot,
    ones_like,
    pi,
    power,
    relu,
    reshape,
    sigmoid,
    silu,
    sin,
    slice_axes,
    softmax,
    softplus,
    sqrt,
    square,
    step,
    sub,
    sum,
    sum_to_shape,
    swap_last,
    tanh,
    transpose,
    where,
    zeros_like,
)
from .tensor import Tensor

if TYPE_CHECKING:
    from .value import Value

V = TypeVar("V", bound="Value")
Operand = Any  # a Value or a plain number

__all__ = [
    "add", "sub", "mul", "div", "neg", "abs", "square", "power", "sqrt", "exp", "log",
    "log1p", "expm1", "tanh", "sigmoid", "softplus", "erf", "gelu", "silu", "sin", "cos",
    "relu", "leaky_relu", "maximum", "minimum", "where", "greater", "step", "sum", "mean",
    "max", "matmul", "transpose", "swap_last", "reshape", "flatten", "broadcast_to",
    "sum_to_shape", "concat", "slice_axes", "apply_unslice", "getitem", "softmax",
    "log_softmax", "one_hot", "argmax_mask", "pi", "constant", "zeros_like", "ones_like",
    # convolution, pooling, normalisation, embedding, attention (composites)
    "pad", "conv2d", "conv1d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "global_avg_pool", "group_norm", "rms_norm", "embedding", "causal_mask",
    "scaled_dot_product_attention", "conv_transpose2d",
]





# == convolution, pooling, normalisation, embedding, attention =====================
# Composites of the ops above (no op of their own): every field, every Value kind, the
# VJPs and the compiled graphs get them for free. Images are NCHW.
#
# ieee32exec semantics of conv2d (fixed): the input is zero-padded, its windows gathered
# (im2col) into columns ordered (c, i, j) row-major -- channel of the group, kernel row,
# kernel column -- and each output is the ieee32exec matmul of a weight row with a column:
# a zero-seeded left fold over k = (c, i, j) in index order, one rounding per multiply and
# per add. The bias is added afterwards with one more rounding. Pooling sums (avg) fold
# over the window in (i, j) row-major order, then divide once.

def _pair(where: str, name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    """`value` as (h, w); each an int >= minimum, else ValueError naming `where`."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair
    ):
        raise ValueError(f"{where}: {name} must be an int >= {minimum} or a pair, got {value!r}")
    return (pair[0], pair[1])


def pad(a: V, widths: Sequence[tuple[int, int]]) -> V:
    """Zero padding: widths[i] = (before, after) for each of the LAST len(widths) axes.

    Its gradient is the slice of the padded region (the VJP of `unslice`)."""
    ws = [tuple(w) for w in widths]
    if len(ws) > a.ndim or any(len(w) != 2 or builtins.min(w) < 0 for w in ws):
        raise ShapeError(f"pad: widths {widths} invalid for shape {a.shape}")
    lead = a.ndim - len(ws)
    shape = list(a.shape)
    spec = [(0, d, 1) for d in a.shape]
    for k, (lo, hi) in enumerate(ws):
        d = a.shape[lead + k]
        shape[lead + k] = lo + d + hi
        spec[lead + k] = (lo, lo + d, 1)
    if tuple(shape) == a.shape:
        return a
    return apply_unslice(a, shape, spec)


def _out_size(where: str, size: int, k: int, s: int, p: int, d: int) -> int:
    span = d * (k - 1) + 1
    if size + 2 * p < span:
        raise ShapeError(
            f"{where}: kernel span {span} (kernel {k}, dilation {d}) exceeds the padded "
            f"input size {size + 2 * p}"
        )
    return (size + 2 * p - span) // s + 1


def _windows(x: V, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], out: tuple[int, int]) -> V:
    """Windows of a padded (N, C, H, W) input as (N, C, kh*kw, OH, OW), (i, j) row-major."""
    n, c = x.shape[0], x.shape[1]
    parts = [reshape(part, (n, c, 1, out[0], out[1]))
             for part in _window_slices(x, kernel, stride, dilation, out)]
    return parts[0] if len(parts) == 1 else concat(parts, axis=2)


def _window_slices(x: V, kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int], out: tuple[int, int]) -> list[V]:
    """The kh*kw strided slices of a padded (N, C, H, W) input, one (N, C, OH, OW) per
    kernel offset, in (i, j) row-major order: slice (i, j) holds element (i, j) of every
    window (no gathering; each is a strided view where the field has views)."""
    n, c = x.shape[0], x.shape[1]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    return [slice_axes(x, [(0, n, 1), (0, c, 1),
                           (i * dh, i * dh + (oh - 1) * sh + 1, sh),
                           (j * dw, j * dw + (ow - 1) * sw + 1, sw)])
            for i in range(kh) for j in range(kw)]


def _image(where: str, x: V) -> tuple[V, bool]:
    """x as (N, C, H, W); an unbatched (C, H, W) input gets a batch axis (second item)."""
    if x.ndim == 3:
        return reshape(x, (1, *x.shape)), True
    if x.ndim != 4:
        raise ShapeError(f"{where}: expected input (N, C, H, W) or (C, H, W), got {x.shape}")
    return x, False


def conv2d(x: V, weight: V, bias: V | None = None, stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
           groups: int = 1) -> V:
    """2-D cross-correlation as PyTorch's F.conv2d: x (N, C, H, W) or (C, H, W), weight
    (O, C // groups, kh, kw), bias (O,); zero padding. Output (N, O, OH, OW) with
    OH = (H + 2 p - d (kh - 1) - 1) // s + 1. ieee32exec: see the section comment (a left
    fold over (c, i, j) in index order, then the bias)."""
    st, pd, dl = (_pair("conv2d", "stride", stride, 1), _pair("conv2d", "padding", padding, 0),
                  _pair("conv2d", "dilation", dilation, 1))
    xb, unbatched = _image("conv2d", x)
    n, c, h, w = xb.shape
    if weight.ndim != 4:
        raise ShapeError(f"conv2d: weight must be (O, C/groups, kh, kw), got {weight.shape}")
    o, cg, kh, kw = weight.shape
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if c % groups or o % groups or cg != c // groups:
        raise ShapeError(
            f"conv2d: input {xb.shape} and weight {weight.shape} do not fit groups={groups} "
            f"(need C and O divisible by groups and weight.shape[1] == C // groups)"
        )
    if bias is not None and bias.shape != (o,):
        raise ShapeError(f"conv2d: bias must have shape ({o},), got {bias.shape}")
    out = (_out_size("conv2d", h, kh, st[0], pd[0], dl[0]),
           _out_size("conv2d", w, kw, st[1], pd[1], dl[1]))
    win = _windows(pad(xb, [(pd[0], pd[0]), (pd[1], pd[1])]), (kh, kw), st, dl, out)
    cols = reshape(win, (n, groups, cg * kh * kw, out[0] * out[1]))
    y = matmul(reshape(weight, (groups, o // groups, cg * kh * kw)), cols)
    y = reshape(y, (n, o, out[0], out[1]))
    if bias is not None:
        y = add(y, reshape(bias, (o, 1, 1)))
    return reshape(y, y.shape[1:]) if unbatched else y


def conv1d(x: V, weight: V, bias: V | None = None, stride: int = 1, padding: int = 0,
           dilation: int = 1, groups: int = 1) -> V:
    """1-D cross-correlation as PyTorch's F.conv1d: x (N, C, L), weight (O, C // groups, k);
    conv2d over a height-1 image (same ieee32exec order: (c, j))."""
    if x.ndim != 3 or weight.ndim != 3:
        raise ShapeError(f"conv1d: expected x (N, C, L) and weight (O, C/groups, k), got "
                         f"{x.shape} and {weight.shape}")
    y = conv2d(reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2])),
               reshape(weight, (*weight.shape[:2], 1, weight.shape[2])), bias,
               (1, stride), (0, padding), (1, dilation), groups)
    return reshape(y, (y.shape[0], y.shape[1], y.shape[3]))


def _pool_args(where: str, kernel: int | Sequence[int], stride: int | Sequence[int] | None,
               padding: int | Sequence[int]) -> tuple[tuple[int, int], ...]:
    k = _pair(where, "kernel", kernel, 1)
    s = k if stride is None else _pair(where, "stride", stride, 1)
    p = _pair(where, "padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{where}: padding {p} must be at most half the kernel {k}")
    return k, s, p


def max_pool2d(x: V, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1) -> V:
    """Max over each window (PyTorch's F.max_pool2d; stride defaults to the kernel).

    Padding never wins (it is filled with a value below every input); the gradient goes to
    the first row-major winner of each window."""
    k, s, p = _pool_args("max_pool2d", kernel, stride, padding)
    d = _pair("max_pool2d", "dilation", dilation, 1)
    xb, unbatched = _image("max_pool2d", x)
    out = (_out_size("max_pool2d", xb.shape[2], k[0], s[0], p[0], d[0]),
           _out_size("max_pool2d", xb.shape[3], k[1], s[1], p[1], d[1]))
    widths = [(p[0], p[0]), (p[1], p[1])]
    padded = xb
    if p != (0, 0):
        low = sub(neg(max(neg(xb))), 1)  # strictly below every input, exact in every field
        padded = where(pad(ones_like(xb), widths), pad(xb, widths), low)
    # A left fold of `maximum` over the window's elements in (i, j) row-major order:
    # maximum sends a tie's gradient to its first operand (the running max), so each
    # window's gradient reaches its first row-major maximum, with elementwise work only
    # (no window gather, no argmax over groups). A NaN makes the window's max NaN; its
    # gradient then goes to the first maximum of the elements before the first NaN (to
    # the NaN itself when it comes first).
    parts = _window_slices(padded, k, s, d, out)
    y = parts[0]
    for part in parts[1:]:
        y = maximum(y, part)
    return reshape(y, y.shape[1:]) if unbatched else y


def avg_pool2d(x: V, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> V:
    """Mean over each window, zero padding counted (PyTorch's F.avg_pool2d defaults)."""
    k, s, p = _pool_args("avg_pool2d", kernel, stride, padding)
    xb, unbatched = _image("avg_pool2d", x)
    out = (_out_size("avg_pool2d", xb.shape[2], k[0], s[0], p[0], 1),
           _out_size("avg_pool2d", xb.shape[3], k[1], s[1], p[1], 1))
    win = _windows(pad(xb, [(p[0], p[0]), (p[1], p[1])]), k, s, (1, 1), out)
    y = mean(win, axis=2)
    return reshape(y, y.shape[1:]) if unbatched else y


def _adaptive_axis(x: V, axis: int, size: int) -> V:
    """Mean over PyTorch's adaptive bands [floor(i n / size), ceil((i + 1) n / size))."""
    n = x.shape[axis]
    if n == size:
        return x
    parts = []
    for i in range(size):
        lo, hi = (i * n) // size, -((-(i + 1) * n) // size)
        spec = [(0, d, 1) for d in x.shape]
        spec[axis] = (lo, hi, 1)
        parts.append(mean(slice_axes(x, spec), axis=axis, keepdims=True))
    return parts[0] if len(parts) == 1 else concat(parts, axis=axis)


def adaptive_avg_pool2d(x: V, output_size: int | Sequence[int]) -> V:
    """PyTorch's F.adaptive_avg_pool2d: means over bands of rows, then of columns (each
    output averages a rectangle; in ieee32exec, a mean of row-band means)."""
    oh, ow = _pair("adaptive_avg_pool2d", "output_size", output_size, 1)
    if x.ndim not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d: expected (N, C, H, W) or (C, H, W), got {x.shape}")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ShapeError(f"adaptive_avg_pool2d: empty spatial dims in {x.shape}")
    return _adaptive_axis(_adaptive_axis(x, x.ndim - 2, oh), x.ndim - 1, ow)


def global_avg_pool(x: V) -> V:
    """Mean over the two spatial axes: (..., C, H, W) -> (..., C)."""
    if x.ndim < 3:
        raise ShapeError(f"global_avg_pool: expected (..., C, H, W), got {x.shape}")
    return mean(x, axis=(-2, -1))


def _affine(y: V, weight: V | None, bias: V | None, channel_axis: int) -> V:
    trail = (1,) * (y.ndim - channel_axis - 1)
    if weight is not None:
        y = mul(y, reshape(weight, (weight.shape[0], *trail)))
    if bias is not None:
        y = add(y, reshape(bias, (bias.shape[0], *trail)))
    return y


def _eps_value(where: str, eps: float | Fraction) -> Fraction:
    q = Fraction(eps)
    if q <= 0:
        raise ValueError(f"{where}: eps must be positive, got {eps!r}")
    return q


def group_norm(x: V, num_groups: int, weight: V | None = None, bias: V | None = None,
               eps: float = 1e-5) -> V:
    """PyTorch's F.group_norm: x (N, C, ...) normalised over each group of C // num_groups
    channels and all later axes (biased variance), then per-channel weight and bias."""
    if x.ndim < 2 or isinstance(num_groups, bool) or not isinstance(num_groups, int) or (
        num_groups < 1 or x.shape[1] % num_groups
    ):
        raise ShapeError(f"group_norm: {num_groups} groups do not divide the channels of "
                         f"{x.shape}")
    n = x.shape[0]
    g = reshape(x, (n, num_groups, -1))
    centred = sub(g, mean(g, -1, keepdims=True))
    var = mean(square(centred), -1, keepdims=True)
    y = reshape(div(centred, sqrt(add(var, _eps_value("group_norm", eps)))), x.shape)
    return _affine(y, weight, bias, 1)


def rms_norm(x: V, weight: V | None = None, eps: float = 1e-6) -> V:
    """x / sqrt(mean(x^2 over the last axis) + eps) * weight (PyTorch's F.rms_norm over
    the last axis, with an explicit eps)."""
    if x.ndim < 1 or (weight is not None and weight.shape != x.shape[-1:]):
        raise ShapeError(f"rms_norm: weight {None if weight is None else weight.shape} does "
                         f"not fit input {x.shape}")
    ms = mean(square(x), -1, keepdims=True)
    y = div(x, sqrt(add(ms, _eps_value("rms_norm", eps))))
    return mul(y, weight) if weight is not None else y


def embedding(ids: V, weight: V) -> V:
    """Rows of weight (num, dim) picked by integer ids (any shape) -> (..., dim): the exact
    product one_hot(ids) @ weight, so the gradient scatter-adds into the picked rows. A
    non-integer or out-of-range id raises ValueError naming it."""
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be (num, dim), got {weight.shape}")
    return matmul(one_hot(ids, weight.shape[0]), weight)


def causal_mask(field: Field, length: int, source: int | None = None) -> Tensor:
    """The constant 0/1 (length, source) mask with ones where key position <= query
    position; ops lift it into any context of the same field."""

    tri = np.tril(np.ones((length, length if source is None else source)))
    return Tensor(field.asarray(tri), field)


def scaled_dot_product_attention(q: V, k: V, v: V, mask: V | None = None,
                                 causal: bool = False) -> V:
    """softmax(q k^T / sqrt(d) masked) v over the last two axes (PyTorch's
    F.scaled_dot_product_attention). `mask` holds 0/1 (1 = attend); masked weights are
    exactly 0. The scale is the exact 1/sqrt(d) where d is a square, else a division by
    sqrt(d) in the field."""
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[-1] != k.shape[-1] or (
        k.shape[-2] != v.shape[-2]
    ):
        raise ShapeError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, v {v.shape}"
                         " do not fit (..., L, d), (..., S, d), (..., S, dv)")
    d = q.shape[-1]
    scores = matmul(q, swap_last(k))
    root = math.isqrt(d)
    scores = mul(scores, Fraction(1, root)) if root * root == d else div(
        scores, sqrt(constant(scores, d)))
    if causal:
        cm = causal_mask(scores.field, q.shape[-2], k.shape[-2])
        mask = cm if mask is None else mul(mask, cm)  # type: ignore[assignment]
    if mask is None:
        weights = softmax(scores, -1)
    else:
        low = neg(max(neg(scores), -1, keepdims=True))  # the row minimum: never above a kept score
        kept = where(broadcast_to(mask, scores.shape), scores, low)
        e = mul(exp(sub(kept, max(kept, -1, keepdims=True))), mask)
        weights = div(e, sum(e, -1, keepdims=True))
    return matmul(weights, v)


def _flip(a: V, axis: int) -> V:
    """`a` reversed along `axis` (slices never step backwards: a concat of unit slices)."""
    n = a.shape[axis]
    if n == 1:
        return a
    full = [(0, d, 1) for d in a.shape]
    parts = [slice_axes(a, full[:axis] + [(i, i + 1, 1)] + full[axis + 1:])
             for i in reversed(range(n))]
    return concat(parts, axis=axis)


def conv_transpose2d(x: V, weight: V, bias: V | None = None, stride: int | Sequence[int] = 1,
                     padding: int | Sequence[int] = 0,
                     output_padding: int | Sequence[int] = 0, groups: int = 1,
                     dilation: int | Sequence[int] = 1) -> V:
    """PyTorch's F.conv_transpose2d (the adjoint of conv2d in x): x (N, C, H, W) or
    (C, H, W), weight (C, O // groups, kh, kw), bias (O,). Output (N, O, OH, OW) with
    OH = (H - 1) s - 2 p + d (kh - 1) + output_padding + 1; output_padding must be below
    the stride or the dilation. Computed as conv2d (stride 1) of the input spread out with
    s - 1 zeros between entries and padded by d (k - 1) - p, with the kernel flipped and
    its channel axes swapped per group."""
    where = "conv_transpose2d"
    st, pd, dl = (_pair(where, "stride", stride, 1), _pair(where, "padding", padding, 0),
                  _pair(where, "dilation", dilation, 1))
    op = _pair(where, "output_padding", output_padding, 0)
    if any(o >= builtins.max(s, d) for o, s, d in zip(op, st, dl, strict=True)):
        raise ValueError(f"{where}: output_padding {op} must be below the stride {st} or the "
                         f"dilation {dl}")
    xb, unbatched = _image(where, x)
    n, c, h, w = xb.shape
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r}")
    if weight.ndim != 4 or weight.shape[0] != c or c % groups:
        raise ShapeError(f"{where}: input {xb.shape} and weight {weight.shape} do not fit "
                         f"groups={groups} (need weight (C, O/groups, kh, kw), C divisible by "
                         "groups)")
    _, og, kh, kw = weight.shape
    cg = c // groups
    # Per group the kernel maps O/groups -> C/groups in the forward conv: swap the channel
    # axes within each group and flip the window (the adjoint of cross-correlation).
    wg = transpose(reshape(weight, (groups, cg, og, kh, kw)), (0, 2, 1, 3, 4))
    wf = _flip(_flip(reshape(wg, (groups * og, cg, kh, kw)), 2), 3)
    # Spread and pad in one unslice: entry (i, j) of x lands at (lo + s i, lo + s j) of a
    # zero image whose far side also gets output_padding; lo = d (k - 1) - p may be
    # negative, then the image is padded by d (k - 1) and cropped by p afterwards.
    full = [d * (k - 1) for d, k in zip(dl, (kh, kw), strict=True)]
    lo = [f - p if f >= p else f for f, p in zip(full, pd, strict=True)]
    crop = [0 if f >= p else p for f, p in zip(full, pd, strict=True)]
    sizes = [(size - 1) * s + 1 + 2 * low + o
             for size, s, low, o in zip((h, w), st, lo, op, strict=True)]
    if any(size - 2 * k < f + 1 for size, k, f in zip(sizes, crop, full, strict=True)):
        raise ShapeError(f"{where}: input {xb.shape} with padding {pd} leaves no output")
    spread = apply_unslice(xb, (n, c, *sizes), [(0, n, 1), (0, c, 1)] + [
        (low, low + (size - 1) * s + 1, s) for size, s, low in zip((h, w), st, lo, strict=True)])
    if any(crop):
        spread = slice_axes(spread, [(0, n, 1), (0, c, 1)] + [
            (k, size - k, 1) for k, size in zip(crop, sizes, strict=True)])
    y = conv2d(spread, wf, bias, 1, 0, dl, groups)
    return reshape(y, y.shape[1:]) if unbatched else y

