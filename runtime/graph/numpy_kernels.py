"""How each op is written as NumPy calls with preallocated outputs, for `float`/`float32`.

Every emitter reproduces the exact NumPy operations of the field primitive in
`spec/fields/native.py` (same ufuncs, same operand order, same Python scalars), only
writing into buffers with `out=`; elementwise IEEE operations are correctly rounded
and layout-independent, and the buffers are given the very memory layout eager produced
(the executor learns it from a reference run), so reductions, matmuls and vectorised
transcendentals take the same code paths and give the same bits. Composite ops
(sigmoid, softplus, softmax, ...) use scratch buffers whose layouts are likewise
learned by running the same steps once on example inputs.

Emitters return source lines; every non-identifier value they use (axes, shapes,
constants) goes through `ctx.const`, so the generated source holds only names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from ...spec.fields import NativeFloatField
from ...spec.ops import OPS
from ...spec.shapes import size_of
from .ir import Node

__all__ = [
    "EmitContext",
    "BUFFERED",
    "VIEWS",
    "IN_PLACE",
    "one_hot_into",
    "first_max_mask_into",
    "FALLBACK",
]

NP = Any  # a NumPy array or scalar


@dataclass
class EmitContext:
    """What an emitter sees of one node: operand names and example values, the output
    buffer's name, and ways to register scratch buffers and constants."""

    node: Node
    field: NativeFloatField
    args: list[str]
    probes: list[NP]
    var: str
    out: str
    namespace: dict[str, Any]
    attrs: dict[str, Any] = dc_field(default_factory=dict)
    _count: list[int] = dc_field(default_factory=lambda: [0])

    def const(self, value: Any, hint: str = "k") -> str:
        """A global name bound to `value` in the generated code."""
        self._count[0] += 1
        name = f"{hint}{self.node.id}_{self._count[0]}"
        self.namespace[name] = value
        return name

    def scratch(self, template: NP, hint: str = "s") -> str:
        """A private scratch buffer with `template`'s shape, dtype and memory layout."""
        return self.const(np.empty_like(np.asarray(template)), hint)

    def same_layout(self, a: NP, b: NP) -> bool:
        a, b = np.asarray(a), np.asarray(b)
        return bool(a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides)


Emitter = Callable[[EmitContext], list[str]]

# -- elementwise -----------------------------------------------------------------
_UNARY = {
    "neg": "negative", "abs": "abs", "sqrt": "sqrt", "exp": "exp", "log": "log",
    "log1p": "log1p", "expm1": "expm1", "tanh": "tanh", "sin": "sin", "cos": "cos",
}
_BINARY = {
    "add": "add", "sub": "subtract", "mul": "multiply", "div": "divide",
    "maximum": "maximum", "minimum": "minimum",
}


def _unary(fn: str) -> Emitter:
    return lambda c: [f"{c.var} = np.{fn}({c.args[0]}, out={c.out})"]


def _binary(fn: str) -> Emitter:
    return lambda c: [f"{c.var} = np.{fn}({c.args[0]}, {c.args[1]}, out={c.out})"]


def _square(c: EmitContext) -> list[str]:
    return [f"{c.var} = np.multiply({c.args[0]}, {c.args[0]}, out={c.out})"]


def _relu(c: EmitContext) -> list[str]:
    zero = c.const(c.field.constant(0, like=c.probes[0]))  # as native.relu: maximum(a, 0)
    return [f"{c.var} = np.maximum({c.args[0]}, {zero}, out={c.out})"]


def _step(c: EmitContext) -> list[str]:
    # native: astype(a > 0, dtype); the comparison's 0/1 written straight into `out`.
    return [f"{c.var} = np.greater({c.args[0]}, 0, out={c.out})"]


def _greater(c: EmitContext) -> list[str]:
    return [f"{c.var} = np.greater({c.args[0]}, {c.args[1]}, out={c.out})"]


def _where(c: EmitContext) -> list[str]:
    # native: where(cond != 0, a, b); copyto moves the same values without arithmetic.
    cond, a, b = c.args
    mask = c.scratch(np.not_equal(c.probes[0], 0), "m")
    return [
        f"np.not_equal({cond}, 0, out={mask})",
        f"np.copyto({c.out}, {b})",
        f"np.copyto({c.out}, {a}, where={mask})",
        f"{c.var} = {c.out}",
    ]


