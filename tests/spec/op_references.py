"""Reference semantics of the op table, written independently of torchlean.spec.

- `exact_reference`: the exact rational result of a rational op, by plain Python `Fraction`
  arithmetic element by element (NumPy only moves elements around: broadcasting, transposes).
- `mp_reference`: the real result of a transcendental op (and sqrt), by mpmath at a chosen
  precision.
- `numpy_reference`: the same operation spelled with NumPy, for result shapes.
- `to_fraction_or_inf`: the exact value of an mpmath mpf / interval endpoint.

Formulas used for the references: sigmoid(x) = 1 / (1 + e^-x), softplus(x) = log(1 + e^x),
gelu(x) = x Phi(x) = x erfc(-x / sqrt 2) / 2, silu(x) = x sigmoid(x),
softmax = e^x / sum e^x and log_softmax = x - log(sum e^x) along the axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from mpmath import libmp

ObjArray = np.ndarray[Any, Any]
Q = Fraction
Attrs = dict[str, Any]


def obj_array(values: list[Any], shape: tuple[int, ...]) -> ObjArray:
    """An object array of `shape` holding `values` in row-major order."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out.reshape(shape)


def elementwise(fn: Callable[..., Any], *arrays: ObjArray) -> ObjArray:
    """fn applied to the broadcast operands, one Python call per element."""
    parts = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in arrays])
    shape = parts[0].shape if parts else ()
    return obj_array([fn(*(p[i] for p in parts)) for i in np.ndindex(*shape)], shape)


def groups(shape: tuple[int, ...], axes: tuple[int, ...]) -> Iterator[list[tuple[int, ...]]]:
    """For each position of the kept axes (row-major), the indices of its reduced group
    (row-major over the reduced axes)."""
    kept = [i for i in range(len(shape)) if i not in axes]
    for k in np.ndindex(*[shape[i] for i in kept]):
        members = []
        for r in np.ndindex(*[shape[i] for i in axes]):
            idx = [0] * len(shape)
            for i, v in zip(kept, k, strict=True):
                idx[i] = v
            for i, v in zip(axes, r, strict=True):
                idx[i] = v
            members.append(tuple(idx))
        yield members


def reduce(
    x: ObjArray, axes: tuple[int, ...], keepdims: bool, fn: Callable[[list[Any]], Any]
) -> ObjArray:
    """fn of each reduced group, laid out as NumPy lays out a reduction."""
    out = [fn([x[i] for i in g]) for g in groups(x.shape, axes)]
    if keepdims:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return obj_array(out, shape)


def first_max_mask(x: ObjArray, axes: tuple[int, ...], one: Any, zero: Any) -> ObjArray:
    """`one` at the first (row-major) maximum of each group, `zero` elsewhere."""
    out = np.full(x.shape, zero, dtype=object)
    for g in groups(x.shape, axes):
        if g:
            best = g[0]
            for i in g[1:]:
                if x[i] > x[best]:
                    best = i
            out[best] = one
    return out


def slices(spec: tuple[tuple[int, int, int], ...]) -> tuple[Any, ...]:
    """The index of a slicing spec; the trailing Ellipsis keeps 0-d results arrays (x[()] on
    a 0-d object array would return the element, and out[()] = a would store the array)."""
    return tuple(slice(a, b, k) for a, b, k in spec) + (Ellipsis,)


