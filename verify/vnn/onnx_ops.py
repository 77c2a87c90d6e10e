"""ONNX operators as TorchLean ops: one converter per ONNX op type.

Each converter reads one ONNX node (its inputs already converted) and returns its outputs,
built with the typed functional API (`spec.functional`) on traced values, so every ONNX
op lands on the op table and every analysis works on the result. Structural ops on
constants (shape arithmetic, Gather of a shape, Reshape of a weight) fold in NumPy,
exactly: no floating-point arithmetic is done at import time.

Semantics follow the ONNX operator specification (onnx.ai/onnx/operators), opsets 7-20.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec import functional as F
from ...spec.errors import DataFormatError, ShapeError
from ...spec.shapes import size_of
from ...spec.value import Value
from .onnx_values import Const, OnnxUnsupported

__all__ = ["CONVERTERS", "Scope", "NodeCtx", "SUPPORTED_OPS"]

Item = Value | Const
# Limits on what attributes alone can make the importer build (a file is untrusted): the
# elements of one pooling window (each becomes a slice node) and of a ConstantOfShape.
MAX_WINDOW = 2**14
MAX_FILL = 2**24
INT64_MAX = 2**63 - 1
# ONNX TensorProto data types this importer knows by number (onnx.TensorProto.DataType).
FLOAT_TYPES = {1: np.float32, 11: np.float64, 10: np.float16}
INT_TYPES = {7: np.int64, 6: np.int32, 9: np.bool_, 2: np.uint8, 3: np.int8, 5: np.int16}


class Scope:
    """The ONNX values converted so far, by name, and how constants become graph values."""

    def __init__(self, anchor: Value, make_param: Callable[[str, np.ndarray[Any, Any]], Value],
                 path: str) -> None:
        self.anchor = anchor  # a traced value: constants are lifted into its graph
        self.make_param = make_param
        self.path = path
        self.env: dict[str, Item] = {}
        # Booleans are float tensors of the field: comparison results hold 0/1 (`zero_one`);
        # a float cast to bool keeps its values and means "nonzero" (`nonzero`).
        self.zero_one: set[str] = set()
        self.nonzero: set[str] = set()
        self._lifted: dict[str, Value] = {}

    def get(self, name: str, where: str) -> Item:
        if name not in self.env:
            raise DataFormatError(where, f"input {name!r} is neither a graph input, an "
                                  "initializer nor the output of an earlier node")
        return self.env[name]

    def tensor(self, name: str, where: str) -> Value:
        """`name` as a traced value: constants used as data become parameters (or, for 0-d
        floats of Constant nodes, field constants), once."""
        item = self.get(name, where)
        if not isinstance(item, Const):
            return item
        if name in self._lifted:
            return self._lifted[name]
        if not item.is_float:
            raise OnnxUnsupported(where, "data", f"the {item.array.dtype} tensor {name!r} is "
                                  "used as data; only float tensors are")
        if item.scalar:
            value = float(item.array)
            number: int | float = int(value) if value.is_integer() and abs(value) < 2**53 \
                else value
            lifted = F.constant(self.anchor, number)
        else:
            lifted = self.make_param(name, item.array)
        self._lifted[name] = lifted
        return lifted


@dataclass
class NodeCtx:
    """One ONNX node being converted: its attributes, inputs, opset and error location."""

    scope: Scope
    op_type: str
    inputs: Sequence[str]
    outputs: Sequence[str]
    attrs: dict[str, Any]
    opset: int
    where: str

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def value(self, i: int) -> Item:
        if not self.has(i):
            raise DataFormatError(self.where, f"{self.op_type} needs input {i}, it is missing")
        return self.scope.get(self.inputs[i], self.where)

    def data(self, i: int) -> Item:
        """Input i for a structural op: integer constants (shapes, indices) fold in NumPy;
        float constants become graph values, so weights stay named as in the file."""
        v = self.value(i)
        return self.tensor(i) if isinstance(v, Const) and v.is_float else v

    def tensor(self, i: int) -> Value:
        self.value(i)
        return self.scope.tensor(self.inputs[i], self.where)

    def const(self, i: int, what: str) -> Const:
        v = self.value(i)
        if not isinstance(v, Const):
            raise OnnxUnsupported(self.where, self.op_type, f"{what} (input {i}, "
                                  f"{self.inputs[i]!r}) must be a constant known at import "
                                  "time, it is computed from the model input")
        return v

    def ints(self, i: int, what: str) -> list[int]:
        return self.const(i, what).ints(self.where, what)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def attr_ints(self, name: str, default: Sequence[int] | None = None) -> list[int] | None:
        v = self.attrs.get(name)
        if v is None:
            return None if default is None else list(default)
        return [int(x) for x in v]

    def text(self, name: str, default: str) -> str:
        v = self.attrs.get(name, default)
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    def fail(self, reason: str) -> OnnxUnsupported:
        return OnnxUnsupported(self.where, self.op_type, reason)

    def bad(self, reason: str) -> DataFormatError:
        return DataFormatError(self.where, reason)


Converter = Callable[[NodeCtx], Sequence[Item]]


@dataclass(frozen=True)
class OpSpec:
    convert: Converter
    attrs: frozenset[str]


CONVERTERS: dict[str, OpSpec] = {}


def _op(names: str, attrs: str = "") -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for name in names.split():
            CONVERTERS[name] = OpSpec(fn, frozenset(attrs.split()))
        return fn

    return register


def _axis(n: NodeCtx, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise n.bad(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


# -- elementwise ---------------------------------------------------------------------
def _int_div(a: Any, b: Any) -> Any:
    q = np.abs(a) // np.abs(b)  # ONNX integer Div truncates toward zero (C semantics)
    return np.sign(a) * np.sign(b) * q


_BINARY: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Value, Value], Value]]] = {
    "Add": (np.add, F.add), "Sub": (np.subtract, F.sub), "Mul": (np.multiply, F.mul),
    "Div": (_int_div, F.div),
}


@_op("Add Sub Mul Div")
def _binary(n: NodeCtx) -> list[Item]:
    a, b = n.value(0), n.value(1)
    numpy_fn, fn = _BINARY[n.op_type]
    if isinstance(a, Const) and isinstance(b, Const) and not a.is_float and not b.is_float:
        return [Const(np.asarray(numpy_fn(a.array, b.array)))]  # shape arithmetic
    if n.op_type == "Mul" and n.inputs[0] == n.inputs[1]:
        return [F.square(n.tensor(0))]
    return [fn(n.tensor(0), n.tensor(1))]


_UNARY: dict[str, Callable[[Value], Value]] = {
    "Relu": F.relu, "Sigmoid": F.sigmoid, "Tanh": F.tanh, "Neg": F.neg, "Abs": F.abs,
    "Exp": F.exp, "Log": F.log, "Sqrt": F.sqrt, "Erf": F.erf, "Softplus": F.softplus,
    "Sin": F.sin, "Cos": F.cos,
}


@_op(" ".join(_UNARY))
def _unary(n: NodeCtx) -> list[Item]:
    return [_UNARY[n.op_type](n.tensor(0))]


@_op("LeakyRelu", "alpha")
def _leaky_relu(n: NodeCtx) -> list[Item]:
    # Float attributes are binary32 in ONNX; the default is the binary32 nearest 0.01.
    return [F.leaky_relu(n.tensor(0), float(n.attr("alpha", float(np.float32(0.01)))))]


@_op("Max Min")
def _max_min(n: NodeCtx) -> list[Item]:
    fn = F.maximum if n.op_type == "Max" else F.minimum
    y = n.tensor(0)
    for i in range(1, len(n.inputs)):
        y = fn(y, n.tensor(i))
    return [y]


@_op("Sum")
def _sum_op(n: NodeCtx) -> list[Item]:
    y = n.tensor(0)
    for i in range(1, len(n.inputs)):
        y = F.add(y, n.tensor(i))
    return [y]


@_op("Reciprocal")
def _reciprocal(n: NodeCtx) -> list[Item]:
    x = n.tensor(0)
    return [F.div(F.constant(x, 1), x)]


@_op("Clip", "min max")
def _clip(n: NodeCtx) -> list[Item]:
    y = n.tensor(0)
    if n.opset < 11:  # bounds as attributes; absent means unbounded
        lo, hi = n.attr("min"), n.attr("max")
        if lo is not None:
            y = F.maximum(y, F.constant(y, float(lo)))
        if hi is not None:
            y = F.minimum(y, F.constant(y, float(hi)))
        return [y]
    if n.attrs:
        raise n.fail("min and max are inputs from opset 11 on")
    if n.has(1):
        y = F.maximum(y, n.tensor(1))
    if n.has(2):
        y = F.minimum(y, n.tensor(2))
    return [y]


@_op("Pow")
def _pow(n: NodeCtx) -> list[Item]:
    e = n.const(1, "the exponent")
    if e.array.size != 1 or float(e.array.reshape(-1)[0]) not in (1.0, 2.0):
        raise n.fail("only the exponents 1 and 2 are supported")
    x = n.tensor(0)
    return [x if float(e.array.reshape(-1)[0]) == 1.0 else F.square(x)]


@_op("Greater")
def _greater(n: NodeCtx) -> list[Item]:
    b = n.value(1)
    if isinstance(b, Const) and b.scalar and float(b.array) == 0.0:
        y = F.step(n.tensor(0))
    else:
        y = F.greater(n.tensor(0), n.tensor(1))
    n.scope.zero_one.add(n.outputs[0])
    return [y]


@_op("Where")
def _where(n: NodeCtx) -> list[Item]:
    if n.inputs[0] not in n.scope.zero_one | n.scope.nonzero:
        raise n.fail("the condition must be a comparison (Greater) or a Cast to bool")
    return [F.where(n.tensor(0), n.tensor(1), n.tensor(2))]


def _softmax_axis(n: NodeCtx, x: Value) -> tuple[int, bool]:
    """(axis, coerce): before opset 13 the input is flattened to 2-D at `axis` (default 1)."""
    coerce = n.opset < 13
    return _axis(n, int(n.attr("axis", 1 if coerce else -1)), x.ndim), coerce


@_op("Softmax LogSoftmax", "axis")
def _softmax(n: NodeCtx) -> list[Item]:
    x = n.tensor(0)
    axis, coerce = _softmax_axis(n, x)
    fn = F.softmax if n.op_type == "Softmax" else F.log_softmax
    if not coerce or axis == x.ndim - 1:
        return [fn(x, axis)]
    flat = F.reshape(x, (size_of(x.shape[:axis]), size_of(x.shape[axis:])))
    return [F.reshape(fn(flat, 1), x.shape)]


# -- linear --------------------------------------------------------------------------
@_op("MatMul")
def _matmul(n: NodeCtx) -> list[Item]:
    return [F.matmul(n.tensor(0), n.tensor(1))]


@_op("Gemm", "alpha beta transA transB")
def _gemm(n: NodeCtx) -> list[Item]:
    a, b = n.tensor(0), n.tensor(1)
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"{n.where}: Gemm needs 2-D A and B, got {a.shape} and {b.shape}")
    if n.attr("transA", 0):
        a = F.transpose(a)
    if n.attr("transB", 0):
        b = F.transpose(b)
    y = F.matmul(a, b)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    if alpha != 1.0:
        y = F.mul(y, F.constant(y, alpha))
    if n.has(2) and beta != 0.0:
        c = n.tensor(2)
        if beta != 1.0:
            c = F.mul(c, F.constant(c, beta))
        if np.broadcast_shapes(c.shape, y.shape) != y.shape:
            raise ShapeError(f"{n.where}: C of shape {c.shape} does not broadcast to {y.shape}")
        y = F.add(y, c)
    return [y]


# -- structure (constants fold exactly in NumPy) ---------------------------------------
def _reshape(x: Item, shape: Sequence[int]) -> Item:
    if isinstance(x, Const):
        return Const(x.array.reshape(tuple(shape)), x.scalar and len(shape) == 0)
    return F.reshape(x, tuple(shape))


def _shape_of(x: Item) -> tuple[int, ...]:
    return tuple(x.array.shape) if isinstance(x, Const) else x.shape


@_op("Identity")
def _identity(n: NodeCtx) -> list[Item]:
    return [n.value(0)]


@_op("Dropout", "ratio is_test seed")
def _dropout(n: NodeCtx) -> list[Item]:
    if n.has(2) and any(n.ints(2, "training_mode")):
        raise n.fail("training_mode=true; only inference is supported")
    if len(n.outputs) > 1 and n.outputs[1]:
        raise n.fail("the mask output is not supported (inference Dropout is the identity)")
    return [n.value(0)]


@_op("Flatten", "axis")
def _flatten(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    shape = _shape_of(x)
    axis = int(n.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise n.bad(f"axis {axis} is out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return [_reshape(x, (size_of(shape[:axis]), size_of(shape[axis:])))]


@_op("Reshape", "allowzero")
def _reshape_op(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    shape = _shape_of(x)
    target = n.ints(1, "the target shape")
    allowzero = int(n.attr("allowzero", 0))
    dims = [shape[i] if d == 0 and not allowzero and i < len(shape) else d
            for i, d in enumerate(target)]
    if any(d < -1 for d in dims) or dims.count(-1) > 1:
        raise n.bad(f"target shape {target} is not a valid Reshape shape")
    if -1 in dims:
        known = size_of(tuple(d for d in dims if d != -1))
        if known == 0 or size_of(shape) % known:
            raise ShapeError(f"{n.where}: cannot reshape {shape} into {target}")
        dims[dims.index(-1)] = size_of(shape) // known
    if size_of(tuple(dims)) != size_of(shape):
        raise ShapeError(f"{n.where}: cannot reshape {shape} into {target}")
    return [_reshape(x, dims)]


@_op("Transpose", "perm")
def _transpose(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    rank = len(_shape_of(x))
    perm = n.attr_ints("perm", list(reversed(range(rank))))
    assert perm is not None
    if sorted(perm) != list(range(rank)):
        raise n.bad(f"perm {perm} is not a permutation of the {rank} axes")
    if isinstance(x, Const):
        return [Const(np.transpose(x.array, perm))]
    return [F.transpose(x, perm)]


def _axes_list(n: NodeCtx, input_from: int) -> list[int] | None:
    """`axes` as an attribute before opset `input_from`, as input 1 from it on."""
    if n.opset < input_from:
        return n.attr_ints("axes")
    if "axes" in n.attrs:
        raise n.fail(f"axes is an input from opset {input_from} on, not an attribute")
    return n.ints(1, "axes") if n.has(1) else None


@_op("Squeeze", "axes")
def _squeeze(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    shape = _shape_of(x)
    axes = _axes_list(n, 13)
    if axes is None:
        drop = {i for i, d in enumerate(shape) if d == 1}
    else:
        drop = {_axis(n, a, len(shape), "axes entry") for a in axes}
        if any(shape[a] != 1 for a in drop):
            raise ShapeError(f"{n.where}: cannot squeeze axes {axes} of shape {shape}")
    return [_reshape(x, [d for i, d in enumerate(shape) if i not in drop])]


@_op("Unsqueeze", "axes")
def _unsqueeze(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    shape = _shape_of(x)
    axes = _axes_list(n, 13)
    if not axes:
        raise n.bad("Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    new = {_axis(n, a, rank, "axes entry") for a in axes}
    if len(new) != len(axes):
        raise n.bad(f"repeated axes {axes}")
    rest = iter(shape)
    return [_reshape(x, [1 if i in new else next(rest) for i in range(rank)])]


@_op("Concat", "axis")
def _concat(n: NodeCtx) -> list[Item]:
    items = [n.data(i) for i in range(len(n.inputs))]
    if "axis" not in n.attrs:
        raise n.bad("Concat needs an axis attribute")
    rank = len(_shape_of(items[0]))
    axis = _axis(n, int(n.attr("axis")), rank)
    if all(isinstance(v, Const) for v in items):
        arrays = [v.array for v in items if isinstance(v, Const)]
        if any(a.ndim != rank for a in arrays):
            raise ShapeError(f"{n.where}: Concat of ranks {[a.ndim for a in arrays]}")
        return [Const(np.concatenate(arrays, axis=axis))]
    return [F.concat([n.tensor(i) for i in range(len(n.inputs))], axis)]


def _slice_spec(n: NodeCtx, shape: tuple[int, ...], starts: list[int], ends: list[int],
                axes: list[int] | None, steps: list[int] | None
                ) -> tuple[list[tuple[int, int, int]], list[int]]:
    """The ONNX slice as a forward slice per axis plus the axes to reverse afterwards
    (those with negative steps: the same elements, taken in ascending order)."""
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise n.bad(f"starts {starts}, ends {ends}, axes {axes}, steps {steps} differ in "
                    "length")
    spec = [(0, d, 1) for d in shape]
    flips: list[int] = []
    seen: set[int] = set()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        ax = _axis(n, axis, len(shape), "axes entry")
        if ax in seen:
            raise n.bad(f"axis {axis} is sliced twice")
        seen.add(ax)
        if step == 0:
            raise n.bad("a slice step is 0")
        if step < 0 and end == INT64_MAX:
            raise n.fail("an end of INT64_MAX with a negative step: the ONNX specification "
                         "clamps it (an empty slice), onnxruntime reads it as 'through the "
                         "start'")
        d = shape[ax]
        start, end = (start + d if start < 0 else start), (end + d if end < 0 else end)
        if step > 0:  # clamped to [0, d], as ONNX says
            lo, hi = min(max(start, 0), d), min(max(end, 0), d)
            spec[ax] = (lo, max(lo, hi), step)
            continue
        first, stop = min(max(start, 0), d - 1), min(max(end, -1), d - 1)  # [0, d-1], [-1, d-1]
        count = len(range(first, stop, step))
        if count == 0:
            spec[ax] = (0, 0, 1)
            continue
        lowest = first + (count - 1) * step
        spec[ax] = (lowest, first + 1, -step)
        if count > 1:
            flips.append(ax)
    return spec, flips


def _apply_slice(x: Item, spec: list[tuple[int, int, int]], flips: Sequence[int] = ()) -> Item:
    if all(s == (0, d, 1) for s, d in zip(spec, _shape_of(x), strict=True)) and not flips:
        return x
    if isinstance(x, Const):
        picked = x.array[tuple(slice(a, b, c) for a, b, c in spec)]
        return Const(np.flip(picked, axis=tuple(flips)) if flips else picked)
    y = x if all(s == (0, d, 1) for s, d in zip(spec, x.shape, strict=True)) else \
        F.slice_axes(x, spec)
    for ax in flips:  # reversed by unit slices (slices never step backwards)
        full = [(0, d, 1) for d in y.shape]
        y = F.concat([F.slice_axes(y, full[:ax] + [(i, i + 1, 1)] + full[ax + 1:])
                      for i in reversed(range(y.shape[ax]))], ax)
    return y


@_op("Slice", "starts ends axes")
def _slice(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    if n.opset < 10:
        starts, ends = n.attr_ints("starts"), n.attr_ints("ends")
        if starts is None or ends is None:
            raise n.bad("Slice needs starts and ends attributes")
        axes, steps = n.attr_ints("axes"), None
    else:
        if n.attrs:
            raise n.fail(f"attributes {sorted(n.attrs)} are inputs from opset 10 on")
        starts, ends = n.ints(1, "starts"), n.ints(2, "ends")
        axes = n.ints(3, "axes") if n.has(3) else None
        steps = n.ints(4, "steps") if n.has(4) else None
    spec, flips = _slice_spec(n, _shape_of(x), starts, ends, axes, steps)
    return [_apply_slice(x, spec, flips)]


@_op("Gather", "axis")
def _gather(n: NodeCtx) -> list[Item]:
    x = n.data(0)
    shape = _shape_of(x)
    axis = _axis(n, int(n.attr("axis", 0)), len(shape))
    idx = n.const(1, "the indices")
    d = shape[axis]
    raw = np.asarray(idx.ints(n.where, "indices"), dtype=np.int64).reshape(idx.array.shape)
    fixed = np.where(raw < 0, raw + d, raw)
    if np.any((fixed < 0) | (fixed >= d)):
        raise n.bad(f"indices {raw.reshape(-1).tolist()} out of range for axis {axis} of "
                    f"size {d}")
    if isinstance(x, Const):
        return [Const(np.take(x.array, fixed, axis=axis))]
    if fixed.size == 0:
        raise n.fail("an empty set of indices")
    full = [(0, s, 1) for s in shape]
    parts = [F.slice_axes(x, full[:axis] + [(i, i + 1, 1)] + full[axis + 1:]) if d > 1 else x
             for i in fixed.reshape(-1).tolist()]
    joined = parts[0] if len(parts) == 1 else F.concat(parts, axis)
    return [F.reshape(joined, shape[:axis] + fixed.shape + shape[axis + 1:])]


@_op("Shape", "start end")
def _shape(n: NodeCtx) -> list[Item]:
    dims = list(_shape_of(n.value(0)))
    start, end = int(n.attr("start", 0)), n.attr("end")
    picked = dims[start:] if end is None else dims[start:int(end)]
    return [Const(np.asarray(picked, dtype=np.int64))]


@_op("Constant", "value value_float value_floats value_int value_ints")
def _constant(n: NodeCtx) -> list[Item]:
    if len(n.attrs) != 1:
        raise n.bad(f"a Constant needs exactly one value attribute, got {sorted(n.attrs)}")
    name, value = next(iter(n.attrs.items()))
    if name == "value":
        array = value  # already a NumPy array (see onnx_import._attributes)
    elif name == "value_float":
        array = np.asarray(value, dtype=np.float32)
    elif name == "value_floats":
        array = np.asarray(list(value), dtype=np.float32)
    elif name == "value_int":
        array = np.asarray(value, dtype=np.int64)
    else:
        array = np.asarray(list(value), dtype=np.int64)
    return [Const(array, array.ndim == 0 and array.dtype.kind == "f")]


@_op("ConstantOfShape", "value")
def _constant_of_shape(n: NodeCtx) -> list[Item]:
    shape = n.ints(0, "the shape")
    if min(shape, default=0) < 0 or size_of(tuple(shape)) > MAX_FILL:
        raise n.bad(f"shape {shape} is negative or over {MAX_FILL} elements")
    fill = n.attr("value", np.zeros(1, dtype=np.float32))
    if fill.size != 1:
        raise n.bad("value must hold one element")
    return [Const(np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype))]


@_op("Cast", "to saturate")
def _cast(n: NodeCtx) -> list[Item]:
    to = int(n.attr("to", 0))
    x = n.value(0)
    dtype = FLOAT_TYPES.get(to) or INT_TYPES.get(to)
    if dtype is None:
        raise n.fail(f"casting to ONNX type {to}")
    if isinstance(x, Const):  # shape arithmetic, or a constant rounded as ONNX rounds it
        return [Const(x.array.astype(dtype), x.scalar and to in FLOAT_TYPES)]
    name = n.inputs[0]
    if name in n.scope.zero_one and to in (1, 9, 11):
        n.scope.zero_one.add(n.outputs[0])
        return [x]  # 0/1 values, as float or bool
    if to in (1, 11) and name not in n.scope.nonzero:
        return [x]  # a float tensor stays a tensor of the field
    if to == 9 and name not in n.scope.nonzero:
        n.scope.nonzero.add(n.outputs[0])
        return [x]  # `where` reads nonzero as true, as Cast to bool does
    raise n.fail(f"casting a computed tensor to ONNX type {to} (float and bool casts of "
                 "float tensors, and float casts of comparison results, are supported)")


@_op("Expand")
def _expand(n: NodeCtx) -> list[Item]:
    x = n.tensor(0)
    shape = n.ints(1, "the shape")
    try:
        out = np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        raise ShapeError(f"{n.where}: cannot expand {x.shape} to {shape}") from None
    return [F.broadcast_to(x, out)]


_REDUCE: dict[str, Callable[..., Value]] = {
    "ReduceSum": F.sum, "ReduceMean": F.mean, "ReduceMax": F.max}


@_op("ReduceSum ReduceMean ReduceMax", "axes keepdims noop_with_empty_axes")
def _reduce(n: NodeCtx) -> list[Item]:
    x = n.tensor(0)
    axes = _axes_list(n, 13 if n.op_type == "ReduceSum" else 18)
    keep = bool(n.attr("keepdims", 1))
    if not axes:
        if n.attr("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    return [_REDUCE[n.op_type](x, tuple(axes), keep)]


# -- convolution and pooling ---------------------------------------------------------
def _spatial(n: NodeCtx, name: str, k: int, default: int) -> list[int]:
    v = n.attr_ints(name, [default] * k)
    assert v is not None
    if len(v) != k or any(x < (1 if name != "pads" else 0) for x in v):
        raise n.bad(f"{name} {v} does not fit a {k}-D kernel")
    return v


def _pads(n: NodeCtx, sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
          dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis, from `pads` or `auto_pad`."""
    k = len(kernel)
    auto = n.text("auto_pad", "NOTSET")
    if auto == "NOTSET":
        pads = n.attr_ints("pads", [0] * (2 * k))
        assert pads is not None
        if len(pads) != 2 * k or min(pads) < 0:
            raise n.bad(f"pads {pads} do not fit a {k}-D kernel")
        return list(zip(pads[:k], pads[k:], strict=True))
    if "pads" in n.attrs:
        raise n.bad(f"auto_pad {auto} and explicit pads together")
    if auto == "VALID":
        return [(0, 0)] * k
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise n.fail(f"auto_pad {auto!r}")
    out = []
    for size, kk, s, d in zip(sizes, kernel, strides, dilations, strict=True):
        total = max((math.ceil(size / s) - 1) * s + (kk - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _as_2d(n: NodeCtx, x: Value, spatial: int) -> Value:
    if x.ndim != spatial + 2:
        raise ShapeError(f"{n.where}: {n.op_type} expects (N, C, {'H, W' if spatial == 2 else 'L'}"
                         f"), got input {x.shape}")
    return x if spatial == 2 else F.reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2]))