def _leaky_relu(c: EmitContext) -> list[str]:
    # native: select(step(a), a, a * slope), i.e. where(a > 0, a, a * slope).
    (a,) = c.args
    slope = c.const(c.field.constant(c.attrs["negative_slope"], like=c.probes[0]))
    mask = c.scratch(np.greater(c.probes[0], 0), "m")
    return [
        f"np.multiply({a}, {slope}, out={c.out})",
        f"np.greater({a}, 0, out={mask})",
        f"np.copyto({c.out}, {a}, where={mask})",
        f"{c.var} = {c.out}",
    ]


def _sigmoid_lines(c: EmitContext, a: str, pa: NP, out: str) -> list[str]:
    # native: e = exp(-|a|); where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).
    e_t = np.exp(-np.abs(pa))
    e = c.scratch(e_t, "e")
    d = c.scratch(1.0 + e_t, "d")
    neg = c.scratch(np.greater_equal(pa, 0), "m")
    return [
        f"np.abs({a}, out={e})",
        f"np.negative({e}, out={e})",
        f"np.exp({e}, out={e})",
        f"np.add(1.0, {e}, out={d})",
        f"np.divide(1.0, {d}, out={out})",
        f"np.divide({e}, {d}, out={e})",
        f"np.greater_equal({a}, 0, out={neg})",
        f"np.logical_not({neg}, out={neg})",  # not (a >= 0): NaNs take the e / (1 + e) arm
        f"np.copyto({out}, {e}, where={neg})",
    ]


def _sigmoid(c: EmitContext) -> list[str]:
    return [*_sigmoid_lines(c, c.args[0], c.probes[0], c.out), f"{c.var} = {c.out}"]


def _silu(c: EmitContext) -> list[str]:
    # spec: mul(a, sigmoid(a)).
    a = c.args[0]
    return [*_sigmoid_lines(c, a, c.probes[0], c.out),
            f"{c.var} = np.multiply({a}, {c.out}, out={c.out})"]


def _softplus(c: EmitContext) -> list[str]:
    # native: maximum(a, zeros_like(a)) + log1p(exp(-|a|)).
    (a,), pa = c.args, c.probes[0]
    zeros = c.const(np.zeros_like(pa), "z")
    t = c.scratch(np.log1p(np.exp(-np.abs(pa))), "t")
    return [
        f"np.maximum({a}, {zeros}, out={c.out})",
        f"np.abs({a}, out={t})",
        f"np.negative({t}, out={t})",
        f"np.exp({t}, out={t})",
        f"np.log1p({t}, out={t})",
        f"{c.var} = np.add({c.out}, {t}, out={c.out})",
    ]


# -- reductions --------------------------------------------------------------------
# np.sum / np.max are thin Python wrappers over these ufunc reductions (same reduction,
# same order); calling the reductions directly saves the wrapper's microsecond.
_REDUCTIONS = {"sum": "np.add.reduce", "max": "np.maximum.reduce"}


def _reduce(fn: str) -> Emitter:
    def emit(c: EmitContext) -> list[str]:
        axes, keep = c.const(tuple(c.attrs["axes"]), "ax"), bool(c.attrs["keepdims"])
        red = _REDUCTIONS[fn]
        return [f"{c.var} = {red}({c.args[0]}, axis={axes}, keepdims={keep}, out={c.out})"]

    return emit


def _mean(c: EmitContext) -> list[str]:
    # spec: div(sum(a, axes, keepdims), constant(count)).
    axes, keep = tuple(c.attrs["axes"]), bool(c.attrs["keepdims"])
    count = size_of(tuple(c.probes[0].shape[i] for i in axes))
    n = c.const(c.field.constant(count, like=c.probes[0]), "n")
    ax = c.const(axes, "ax")
    return [
        f"np.add.reduce({c.args[0]}, axis={ax}, keepdims={keep}, out={c.out})",
        f"{c.var} = np.divide({c.out}, {n}, out={c.out})",
    ]


