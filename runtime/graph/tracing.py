"""Building graphs: symbolic `Var` values, `trace(fn, ...)`, and graphs from eager tapes.

A `Var` is a Value whose ops append nodes to a `GraphBuilder` instead of computing: its
`_apply` checks the op's shape rule and records the node, its `_lift` records a constant.
Since every op's forward and VJP rule is written against `Value`, any function of Values
(a model's apply, a loss, even an eager `grad` over Vars) traces into a graph.

A traced function must not look at data: `bool()`, comparisons, `float()` or `.item()` of
a Var raise `TracingError` naming the op that made the value and the user's line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from types import FrameType
from typing import Any, NoReturn, Self

from ...spec.errors import FieldMismatchError, TorchLeanError
from ...spec.fields import Field, get_field
from ...spec.fields.base import Constant, SymbolicPi
from ...spec.nn.layer import running_layer
from ...spec.ops.registry import Attrs, OpDef
from ...spec.shapes import Shape, as_shape
from ...spec.tensor import Tensor
from ...spec.value import Value
from .encoding import encode_literal, freeze_attr
from .ir import Graph, GraphError, Node, freeze_attrs

__all__ = ["TracingError", "Var", "GraphBuilder", "trace", "trace_model", "as_graph",
           "graph_from_tape"]



class TracingError(TorchLeanError, TypeError):
    """A function cannot be turned into a fixed graph (it inspects data values)."""


def user_location() -> str:
    """`file:line in function` of the innermost caller outside TorchLean's own code."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module != "torchlean" and not module.startswith("torchlean."):
            return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return "<unknown location>"