def _pair2(values: Sequence[int], one_d_value: int) -> tuple[int, int]:
    return (values[0], values[1]) if len(values) == 2 else (one_d_value, values[0])


@_op("Conv", "auto_pad dilations group kernel_shape pads strides")
def _conv(n: NodeCtx) -> list[Item]:
    x, w = n.tensor(0), n.tensor(1)
    b = n.tensor(2) if n.has(2) else None
    spatial = w.ndim - 2
    if spatial not in (1, 2):
        raise n.fail(f"{spatial}-D convolution (1-D and 2-D are supported)")
    kernel = list(w.shape[2:])
    if n.attr_ints("kernel_shape", kernel) != kernel:
        raise ShapeError(f"{n.where}: kernel_shape {n.attr('kernel_shape')} differs from the "
                         f"weight's {w.shape}")
    strides = _spatial(n, "strides", spatial, 1)
    dilations = _spatial(n, "dilations", spatial, 1)
    x4 = _as_2d(n, x, spatial)
    pads = _pads(n, x.shape[2:], kernel, strides, dilations)
    w4 = w if spatial == 2 else F.reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2]))
    widths = pads if spatial == 2 else [(0, 0)] + pads
    y = F.conv2d(F.pad(x4, widths), w4, b, _pair2(strides, 1), 0, _pair2(dilations, 1),
                 int(n.attr("group", 1)))
    return [y if spatial == 2 else F.reshape(y, (y.shape[0], y.shape[1], y.shape[3]))]


