"""Write a TorchLean graph (or a built nn model) as an ONNX model.

Every graph node becomes ONNX nodes of opset `EXPORT_OPSET` that compute the same
function in float32: primitives map one to one (matmul -> MatMul, slice -> Slice,
unslice -> Pad, concat -> Concat, ...), so convolutions and pools, which TorchLean
builds from primitives, export as those primitives. Parameters become initializers with
their names, inputs graph inputs, 0-d constants Constant nodes, literals initializers.
Values are written as binary32: a parameter or constant that is not a binary32 number is
rounded to the nearest one. `load_onnx` reads the file back to the same graph where
every constant is a binary32 number (see tests/verify/vnn/test_onnx_export.py).

The file is written to a temporary name beside the target and renamed, so a failure
leaves no half-written model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ...runtime.atomic_write import write_bytes_atomically
from ...runtime.graph import Graph, trace
from ...runtime.graph.encoding import decode_literal
from ...runtime.graph.ir import Node
from ...spec.fields.base import SymbolicPi
from ...spec.tensor import Tensor
from .onnx_values import OnnxUnsupported

__all__ = ["EXPORT_OPSET", "save_onnx", "graph_of_model"]

EXPORT_OPSET = 17
"""The ai.onnx opset of exported models."""

_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max",
           "minimum": "Min"}
_UNARY = {"neg": "Neg", "abs": "Abs", "sqrt": "Sqrt", "exp": "Exp", "log": "Log",
          "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "sin": "Sin", "cos": "Cos",
          "erf": "Erf", "softplus": "Softplus"}
_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}
_FLOAT, _BOOL = 1, 9


def _host_float32(value: Any) -> np.ndarray[Any, Any]:
    """A parameter's values as binary32 (through binary64 for exact/interval items)."""
    data = value.data if isinstance(value, Tensor) else value
    array = np.asarray(data)
    if array.dtype == object:
        array = np.vectorize(lambda v: float(Fraction(v)) if isinstance(v, Fraction)
                             else float(v), otypes=[np.float64])(array)
    return np.asarray(array, dtype=np.float32)


def _const_float(value: Any) -> float:
    return math.pi if isinstance(value, SymbolicPi) else float(value)


class _Writer:
    """Accumulates ONNX nodes and initializers while walking a graph."""

    def __init__(self, onnx: Any, graph: Graph) -> None:
        self.onnx = onnx
        self.graph = graph
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used: set[str] = {n.name for n in graph.leaves}
        self.names: dict[int, str] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        name = hint
        while name in self.used:
            self._count += 1
            name = f"{hint}_{self._count}"
        self.used.add(name)
        return name

    def ints(self, values: Sequence[int], hint: str) -> str:
        """An int64 initializer (shapes, axes, slice bounds)."""
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.asarray(list(values), dtype=np.int64), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], output: str | None = None,
             **attrs: Any) -> str:
        out = output if output is not None else self.fresh("t")
        self.nodes.append(self.onnx.helper.make_node(
            op_type, list(inputs), [out], name=f"{op_type}_{len(self.nodes)}", **attrs))
        return out


def _export_node(w: _Writer, n: Node, out: str) -> None:
    """Emit the ONNX nodes computing node `n` into the value named `out`."""
    args = [w.names[a] for a in n.args]
    at = n.attr_dict
    if n.op in _BINARY:
        w.node(_BINARY[n.op], args, out)
    elif n.op in _UNARY:
        w.node(_UNARY[n.op], args, out)
    elif n.op == "square":
        w.node("Mul", [args[0], args[0]], out)
    elif n.op == "leaky_relu":
        w.node("LeakyRelu", args, out, alpha=float(at["negative_slope"]))
    elif n.op in ("step", "greater"):
        rhs = w.node("Constant", [], value=w.onnx.numpy_helper.from_array(
            np.asarray(0.0, dtype=np.float32), "zero")) if n.op == "step" else args[1]
        w.node("Cast", [w.node("Greater", [args[0], rhs])], out, to=_FLOAT)
    elif n.op == "where":
        w.node("Where", [w.node("Cast", [args[0]], to=_BOOL), args[1], args[2]], out)
    elif n.op in _REDUCE:
        axes, keep = list(at["axes"]), int(bool(at["keepdims"]))
        if not axes:
            w.node("Identity", args, out)
        elif n.op == "sum":
            w.node("ReduceSum", [args[0], w.ints(axes, "axes")], out, keepdims=keep)
        else:
            w.node(_REDUCE[n.op], args, out, axes=axes, keepdims=keep)
    elif n.op in ("softmax", "log_softmax"):
        w.node("Softmax" if n.op == "softmax" else "LogSoftmax", args, out,
               axis=int(at["axis"]))
    elif n.op == "matmul":
        w.node("MatMul", args, out)
    elif n.op == "transpose":
        w.node("Transpose", args, out, perm=list(at["axes"]))
    elif n.op == "reshape":
        shape = list(at["shape"])
        extra = {"allowzero": 1} if 0 in shape else {}
        w.node("Reshape", [args[0], w.ints(shape, "shape")], out, **extra)
    elif n.op == "broadcast_to":
        w.node("Expand", [args[0], w.ints(list(at["shape"]), "shape")], out)
    elif n.op == "concat":
        w.node("Concat", args, out, axis=int(at["axis"]))
    elif n.op == "slice":
        spec = list(at["spec"])
        w.node("Slice", [args[0], w.ints([s[0] for s in spec], "starts"),
                         w.ints([s[1] for s in spec], "ends"),
                         w.ints(list(range(len(spec))), "axes"),
                         w.ints([s[2] for s in spec], "steps")], out)
    elif n.op == "unslice":
        _export_unslice(w, n, args[0], out)
    else:
        raise OnnxUnsupported(f"graph node %{n.id} ({n.op})", n.op,
                              f"op {n.op!r} has no ONNX counterpart that computes the same "
                              "values")