class GraphBuilder:
    """An append-only list of nodes being traced, over one field."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.nodes: list[Node] = []
        self.layers: list[str] = []  # the layer running at each node (Graph.layers)
        self._names: set[str] = set()

    def _append(self, op: str, args: tuple[int, ...], attrs: Any, shape: Shape) -> Var:
        node = Node(len(self.nodes), op, args, attrs, shape)
        self.nodes.append(node)
        self.layers.append(running_layer())
        return Var(self, node.id, shape)

    def leaf(self, kind: str, name: str, shape: Shape) -> Var:
        """A new input or parameter."""
        if kind not in ("input", "param"):
            raise ValueError(f"leaf kind must be 'input' or 'param', got {kind!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a leaf needs a non-empty string name, got {name!r}")
        if name in self._names:
            raise ValueError(f"the name {name!r} is used by two inputs/parameters")
        self._names.add(name)
        return self._append(kind, (), (("name", name),), as_shape(shape, what=name))

    def const(self, value: Constant) -> Var:
        """A 0-d constant node (lifted into the field when the graph runs)."""
        if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, SymbolicPi)):
            raise TypeError(f"a constant must be an int, float, Fraction or PI, got {value!r}")
        frozen = value if isinstance(value, (Fraction, SymbolicPi)) else freeze_attr(value, "const")
        return self._append("const", (), (("value", frozen),), ())

    def literal(self, array: Any) -> Var:
        """A constant array of this field, stored exactly."""
        shape = self.field.shape_of(array)
        return self._append("literal", (), (("data", encode_literal(self.field, array)),), shape)

    def op(self, op: OpDef, inputs: Sequence[Var], attrs: Attrs) -> Var:
        """Record `op` on `inputs` after checking its shape rule."""
        frozen = freeze_attrs({k: freeze_attr(v, f"{op.tag}: attribute {k}")
                               for k, v in attrs.items()})
        shape = op.shape(tuple(v.shape for v in inputs), dict(frozen))
        return self._append(op.tag, tuple(v.id for v in inputs), frozen, tuple(shape))

    def copy(self, node: Node, args: Sequence[Var]) -> Var:
        """Re-record an existing node (same op, attrs, shape) on new arguments."""
        return self._append(node.op, tuple(v.id for v in args), node.attrs, node.shape)

    def finish(self, outputs: Sequence[tuple[str, Var]]) -> Graph:
        """The graph of everything recorded, with these named outputs."""
        for name, v in outputs:
            if v.builder is not self:
                raise TracingError(f"output {name!r} comes from another trace")
        layers = tuple(self.layers) if any(self.layers) else ()
        return Graph(self.field.name, tuple(self.nodes), tuple((n, v.id) for n, v in outputs),
                     layers=layers)


class Var(Value):
    """A symbolic tensor: a node of a graph being traced."""

    __slots__ = ("builder", "id", "_shape")
    # One above concrete values, so `apply` evaluates mixed operands here and captured
    # concrete tensors become literals (see _coerce) whichever side they are on.
    _level = 1

    def __init__(self, builder: GraphBuilder, node_id: int, shape: Shape) -> None:
        self.builder = builder
        self.id = node_id
        self._shape = shape

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def field(self) -> Field:
        return self.builder.field

    @property
    def node(self) -> Node:
        """The node this value is."""
        return self.builder.nodes[self.id]

    def _apply(self, op: OpDef, inputs: tuple[Self, ...], attrs: Attrs) -> Self:
        try:
            return self.builder.op(op, inputs, attrs)  # type: ignore[return-value]
        except TorchLeanError as e:
            e.add_note(f"while tracing {op.tag!r} at {user_location()}")
            raise

    def _lift(self, value: Constant) -> Self:
        return self.builder.const(value)  # type: ignore[return-value]

    def _same_context(self, other: Value) -> bool:
        return other.builder is self.builder  # type: ignore[attr-defined]  # same type: Var

    def _coerce(self, other: Value) -> Self:
        if isinstance(other, Var):
            if other.builder is self.builder:
                return other  # type: ignore[return-value]
            raise FieldMismatchError(
                "operands come from two different traces; pass the value as an input instead"
            )
        if isinstance(other, Tensor):
            if other.field is not self.field:
                raise FieldMismatchError(
                    f"a captured tensor of field {other.field} in a trace over {self.field}"
                )
            return self.builder.literal(other.data)  # type: ignore[return-value]
        return super()._coerce(other)

    # -- data-dependent operations cannot be traced --------------------------------
    def _data_access(self, what: str) -> NoReturn:
        n = self.node
        made_by = f"node %{n.id} ({n.op}, shape {n.shape})"
        raise TracingError(
            f"cannot trace {what} of the value made by {made_by} at {user_location()}: the "
            "function looks at data values (e.g. branches on them), which a fixed graph "
            "cannot represent. Write it without branching (F.where, F.maximum, F.step), or "
            "run it eagerly (backend='eager')."
        )

    def __bool__(self) -> bool:
        self._data_access("bool()")

    def __float__(self) -> float:
        self._data_access("float()")

    def __int__(self) -> int:
        self._data_access("int()")

    def __index__(self) -> int:
        self._data_access("an index conversion")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        self._data_access("a NumPy conversion")

    def __lt__(self, other: Any) -> bool:
        self._data_access("a comparison '<'")

    def __le__(self, other: Any) -> bool:
        self._data_access("a comparison '<='")

    def __gt__(self, other: Any) -> bool:
        self._data_access("a comparison '>' (use F.greater for a 0/1 tensor)")

    def __ge__(self, other: Any) -> bool:
        self._data_access("a comparison '>='")

    def item(self) -> Any:
        """Not available while tracing (raises TracingError)."""
        self._data_access(".item()")

    def numpy(self) -> Any:
        """Not available while tracing (raises TracingError)."""
        self._data_access(".numpy()")

    def tolist(self) -> Any:
        """Not available while tracing (raises TracingError)."""
        self._data_access(".tolist()")

    def __repr__(self) -> str:
        n = self.node
        return f"Var(%{n.id} {n.op}, shape={self._shape}, field={self.field.name})"


Tree = Any


def _flatten_outputs(tree: Tree, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(tree, Value):
        return [(prefix, tree)]
    if isinstance(tree, Mapping):
        return [p for k, v in tree.items() for p in _flatten_outputs(v, f"{prefix}.{k}")]
    if isinstance(tree, (tuple, list)):
        return [p for i, v in enumerate(tree) for p in _flatten_outputs(v, f"{prefix}[{i}]")]
    raise TracingError(f"output {prefix!r} is a {type(tree).__name__}, not a tensor")


def _as_var(builder: GraphBuilder, name: str, v: Value) -> Var:
    if isinstance(v, Var):
        if v.builder is not builder:
            raise TracingError(f"output {name!r} comes from another trace")
        return v
    if isinstance(v, Tensor) and v.field is builder.field:
        return builder.literal(v.data)
    raise TracingError(f"output {name!r} is a {type(v).__name__} of field {v.field}, not a "
                       "value of this trace")


def trace(
    fn: Callable[..., Tree],
    inputs: Mapping[str, Sequence[int]],
    params: Mapping[str, Sequence[int]] | None = None,
    field: str | Field = "float",
) -> Graph:
    """The graph of `fn` over symbolic values of the given shapes.

    `fn` is called as `fn(*inputs)` (in the mapping's order), or `fn(params, *inputs)` with
    `params` a dict of Vars when `params` is given. It returns a tensor or a tuple / list /
    dict of tensors; outputs are named "out", "out[i]" or "out.key". Parameters come first
    among the graph's leaves. A function that branches on data raises TracingError.
    """
    builder = GraphBuilder(get_field(field))
    pvars = None
    if params is not None:
        pvars = {name: builder.leaf("param", name, tuple(s)) for name, s in params.items()}
    ivars = [builder.leaf("input", name, tuple(s)) for name, s in inputs.items()]
    result = fn(pvars, *ivars) if pvars is not None else fn(*ivars)
    named = _flatten_outputs(result, "out")
    if not named:
        raise TracingError("the traced function returned no tensors")
    return builder.finish([(name, _as_var(builder, name, v)) for name, v in named])


def trace_model(model: Any, input_shape: Sequence[int], field: str | Field = "float",
                param_shapes: Mapping[str, Sequence[int]] | None = None,
                buffers: Mapping[str, Any] | None = None) -> Graph:
    """The graph of a built nn model's eval-mode forward (its own buffers, or `buffers`,
    as constants): the parameters as graph params named as in the model, with
    `param_shapes` or the model's own shapes, and one input "x" of `input_shape`; the
    output is "out"."""
    forward = getattr(model, "forward", None)
    params = getattr(model, "params", None)
    if forward is None or (param_shapes is None and params is None):
        raise TypeError(f"expected a Graph or a built nn model, got {type(model)}")
    shapes: Mapping[str, Sequence[int]] = param_shapes if param_shapes is not None else {
        k: v.shape for k, v in (params or {}).items()}

    def run(p: Any, x: Any) -> Any:
        if buffers is not None:
            return forward(p, x, buffers=buffers, mode="eval")[0]
        return forward(p, x, mode="eval")[0]

    return trace(run, {"x": tuple(input_shape)}, shapes, field=field)


def as_graph(model_or_graph: Any, input_shape: Sequence[int] | None,
             field: str | Field = "float",
             param_shapes: Mapping[str, Sequence[int]] | None = None,
             buffers: Mapping[str, Any] | None = None) -> Graph:
    """A `Graph` itself, or a built nn model's graph (`trace_model`, which needs
    `input_shape`)."""
    if isinstance(model_or_graph, Graph):
        return model_or_graph
    if getattr(model_or_graph, "forward", None) is None:
        raise TypeError(f"expected a Graph or a built nn model, got {type(model_or_graph)}")
    if input_shape is None:
        raise ValueError("tracing a model needs the input shape")
    return trace_model(model_or_graph, input_shape, field, param_shapes, buffers)


def graph_from_tape(
    tape: Any,
    outputs: Any = None,
    params: Iterable[str] = (),
) -> Graph:
    """The graph of the ops recorded on an eager `Tape`.

    Leaves become inputs (or parameters, for the leaf names in `params`), named by their
    tape names (`leaf<i>` when unnamed). Operands that were not on the tape (lifted numbers,
    captured or undifferentiated tensors) become literals holding their recorded values.
    `outputs` is a Traced value, a tape index, or a mapping of names to either; by default
    the last recorded node, named "out".
    """
    from ..tape import Tape, Traced

    if not isinstance(tape, Tape):
        raise TypeError(f"from_tape: expected a Tape, got {type(tape).__name__}")
    if not tape.nodes:
        raise GraphError("from_tape: the tape is empty")
    field = tape.nodes[0].output.field
    builder = GraphBuilder(field)
    param_names = set(params)
    ids: dict[int, Var] = {}
    used: set[str] = set()
    for node in tape.nodes:
        if node.op is None:
            name = node.name or f"leaf{node.index}"
            while name in used:
                name += "'"
            used.add(name)
            kind = "param" if name in param_names else "input"
            ids[node.index] = builder.leaf(kind, name, node.output.shape)
            continue
        args = []
        for parent, primal in zip(node.parents, node.inputs, strict=True):
            if parent is not None:
                args.append(ids[parent])
            elif isinstance(primal, Tensor):
                args.append(builder.literal(primal.data))
            else:
                raise GraphError(
                    f"from_tape: tape node #{node.index} ({node.tag}) has an operand that is "
                    f"not a concrete tensor ({type(primal).__name__}); only first-level "
                    "tapes over concrete values can be converted"
                )
        ids[node.index] = builder.copy(
            Node(0, node.op.tag, (), freeze_attrs(
                {k: freeze_attr(v, node.tag) for k, v in node.attrs.items()}
            ), node.output.shape),
            args,
        )
    missing = param_names - used
    if missing:
        raise KeyError(f"from_tape: no leaves named {sorted(missing)}; leaves: {sorted(used)}")
    if outputs is None:
        outputs = {"out": len(tape.nodes) - 1}
    elif not isinstance(outputs, Mapping):
        outputs = {"out": outputs}

    def index(v: Traced | int) -> int:
        if isinstance(v, Traced):
            if v.tape is not tape or v.index is None:
                raise GraphError("from_tape: an output is not a value on this tape")
            return v.index
        if not 0 <= v < len(tape.nodes):
            raise GraphError(f"from_tape: output index {v} is not on the tape")
        return v

    return builder.finish([(str(k), ids[index(v)]) for k, v in outputs.items()])

