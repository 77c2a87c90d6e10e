"""Load an ONNX model as a TorchLean graph and its parameters.

`load_onnx(path)` parses the file (never runs it), checks its opset, and converts its node
list op by op (see `onnx_ops`) on traced values into a `runtime.graph.Graph`:

- ONNX initializers used as data become graph parameters, named as in the file, with their
  arrays in `OnnxModel.params`; float tensors of Constant nodes do too (0-d ones become
  field constants), and shape tensors are folded away at import;
- initializers that old exporters also list among the graph inputs are parameters;
- the remaining graph inputs are the graph's inputs, in file order; the first is the model
  input, with its declared shape, batch axis included (VNN-COMP networks declare e.g.
  (1, 5), (1, 1, 1, 5) or (1, 784, 1));
- the graph outputs keep their ONNX names.

The graph is traced in `float32` (ONNX's arithmetic) but holds no literals, so it runs in
every field: `OnnxModel.run(x, field="exact")`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...runtime.graph import Graph, interpret
from ...runtime.graph.tracing import GraphBuilder, Var
from ...spec.errors import DataFormatError, ShapeError, TorchLeanError
from ...spec.fields import Field, get_field
from ...spec.file_limits import check_file_size
from ...spec.tensor import Tensor
from ...spec.value import Value
from .onnx_ops import CONVERTERS, FLOAT_TYPES, INT_TYPES, NodeCtx, Scope
from .onnx_values import Const, OnnxUnsupported, node_where

__all__ = ["DEFAULT_MAX_BYTES", "MIN_OPSET", "MAX_OPSET", "OnnxModel", "load_onnx"]

DEFAULT_MAX_BYTES = 256 * 2**20
"""Files larger than this (256 MiB) are refused before they are read."""
MIN_OPSET, MAX_OPSET = 7, 20
"""The ai.onnx opsets this importer translates."""


@dataclass(frozen=True)
class OnnxModel:
    """An imported ONNX model: its graph, its parameters (name -> array) and where it came
    from. The graph's leaves are the parameters, then the model inputs."""

    graph: Graph
    params: Mapping[str, np.ndarray[Any, Any]]
    path: str
    opset: int

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.graph.inputs)

    @property
    def input_name(self) -> str:
        """The model input (the first graph input)."""
        return self.input_names[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The declared shape of the model input, batch axis included."""
        return self.graph.inputs[0].shape

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.graph.outputs)

    def run(self, x: Any, field: str | Field = "float") -> dict[str, Tensor]:
        """All outputs for input `x` (an array for the model input, or a mapping of input
        names to arrays), computed in `field` by the reference interpreter."""
        inputs = dict(x) if isinstance(x, Mapping) else {self.input_name: x}
        return interpret(self.graph, {**self.params, **inputs}, field=field)

    def __call__(self, x: Any, field: str | Field = "float") -> Tensor:
        """The first output for model input `x`, computed in `field`."""
        return self.run(x, field)[self.output_names[0]]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("ONNX support needs the onnx package: pip install "
                          "'torchlean[onnx]'") from None
    return onnx


def _read_model(path: Path, max_bytes: int) -> Any:
    where = str(path)
    check_file_size(path, max_bytes, "ONNX file", " (pass max_bytes= to allow it)")
    onnx = _onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except Exception as e:  # protobuf raises DecodeError (or RuntimeWarning subclasses)
        raise DataFormatError(where, f"not an ONNX model ({type(e).__name__}: {e})") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise DataFormatError(where, "not an ONNX model (no IR version or no graph)")
    return model


def _opset(model: Any, where: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise DataFormatError(where, "the model imports no ai.onnx opset")
    opset = int(versions[0])
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxUnsupported(where, "opset", f"opset {opset} is outside the supported "
                              f"range {MIN_OPSET}-{MAX_OPSET}")
    return opset


def _tensor_array(onnx: Any, tensor: Any, where: str) -> np.ndarray[Any, Any]:
    """A TensorProto's array; external data and unknown types are refused."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        raise OnnxUnsupported(where, "external_data", f"tensor {tensor.name!r} keeps its data "
                              "in an external file, which is not read")
    if tensor.data_type not in FLOAT_TYPES and tensor.data_type not in INT_TYPES:
        raise OnnxUnsupported(where, "dtype", f"tensor {tensor.name!r} has ONNX data type "
                              f"{tensor.data_type}")
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as e:
        raise DataFormatError(where, f"tensor {tensor.name!r} is malformed: {e}") from None
    expected = tuple(int(d) for d in tensor.dims)
    if array.shape != expected:
        raise DataFormatError(where, f"tensor {tensor.name!r} holds {array.size} items for "
                              f"dims {expected}")
    return np.asarray(array)