@_op("ConvTranspose",
     "auto_pad dilations group kernel_shape output_padding output_shape pads strides")
def _conv_transpose(n: NodeCtx) -> list[Item]:
    x, w = n.tensor(0), n.tensor(1)
    b = n.tensor(2) if n.has(2) else None
    if w.ndim != 4 or x.ndim != 4:
        raise n.fail(f"ConvTranspose of input {x.shape}, weight {w.shape} (2-D only)")
    if "output_shape" in n.attrs:
        raise n.fail("output_shape (give pads and output_padding instead)")
    kernel = list(w.shape[2:])
    if n.attr_ints("kernel_shape", kernel) != kernel:
        raise ShapeError(f"{n.where}: kernel_shape differs from the weight's {w.shape}")
    strides, dilations = _spatial(n, "strides", 2, 1), _spatial(n, "dilations", 2, 1)
    out_pad = _spatial(n, "output_padding", 2, 0) if "output_padding" in n.attrs else [0, 0]
    if n.text("auto_pad", "NOTSET") != "NOTSET":
        raise n.fail("auto_pad on ConvTranspose")
    pads = _pads(n, x.shape[2:], kernel, strides, dilations)
    group = int(n.attr("group", 1))
    if all(lo == hi for lo, hi in pads):
        return [F.conv_transpose2d(x, w, b, tuple(strides), tuple(p for p, _ in pads),
                                   tuple(out_pad), group, tuple(dilations))]
    # Asymmetric pads crop the unpadded result on each side.
    y = F.conv_transpose2d(x, w, b, tuple(strides), 0, tuple(out_pad), group,
                           tuple(dilations))
    spec = [(0, y.shape[0], 1), (0, y.shape[1], 1)] + [
        (lo, y.shape[2 + i] - hi, 1) for i, (lo, hi) in enumerate(pads)]
    if any(lo + hi >= y.shape[2 + i] for i, (lo, hi) in enumerate(pads)):
        raise ShapeError(f"{n.where}: pads {pads} leave no output of {y.shape}")
    return [F.slice_axes(y, spec)]