def _softmax(c: EmitContext) -> list[str]:
    # spec: e = exp(sub(a, max(a, ax, True))); div(e, sum(e, ax, True)).
    (a,), pa, axis = c.args, c.probes[0], (c.attrs["axis"],)
    m_t = np.max(pa, axis=axis, keepdims=True)
    e_t = np.exp(np.subtract(pa, m_t))
    out_t = np.divide(e_t, np.sum(e_t, axis=axis, keepdims=True))
    ax, m = c.const(axis, "ax"), c.scratch(m_t, "m")
    s = c.scratch(np.sum(e_t, axis=axis, keepdims=True), "s")
    e = c.out if c.same_layout(e_t, out_t) else c.scratch(e_t, "e")
    return [
        f"np.maximum.reduce({a}, axis={ax}, keepdims=True, out={m})",
        f"np.subtract({a}, {m}, out={e})",
        f"np.exp({e}, out={e})",
        f"np.add.reduce({e}, axis={ax}, keepdims=True, out={s})",
        f"{c.var} = np.divide({e}, {s}, out={c.out})",
    ]


def _log_softmax(c: EmitContext) -> list[str]:
    # spec: sh = sub(a, max(a, ax, True)); sub(sh, log(sum(exp(sh), ax, True))).
    (a,), pa, axis = c.args, c.probes[0], (c.attrs["axis"],)
    m_t = np.max(pa, axis=axis, keepdims=True)
    sh_t = np.subtract(pa, m_t)
    t_t = np.exp(sh_t)
    s_t = np.sum(t_t, axis=axis, keepdims=True)
    out_t = np.subtract(sh_t, np.log(s_t))
    ax, m = c.const(axis, "ax"), c.scratch(m_t, "m")
    t, s = c.scratch(t_t, "t"), c.scratch(s_t, "s")
    sh = c.out if c.same_layout(sh_t, out_t) else c.scratch(sh_t, "h")
    return [
        f"np.maximum.reduce({a}, axis={ax}, keepdims=True, out={m})",
        f"np.subtract({a}, {m}, out={sh})",
        f"np.exp({sh}, out={t})",
        f"np.add.reduce({t}, axis={ax}, keepdims=True, out={s})",
        f"np.log({s}, out={s})",
        f"{c.var} = np.subtract({sh}, {s}, out={c.out})",
    ]


# -- linear algebra and structure ----------------------------------------------------
def _matmul(c: EmitContext) -> list[str]:
    return [f"{c.var} = np.matmul({c.args[0]}, {c.args[1]}, out={c.out})"]


def _concat(c: EmitContext) -> list[str]:
    axis = int(c.attrs["axis"])
    return [f"{c.var} = np.concatenate(({', '.join(c.args)},), axis={axis}, out={c.out})"]


def _unslice(c: EmitContext) -> list[str]:
    # native: zeros(shape) with the operand written into the region.
    region = c.const(tuple(slice(s, e, k) for s, e, k in c.attrs["spec"]), "sl")
    return [f"{c.out}.fill(0)", f"{c.out}[{region}] = {c.args[0]}", f"{c.var} = {c.out}"]


def one_hot_into(labels: NP, num_classes: int, arange: NP, out: NP, field: Any) -> NP:
    """One-hot rows of integer-valued `labels` written into `out` (0/1 values, exactly as
    native `one_hot`); any label that is not an integer in range is reported by the
    field's own `one_hot`, which raises the same error eager raises."""
    host = np.asarray(labels)
    ok = np.isfinite(host) & (host == np.floor(host)) & (host >= 0) & (host < num_classes)
    if not ok.all():
        field.one_hot(labels, num_classes)  # raises, naming the offending label
        raise AssertionError("one_hot: the field accepted labels the fast path rejected")
    return np.equal(host.astype(np.int64)[..., None], arange, out=out)


def _one_hot(c: EmitContext) -> list[str]:
    n = int(c.attrs["num_classes"])
    arange = c.const(np.arange(n), "r")
    fn = c.const(one_hot_into, "onehot")
    fld = c.const(c.field, "fld")
    return [f"{c.var} = {fn}({c.args[0]}, {n}, {arange}, {c.out}, {fld})"]


def _max_or_fallback(c: EmitContext) -> list[str]:
    if size_of(tuple(c.probes[0].shape[i] for i in c.attrs["axes"])) == 0:
        raise _Fallback
    return _reduce("max")(c)


# Largest group (product of the reduced dims) for which `argmax_mask` runs as a loop over
# the group's positions; longer groups take the field's own primitive (np.argmax per row
# is then cheap next to the row, and the loop would be long).
_MASK_LOOP_MAX = 64