def _attributes(onnx: Any, node: Any, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise OnnxUnsupported(where, node.op_type, f"attribute {a.name!r} refers to a "
                                  "function attribute")
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS,
                      onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.TENSORS):
            raise OnnxUnsupported(where, node.op_type, f"attribute {a.name!r} of type "
                                  f"{onnx.AttributeProto.AttributeType.Name(a.type)}")
        value = onnx.helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.TENSOR:
            value = _tensor_array(onnx, value, where)
        out[a.name] = value
    return out


def _input_shape(info: Any, override: Sequence[int] | None, where: str) -> tuple[int, ...]:
    ttype = info.type.tensor_type
    if not info.type.HasField("tensor_type") or ttype.elem_type not in (1, 11):
        raise OnnxUnsupported(where, "input", f"input {info.name!r} is not a float tensor")
    if not ttype.HasField("shape"):
        raise DataFormatError(where, f"input {info.name!r} declares no shape")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
    if override is None:
        if any(d is None or d <= 0 for d in dims):
            raise DataFormatError(where, f"input {info.name!r} has symbolic or empty dims "
                                  f"{[d.dim_param or d.dim_value for d in ttype.shape.dim]}; "
                                  "pass input_shape= to fix them")
        return tuple(int(d) for d in dims if d is not None)
    shape = tuple(int(d) for d in override)
    if len(shape) != len(dims) or any(
        d is not None and d > 0 and d != s for d, s in zip(dims, shape, strict=True)
    ) or min(shape, default=1) <= 0:
        raise ShapeError(f"{where}: input_shape {shape} does not fit the declared shape of "
                         f"{info.name!r}: {[d.dim_param or d.dim_value for d in ttype.shape.dim]}")
    return shape


@dataclass
class _Plan:
    """What a parsed model holds, ready to be traced (once to discover which constants
    are used as data, once to build the graph with those parameters first)."""

    onnx: Any
    model: Any
    path: str
    opset: int
    constants: dict[str, Const]
    init_order: dict[str, int]
    inputs: list[tuple[str, tuple[int, ...]]]


def _plan(path: Path, max_bytes: int, input_shape: Sequence[int] | None) -> _Plan:
    where = str(path)
    model = _read_model(path, max_bytes)
    opset = _opset(model, where)
    onnx = _onnx()
    g = model.graph
    if len(g.sparse_initializer):
        raise OnnxUnsupported(where, "sparse_initializer", "sparse initializers")
    constants: dict[str, Const] = {}
    order: dict[str, int] = {}
    for i, t in enumerate(g.initializer):
        if not t.name or t.name in constants:
            raise DataFormatError(where, f"initializer {i} has an empty or repeated name "
                                  f"{t.name!r}")
        constants[t.name] = Const(_tensor_array(onnx, t, f"{where}: initializer {t.name!r}"))
        order[t.name] = i
    inputs: list[tuple[str, tuple[int, ...]]] = []
    for info in g.input:
        if info.name in constants:
            continue  # an initializer listed among the inputs (IR < 4 exporters): a parameter
        override = input_shape if not inputs else None
        inputs.append((info.name, _input_shape(info, override, where)))
    if not inputs:
        raise DataFormatError(where, "the graph has no input that is not an initializer")
    if not len(g.output):
        raise DataFormatError(where, "the graph has no outputs")
    return _Plan(onnx, model, where, opset, constants, order, inputs)