def _pool_geometry(n: NodeCtx, x: Value) -> tuple[list[int], list[int], list[int],
                                                  list[tuple[int, int]], list[int]]:
    """kernel, strides, dilations, (begin, end) pads and, per axis, how far ceil_mode
    extends the end beyond the pads (0 without ceil_mode)."""
    kernel = n.attr_ints("kernel_shape")
    if kernel is None or len(kernel) != 2 or min(kernel) < 1:
        raise n.fail(f"kernel_shape {kernel} (2-D pooling with a positive kernel only)")
    if x.ndim != 4:
        raise ShapeError(f"{n.where}: {n.op_type} expects (N, C, H, W), got {x.shape}")
    if kernel[0] * kernel[1] > MAX_WINDOW:
        raise n.fail(f"a pooling window of {kernel[0] * kernel[1]} elements (at most "
                     f"{MAX_WINDOW})")
    strides, dilations = _spatial(n, "strides", 2, 1), _spatial(n, "dilations", 2, 1)
    pads = _pads(n, x.shape[2:], kernel, strides, dilations)
    extra = []
    for size, kk, s, d, (lo, hi) in zip(x.shape[2:], kernel, strides, dilations, pads,
                                        strict=True):
        span = (kk - 1) * d + 1
        if size + lo + hi < span:
            raise ShapeError(f"{n.where}: kernel {kernel} does not fit input {x.shape} with "
                             f"pads {pads}")
        rest = (size + lo + hi - span) % s
        if not n.attr("ceil_mode", 0) or rest == 0:
            extra.append(0)
            continue
        # ceil_mode adds one window over the end. Where it would start past the input and
        # the begin pad, ONNX's size formula keeps it and onnxruntime drops it: refused.
        windows = (size + lo + hi - span) // s + 2
        if (windows - 1) * s >= size + lo:
            raise n.fail("ceil_mode=1 where the last window starts in the end padding "
                         "(ONNX's output size and onnxruntime's differ there)")
        extra.append(s - rest)
    return kernel, strides, dilations, pads, extra