def _export_unslice(w: _Writer, n: Node, x: str, out: str) -> None:
    """Zeros of `shape` with x written at start::step per axis: a strided axis is spread
    first (each entry followed by step - 1 zeros, the tail trimmed), then padded."""
    shape, spec = tuple(n.attr("shape")), list(n.attr("spec"))
    current = list(w.graph.nodes[n.args[0]].shape)
    for ax, (_, _, step) in enumerate(spec):
        if step == 1 or current[ax] <= 1:
            continue
        m = current[ax]
        split = current[:ax + 1] + [1] + current[ax + 1:]
        x = w.node("Reshape", [x, w.ints(split, "shape")])
        pads = [0] * (2 * len(split))
        pads[len(split) + ax + 1] = step - 1
        x = w.node("Pad", [x, w.ints(pads, "pads")])
        merged = current[:ax] + [m * step] + current[ax + 1:]
        x = w.node("Reshape", [x, w.ints(merged, "shape")])
        current[ax] = (m - 1) * step + 1
        x = w.node("Slice", [x, w.ints([0], "starts"), w.ints([current[ax]], "ends"),
                             w.ints([ax], "axes")])
    before = [s[0] for s in spec]
    after = [full - lo - size for full, lo, size in zip(shape, before, current, strict=True)]
    w.node("Pad", [x, w.ints(before + after, "pads")], out, mode="constant")


def _value_info(onnx: Any, name: str, shape: Sequence[int]) -> Any:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape))


def _to_model(onnx: Any, graph: Graph, params: Mapping[str, Any]) -> Any:
    missing = [n.name for n in graph.params if n.name not in params]
    if missing:
        raise KeyError(f"save_onnx: no values for parameters {missing}")
    w = _Writer(onnx, graph)
    # An output names its node's value directly where it can; otherwise an Identity.
    direct: dict[int, str] = {}
    for name, i in graph.outputs:
        node = graph.nodes[i]
        if i not in direct and not node.is_leaf and name not in w.used:
            direct[i] = name
            w.used.add(name)
    inputs = []
    for n in graph.nodes:
        if n.is_leaf:
            w.names[n.id] = n.name
            if n.op == "input":
                inputs.append(_value_info(onnx, n.name, n.shape))
            else:
                array = _host_float32(params[n.name])
                if array.shape != n.shape:
                    raise ValueError(f"save_onnx: parameter {n.name!r} has shape "
                                     f"{array.shape}, the graph declares {n.shape}")
                w.initializers.append(onnx.numpy_helper.from_array(array, n.name))
            continue
        out = direct.get(n.id) or w.fresh(f"v{n.id}")
        w.names[n.id] = out
        if n.op == "const":
            value = np.asarray(_const_float(n.attr("value")), dtype=np.float32)
            w.node("Constant", [], out, value=onnx.numpy_helper.from_array(value, out))
        elif n.op == "literal":
            array = decode_literal(graph.field_def, n.attr("data"), n.shape, f"literal %{n.id}")
            w.initializers.append(onnx.numpy_helper.from_array(_host_float32(array), out))
        else:
            _export_node(w, n, out)
    outputs = []
    for name, i in graph.outputs:
        if direct.get(i) != name:
            if name in w.used:
                raise ValueError(f"save_onnx: output name {name!r} is also a leaf's name")
            w.used.add(name)
            w.node("Identity", [w.names[i]], name)
        outputs.append(_value_info(onnx, name, graph.nodes[i].shape))
    g = onnx.helper.make_graph(w.nodes, "torchlean", inputs, outputs, w.initializers)
    model = onnx.helper.make_model(
        g, opset_imports=[onnx.helper.make_opsetid("", EXPORT_OPSET)],
        producer_name="torchlean")
    model.ir_version = 8  # opset 17's IR version: readable by onnxruntime >= 1.13
    return model


def graph_of_model(model: Any, input_shape: Sequence[int]) -> tuple[Graph, dict[str, Any]]:
    """The eval-mode graph of a built nn model over one input "x" of `input_shape`, with
    its parameters and buffers as graph parameters (and their values)."""
    params, buffers = dict(model.params), dict(getattr(model, "buffers", {}) or {})
    state = {**params, **buffers}

    def fn(p: Any, x: Any) -> Any:
        y, _ = model.forward({k: p[k] for k in params}, x,
                             buffers={k: p[k] for k in buffers}, mode="eval")
        return y

    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return trace(fn, {"x": tuple(input_shape)}, shapes, model.field), state


def save_onnx(graph: Graph | Any, params: Mapping[str, Any] | None, path: str | os.PathLike[str],
              *, input_shape: Sequence[int] | None = None) -> Path:
    """Write `graph` with its parameter values `params` (name -> array or Tensor) to
    `path` as an ONNX model, atomically; returns the path.

    `graph` may also be a built nn model (`nn.build(...)`): give `input_shape` (batch
    included) and `params=None` to use its parameters and buffers. A graph op with no
    ONNX counterpart (one_hot, argmax_mask, gelu, silu, expm1, log1p) raises
    OnnxUnsupported naming the node.
    """
    import onnx

    if not isinstance(graph, Graph):
        if input_shape is None:
            raise ValueError("save_onnx: exporting a model needs input_shape")
        graph, state = graph_of_model(graph, input_shape)
        params = state if params is None else params
    model = _to_model(onnx, graph, params or {})
    target = Path(path)
    write_bytes_atomically(target, model.SerializeToString())
    return target