def first_max_mask_into(a: NP, axes: tuple[int, ...], positions: tuple[tuple[slice, ...], ...],
                        m: NP, hit: NP, nan: NP, seen: NP, out: NP) -> NP:
    """0/1 mask of the first row-major maximum of each group written into `out`, the same
    mask the field's `argmax_mask` gives (np.argmax: the first maximum, or the first NaN
    when the group holds one; +0 and -0 tie), by one vectorised pass per group position.

    `positions` indexes each group position in row-major order (keepdims-shaped slices);
    `m`, `hit`, `nan` and `seen` are scratch buffers of the reduced (keepdims) shape."""
    np.maximum.reduce(a, axis=axes, keepdims=True, out=m)  # NaN when the group has one
    seen.fill(False)
    for pos in positions:
        x = a[pos]
        # a winner: equal to the max, or a NaN (then the max is NaN and nothing equals it)
        np.equal(x, m, out=hit)
        np.logical_or(hit, np.not_equal(x, x, out=nan), out=hit)
        np.logical_and(hit, np.logical_not(seen), out=out[pos])
        np.logical_or(seen, hit, out=seen)
    return out


def _argmax_mask(c: EmitContext) -> list[str]:
    # native: first_max_mask (np.argmax over the folded groups), cast to the field dtype.
    pa, axes = np.asarray(c.probes[0]), tuple(c.attrs["axes"])
    group = tuple(pa.shape[i] for i in axes)
    if pa.size == 0 or not 0 < size_of(group) <= _MASK_LOOP_MAX:
        raise _Fallback
    positions = []
    for index in np.ndindex(*group):
        pos: list[slice] = [slice(None)] * pa.ndim
        for ax, i in zip(axes, index, strict=True):
            pos[ax] = slice(i, i + 1)
        positions.append(tuple(pos))
    reduced = np.max(pa, axis=axes, keepdims=True)
    m = c.scratch(reduced, "m")
    hit, nan, seen = (c.scratch(reduced != 0, h) for h in ("h", "n", "e"))
    fn, ax = c.const(first_max_mask_into, "fmm"), c.const(axes, "ax")
    pos_name = c.const(tuple(positions), "pos")
    return [f"{c.var} = {fn}({c.args[0]}, {ax}, {pos_name}, {m}, {hit}, {nan}, {seen}, "
            f"{c.out})"]


class _Fallback(Exception):
    """Raised by an emitter to have the node evaluated by its forward rule instead."""


BUFFERED: dict[str, Emitter] = {
    **{tag: _unary(fn) for tag, fn in _UNARY.items()},
    **{tag: _binary(fn) for tag, fn in _BINARY.items()},
    "square": _square, "relu": _relu, "step": _step, "greater": _greater, "where": _where,
    "leaky_relu": _leaky_relu, "sigmoid": _sigmoid, "silu": _silu, "softplus": _softplus,
    "sum": _reduce("sum"), "max": _max_or_fallback, "mean": _mean,
    "softmax": _softmax, "log_softmax": _log_softmax,
    "matmul": _matmul, "concat": _concat, "unslice": _unslice, "one_hot": _one_hot,
    "argmax_mask": _argmax_mask,
}
"""Ops computed into a preallocated output buffer."""

# Ops whose single ufunc may write over its first operand's buffer when that operand dies
# here (same shape, dtype and layout): the elementwise chain then runs in one buffer.
IN_PLACE = frozenset({*_UNARY, *_BINARY, "square", "relu"})


def _view(template: str) -> Emitter:
    def emit(c: EmitContext) -> list[str]:
        key = {"transpose": "axes", "reshape": "shape", "broadcast_to": "shape"}.get(c.node.op)
        arg = c.const(tuple(c.attrs[key]), "sh") if key else c.const(
            tuple(slice(s, e, k) for s, e, k in c.attrs["spec"]), "sl"
        )
        return [f"{c.var} = " + template.format(a=c.args[0], k=arg)]

    return emit


VIEWS: dict[str, Emitter] = {
    # the same calls as ArrayField's structural primitives: views where NumPy makes them
    "transpose": _view("np.permute_dims({a}, {k})"),
    "reshape": _view("np.reshape({a}, {k})"),
    "broadcast_to": _view("np.broadcast_to({a}, {k})"),
    "slice": _view("{a}[{k}]"),
}
"""Ops that return views of their operand (no buffer of their own)."""

FALLBACK = _Fallback
assert set(BUFFERED) | set(VIEWS) <= set(OPS), "emitters for unknown ops"