def _convert_node(plan: _Plan, scope: Scope, index: int, node: Any) -> None:
    where = node_where(plan.path, index, node.name, node.op_type)
    if node.domain not in ("", "ai.onnx"):
        raise OnnxUnsupported(where, node.op_type, f"operator domain {node.domain!r}")
    spec = CONVERTERS.get(node.op_type)
    if spec is None:
        raise OnnxUnsupported(where, node.op_type, f"operator {node.op_type} is not "
                              "supported (see torchlean.verify.vnn.SUPPORTED_OPS)")
    attrs = _attributes(plan.onnx, node, where)
    unknown = set(attrs) - spec.attrs
    if unknown:
        raise OnnxUnsupported(where, node.op_type, f"attribute(s) {sorted(unknown)} of "
                              f"{node.op_type}")
    ctx = NodeCtx(scope, node.op_type, list(node.input), list(node.output), attrs,
                  plan.opset, where)
    try:
        outs = spec.convert(ctx)
    except (OnnxUnsupported, DataFormatError):
        raise
    except ShapeError as e:
        text = str(e)
        raise ShapeError(text if text.startswith(where) else f"{where}: {text}") from None
    except TorchLeanError as e:
        e.add_note(f"while importing {where}")
        raise
    except (ValueError, IndexError, KeyError, TypeError) as e:
        raise DataFormatError(where, f"{type(e).__name__}: {e}") from None
    for name, item in zip(node.output, outs, strict=False):
        if name:
            if name in scope.env:
                raise DataFormatError(where, f"value {name!r} is defined twice")
            scope.env[name] = item


def _trace(plan: _Plan, field: Field, params: Mapping[str, np.ndarray[Any, Any]] | None) -> tuple[
    Graph, list[str], dict[str, np.ndarray[Any, Any]]
]:
    """Build the graph. With `params` None, parameters are made as they are first used
    (the discovery pass); otherwise these come first, in this order. Returns the graph,
    the parameter names in order of use and their arrays."""
    builder = GraphBuilder(field)
    made: dict[str, Var] = {}
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    used: list[str] = []
    for name, array in (params or {}).items():
        made[name] = builder.leaf("param", name, array.shape)
    ivars = [builder.leaf("input", name, shape) for name, shape in plan.inputs]

    def make_param(name: str, array: np.ndarray[Any, Any]) -> Value:
        if name not in made:
            made[name] = builder.leaf("param", name, array.shape)
        used.append(name)
        arrays[name] = array
        return made[name]

    scope = Scope(ivars[0], make_param, plan.path)
    scope.env.update(plan.constants)
    scope.env.update({name: v for (name, _), v in zip(plan.inputs, ivars, strict=True)})
    for i, node in enumerate(plan.model.graph.node):
        _convert_node(plan, scope, i, node)
    outputs: list[tuple[str, Var]] = []
    for out in plan.model.graph.output:
        item = scope.get(out.name, f"{plan.path}: graph output {out.name!r}")
        if not isinstance(item, Var):
            raise OnnxUnsupported(f"{plan.path}: graph output {out.name!r}", "output",
                                  "the output is a constant (it does not depend on the input)")
        _check_declared(out, item.shape, plan.path)
        outputs.append((out.name, item))
    return builder.finish(outputs), used, arrays


def _check_declared(info: Any, shape: tuple[int, ...], path: str) -> None:
    ttype = info.type.tensor_type
    if not info.type.HasField("tensor_type") or not ttype.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
    if len(dims) != len(shape) or any(
        d is not None and d > 0 and d != s for d, s in zip(dims, shape, strict=True)
    ):
        raise ShapeError(f"{path}: graph output {info.name!r} declares shape {dims}, the "
                         f"model computes {shape}")


def load_onnx(path: str | os.PathLike[str], *, input_shape: Sequence[int] | None = None,
              max_bytes: int = DEFAULT_MAX_BYTES, field: str | Field = "float32") -> OnnxModel:
    """Import the ONNX model at `path` as a TorchLean graph and its named parameters.

    `input_shape` fixes symbolic dims of the model input (it must agree with the fixed
    ones). Files over `max_bytes` are refused before reading. Raises DataFormatError for a
    file that is not ONNX or is malformed (naming the file and node), OnnxUnsupported (an
    UnsupportedOperation) for an operator, attribute or opset outside what is translated,
    and ShapeError for shapes that do not chain. Nothing in the file is executed.
    """
    fld = get_field(field)
    source = Path(path)
    plan = _plan(source, max_bytes, input_shape)
    _, used, arrays = _trace(plan, fld, None)
    first: dict[str, int] = {}
    for k, name in enumerate(used):
        first.setdefault(name, k)
    n_init = len(plan.init_order)
    # Initializers in file order, then constants of Constant nodes in order of first use.
    ordered = sorted(first, key=lambda name: plan.init_order.get(name, n_init + first[name]))
    params = {name: arrays[name] for name in ordered}
    graph, _, _ = _trace(plan, fld, params)
    return OnnxModel(graph, params, str(source), plan.opset)