@_op("MaxPool", "auto_pad ceil_mode dilations kernel_shape pads storage_order strides")
def _max_pool(n: NodeCtx) -> list[Item]:
    if len(n.outputs) > 1 and n.outputs[1]:
        raise n.fail("the Indices output")
    x = n.tensor(0)
    kernel, strides, dilations, pads, extra = _pool_geometry(n, x)
    grown = [(lo, hi + e) for (lo, hi), e in zip(pads, extra, strict=True)]
    symmetric = all(lo == hi and lo <= kk // 2 for (lo, hi), kk in zip(grown, kernel,
                                                                       strict=True))
    if symmetric:
        return [F.max_pool2d(x, kernel, strides, [lo for lo, _ in grown], dilations)]
    # Padding never wins: fill it with a value strictly below every input.
    low = F.sub(F.neg(F.max(F.neg(x))), 1)
    widths = [(0, 0), (0, 0)] + grown
    padded = F.where(F.pad(F.ones_like(x), widths), F.pad(x, widths), low)
    return [F.max_pool2d(padded, kernel, strides, 0, dilations)]


@_op("AveragePool", "auto_pad ceil_mode count_include_pad dilations kernel_shape pads strides")
def _avg_pool(n: NodeCtx) -> list[Item]:
    x = n.tensor(0)
    kernel, strides, dilations, pads, extra = _pool_geometry(n, x)
    if dilations != [1, 1]:
        raise n.fail("dilated average pooling")
    grown = [(lo, hi + e) for (lo, hi), e in zip(pads, extra, strict=True)]
    if all(p == (0, 0) for p in grown):
        return [F.avg_pool2d(x, kernel, strides, 0)]
    widths = [(0, 0), (0, 0)] + grown
    total = F.avg_pool2d(F.pad(x, widths), kernel, strides, 0)
    include = bool(n.attr("count_include_pad", 0))
    if include and not any(extra):
        return [total]
    # Divide by the number of counted elements per window (the input, plus the explicit
    # pads when count_include_pad; never ceil_mode's extension): the window mean of a
    # padded image of ones is count / window size, so the ratio is sum / count.
    h, w = x.shape[2:]
    if include:
        (t, b), (left, r) = pads
        counted = (h + t + b, w + left + r)
        around = [(0, 0), (0, 0), (0, extra[0]), (0, extra[1])]
    else:
        counted, around = (h, w), widths
    ones = F.broadcast_to(F.constant(x, 1), (1, 1) + counted)
    count = F.avg_pool2d(F.pad(ones, around), kernel, strides, 0)
    return [F.div(total, count)]