def matmul(a: ObjArray, b: ObjArray, zero: Any) -> ObjArray:
    """Batched matrix product by explicit sums (batch dims broadcast)."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    aa = np.broadcast_to(a, batch + (n, k))
    bb = np.broadcast_to(b, batch + (k, m))
    out = np.empty(batch + (n, m), dtype=object)
    for idx in np.ndindex(*batch, n, m):
        *bi, i, j = idx
        acc = zero
        for t in range(k):
            acc = acc + aa[(*bi, i, t)] * bb[(*bi, t, j)]
        out[idx] = acc
    return out


# -- exact rational semantics ------------------------------------------------------------
RATIONAL_OPS = frozenset(
    {
        "add",
        "sub",
        "mul",
        "div",
        "neg",
        "abs",
        "square",
        "relu",
        "leaky_relu",
        "maximum",
        "minimum",
        "step",
        "greater",
        "where",
        "sum",
        "mean",
        "max",
        "argmax_mask",
        "matmul",
        "transpose",
        "reshape",
        "broadcast_to",
        "concat",
        "slice",
        "unslice",
        "one_hot",
    }
)


def exact_reference(tag: str, xs: tuple[ObjArray, ...], attrs: Attrs) -> ObjArray:
    """The exact result of rational op `tag` on Fraction operands."""
    zero, one = Q(0), Q(1)
    x = xs[0]
    if tag in _SCALAR:
        return elementwise(_SCALAR[tag], *xs)
    if tag == "leaky_relu":
        slope = Q(attrs["negative_slope"])  # the field converts the attribute exactly
        return elementwise(lambda v: v if v > 0 else slope * v, x)
    if tag == "sum":
        return reduce(x, attrs["axes"], attrs["keepdims"], lambda g: sum(g, zero))
    if tag == "mean":
        return reduce(x, attrs["axes"], attrs["keepdims"], lambda g: sum(g, zero) / len(g))
    if tag == "max":
        return reduce(x, attrs["axes"], attrs["keepdims"], max)
    if tag == "argmax_mask":
        return first_max_mask(x, attrs["axes"], one, zero)
    if tag == "matmul":
        return matmul(xs[0], xs[1], zero)
    return structural(tag, xs, attrs, zero, one)


_SCALAR: dict[str, Callable[..., Any]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "neg": lambda a: -a,
    "abs": lambda a: a if a >= 0 else -a,
    "square": lambda a: a * a,
    "relu": lambda a: a if a > 0 else Q(0),
    "maximum": lambda a, b: a if a >= b else b,
    "minimum": lambda a, b: a if a <= b else b,
    "step": lambda a: Q(1) if a > 0 else Q(0),
    "greater": lambda a, b: Q(1) if a > b else Q(0),
    "where": lambda c, a, b: a if c != 0 else b,
}


def structural(tag: str, xs: tuple[ObjArray, ...], attrs: Attrs, zero: Any, one: Any) -> ObjArray:
    """Ops that only move elements (the same for every number type)."""
    x = xs[0]
    if tag == "transpose":
        return np.transpose(x, attrs["axes"])
    if tag == "reshape":
        return np.reshape(x, attrs["shape"])
    if tag == "broadcast_to":
        return np.broadcast_to(x, attrs["shape"])
    if tag == "concat":
        return np.concatenate(xs, axis=attrs["axis"])
    if tag == "slice":
        return np.asarray(x[slices(attrs["spec"])])
    if tag == "unslice":
        out = np.full(attrs["shape"], zero, dtype=object)
        out[slices(attrs["spec"])] = x
        return out
    if tag == "one_hot":
        nc = attrs["num_classes"]
        rows = [[one if int(v) == c else zero for c in range(nc)] for v in x.reshape(-1)]
        return obj_array([v for r in rows for v in r], tuple(x.shape) + (nc,))
    raise KeyError(f"no exact reference for {tag!r}")


# -- real semantics of the transcendental ops -------------------------------------------
TRANSCENDENTAL_OPS = frozenset(
    {
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
        "softmax",
        "log_softmax",
    }
)


def mp_value(v: Any) -> Any:
    """A Fraction or float as an mpf at the current mpmath precision."""
    q = Q(v)
    return mpmath.mpf(q.numerator) / q.denominator


_MP_UNARY: dict[str, Callable[[Any], Any]] = {
    "sqrt": lambda t: mpmath.sqrt(t),
    "exp": lambda t: mpmath.exp(t),
    "log": lambda t: mpmath.log(t),
    "log1p": lambda t: mpmath.log1p(t),
    "expm1": lambda t: mpmath.expm1(t),
    "tanh": lambda t: mpmath.tanh(t),
    "sigmoid": lambda t: 1 / (1 + mpmath.exp(-t)),
    "softplus": lambda t: mpmath.log1p(mpmath.exp(t)),
    "erf": lambda t: mpmath.erf(t),
    "gelu": lambda t: t * mpmath.erfc(-t / mpmath.sqrt(2)) / 2,
    "silu": lambda t: t / (1 + mpmath.exp(-t)),
    "sin": lambda t: mpmath.sin(t),
    "cos": lambda t: mpmath.cos(t),
}


def mp_reference(tag: str, xs: tuple[ObjArray, ...], attrs: Attrs, prec: int) -> ObjArray:
    """The real result of transcendental op `tag` as mpf values at `prec` bits."""
    with mpmath.mp.workprec(prec):
        x = elementwise(mp_value, xs[0])
        if tag in _MP_UNARY:
            return elementwise(_MP_UNARY[tag], x)
        out = np.empty(x.shape, dtype=object)
        for g in groups(x.shape, (attrs["axis"],)):
            # Shifted by the max, so that trivially rational results (a one-element axis)
            # come out exact rather than within 2^-prec.
            top = max(x[i] for i in g)
            total = mpmath.fsum(mpmath.exp(x[i] - top) for i in g)
            for i in g:
                t = x[i] - top
                out[i] = mpmath.exp(t) / total if tag == "softmax" else t - mpmath.log(total)
        return out


def to_fraction_or_inf(raw: Any) -> Fraction | float:
    """The exact value of an mpf (or its raw `_mpf_` tuple); ±inf as a float."""
    raw = getattr(raw, "_mpf_", raw)
    if raw == libmp.finf:
        return math.inf
    if raw == libmp.fninf:
        return -math.inf
    if raw == libmp.fnan:
        raise ValueError("NaN endpoint")
    sign, man, exp, _ = raw
    if not man:
        return Q(0)
    value = Q(int(man)) * Q(2) ** int(exp)
    return -value if sign else value


def endpoints(x: Any) -> tuple[Fraction | float, Fraction | float]:
    """The exact lower and upper end of an mpmath interval."""
    lo, hi = x._mpi_
    return to_fraction_or_inf(lo), to_fraction_or_inf(hi)


# -- the same operations in NumPy (float64) ----------------------------------------------
def _vectorized(fn: Callable[[float], float]) -> Callable[[np.ndarray[Any, Any]], Any]:
    return np.vectorize(fn, otypes=[np.float64])


def _softmax(x: np.ndarray[Any, Any], axis: int) -> np.ndarray[Any, Any]:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return np.asarray(e / np.sum(e, axis=axis, keepdims=True))


NUMPY: dict[str, Callable[[tuple[np.ndarray[Any, Any], ...], Attrs], Any]] = {
    "add": lambda xs, at: np.add(*xs),
    "sub": lambda xs, at: np.subtract(*xs),
    "mul": lambda xs, at: np.multiply(*xs),
    "div": lambda xs, at: np.divide(*xs),
    "maximum": lambda xs, at: np.maximum(*xs),
    "minimum": lambda xs, at: np.minimum(*xs),
    "greater": lambda xs, at: np.greater(*xs).astype(np.float64),
    "where": lambda xs, at: np.where(xs[0] != 0, xs[1], xs[2]),
    "neg": lambda xs, at: np.negative(xs[0]),
    "abs": lambda xs, at: np.abs(xs[0]),
    "square": lambda xs, at: np.square(xs[0]),
    "sqrt": lambda xs, at: np.sqrt(xs[0]),
    "exp": lambda xs, at: np.exp(xs[0]),
    "log": lambda xs, at: np.log(xs[0]),
    "log1p": lambda xs, at: np.log1p(xs[0]),
    "expm1": lambda xs, at: np.expm1(xs[0]),
    "tanh": lambda xs, at: np.tanh(xs[0]),
    "sigmoid": lambda xs, at: 1 / (1 + np.exp(-xs[0])),
    "softplus": lambda xs, at: np.logaddexp(0, xs[0]),
    "erf": lambda xs, at: _vectorized(math.erf)(xs[0]),
    "gelu": lambda xs, at: xs[0] * _vectorized(math.erfc)(-xs[0] / math.sqrt(2)) / 2,
    "silu": lambda xs, at: xs[0] / (1 + np.exp(-xs[0])),
    "sin": lambda xs, at: np.sin(xs[0]),
    "cos": lambda xs, at: np.cos(xs[0]),
    "relu": lambda xs, at: np.maximum(xs[0], 0),
    "leaky_relu": lambda xs, at: np.where(xs[0] > 0, xs[0], float(at["negative_slope"]) * xs[0]),
    "step": lambda xs, at: (xs[0] > 0).astype(np.float64),
    "sum": lambda xs, at: np.sum(xs[0], axis=at["axes"], keepdims=at["keepdims"]),
    "mean": lambda xs, at: np.mean(xs[0], axis=at["axes"], keepdims=at["keepdims"]),
    "max": lambda xs, at: np.max(xs[0], axis=at["axes"], keepdims=at["keepdims"]),
    "argmax_mask": lambda xs, at: first_max_mask(xs[0], at["axes"], 1.0, 0.0),
    "softmax": lambda xs, at: _softmax(xs[0], at["axis"]),
    "log_softmax": lambda xs, at: np.log(_softmax(xs[0], at["axis"])),
    "matmul": lambda xs, at: np.matmul(*xs),
    "transpose": lambda xs, at: np.transpose(xs[0], at["axes"]),
    "reshape": lambda xs, at: np.reshape(xs[0], at["shape"]),
    "broadcast_to": lambda xs, at: np.broadcast_to(xs[0], at["shape"]),
    "concat": lambda xs, at: np.concatenate(xs, axis=at["axis"]),
    "slice": lambda xs, at: xs[0][slices(at["spec"])],
    "unslice": lambda xs, at: structural("unslice", xs, at, 0.0, 1.0),
    "one_hot": lambda xs, at: np.eye(at["num_classes"])[xs[0].astype(np.int64)],
}


def numpy_reference(tag: str, xs: tuple[np.ndarray[Any, Any], ...], attrs: Attrs) -> Any:
    """Op `tag` computed with NumPy on float64 operands."""
    with np.errstate(all="ignore"):
        return np.asarray(NUMPY[tag](xs, attrs))