@_op("GlobalAveragePool GlobalMaxPool")
def _global_pool(n: NodeCtx) -> list[Item]:
    x = n.tensor(0)
    if x.ndim < 3:
        raise ShapeError(f"{n.where}: {n.op_type} expects (N, C, ...), got {x.shape}")
    fn = F.mean if n.op_type == "GlobalAveragePool" else F.max
    return [fn(x, tuple(range(2, x.ndim)), True)]


@_op("Pad", "mode pads value")
def _pad(n: NodeCtx) -> list[Item]:
    mode = n.text("mode", "constant")
    if mode != "constant":
        raise n.fail(f"mode {mode!r} (only 'constant' padding is supported)")
    x = n.tensor(0)
    if n.opset < 11:
        pads, value = n.attr_ints("pads"), float(n.attr("value", 0.0))
        if pads is None:
            raise n.bad("Pad needs pads")
        axes = list(range(x.ndim))
    else:
        pads = n.ints(1, "pads")
        value = 0.0
        if n.has(2):
            c = n.const(2, "constant_value")
            if c.array.size != 1:
                raise n.bad("constant_value must hold one element")
            value = float(c.array.reshape(-1)[0])
        axes = [_axis(n, a, x.ndim, "axes entry") for a in n.ints(3, "axes")] if n.has(3) \
            else list(range(x.ndim))
    if len(pads) != 2 * len(axes):
        raise n.bad(f"pads {pads} do not fit {len(axes)} axes of {x.shape}")
    widths = [(0, 0)] * x.ndim
    for k, ax in enumerate(axes):
        widths[ax] = (pads[k], pads[len(axes) + k])
    crop = [(max(-lo, 0), d - max(-hi, 0), 1) for (lo, hi), d in zip(widths, x.shape,
                                                                     strict=True)]
    if any(a >= b for a, b, _ in crop):
        raise ShapeError(f"{n.where}: pads {pads} crop all of {x.shape}")
    cropped = _apply_slice(x, crop)
    assert not isinstance(cropped, Const)
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if value == 0.0:
        return [F.pad(cropped, grow)]
    mask = F.pad(F.ones_like(cropped), grow)
    return [F.where(mask, F.pad(cropped, grow), F.constant(cropped, value))]


@_op("BatchNormalization", "epsilon momentum spatial is_test training_mode")
def _batch_norm(n: NodeCtx) -> list[Item]:
    if n.attr("training_mode", 0):
        raise n.fail("training_mode=1 (only inference is supported)")
    if int(n.attr("spatial", 1)) != 1:
        raise n.fail("spatial=0")
    x = n.tensor(0)
    if x.ndim < 2:
        raise ShapeError(f"{n.where}: BatchNormalization expects (N, C, ...), got {x.shape}")
    c = x.shape[1]
    stats = [n.tensor(i) for i in range(1, 5)]  # scale, bias, mean, var
    if any(s.shape != (c,) for s in stats):
        raise ShapeError(f"{n.where}: scale/B/mean/var shapes {[s.shape for s in stats]} do "
                         f"not fit {c} channels")
    scale, bias, mean, var = (F.reshape(s, (c,) + (1,) * (x.ndim - 2)) for s in stats)
    eps = float(n.attr("epsilon", float(np.float32(1e-5))))
    std = F.sqrt(F.add(var, F.constant(var, eps)))
    return [F.add(F.mul(F.div(F.sub(x, mean), std), scale), bias)]


SUPPORTED_OPS = tuple(sorted(CONVERTERS))
