"""The runner's compiled backend: the model and its loss traced once into a graph,
differentiated in the IR, simplified and lowered, then run for every step; and the
optimizer's tensor update traced once into a graph of its own.

Training programs are cached per (train or predict, mode, input shapes, buffer shapes).
Buffers (batch norm statistics) are graph inputs and their updates graph outputs, so
train mode works; a dropout layer active in train mode needs a fresh mask each step and
is refused with a clear error rather than baked into the graph. A training program
outputs the gradients already packed into one flat vector (`FlatGrads`), the form the
update takes.

Update programs are cached per (optimizer, first update or not, coefficient names,
slots, size). Their inputs are the flat parameters, flat gradients, state buffers and
the update's 0-d coefficients (`Optimizer.coefficients`, computed per step exactly as
the eager update computes them), so one program serves every step, and each op in it is
the op eager runs: a compiled step gives the eager step's bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import functional as F
from ..spec.errors import FieldMismatchError, UnsupportedOperation
from ..spec.fields import Field
from ..spec.nn import Mode, host_constant
from ..spec.shapes import size_of
from ..spec.tensor import Tensor
from ..spec.value import Value
from .flat import FlatGrads, FlatLayout
from .graph import GraphBuilder, Var, compile_graph, grad_graph, grad_name, simplify, trace
from .graph.executor import CompiledGraph
from .graph.ir import Graph
from .optim import Optimizer, OptState
from .tasks import Task

__all__ = ["CompiledBackend", "CompiledUpdate"]

_FLAT_GRADS = "grads"  # the training graph's output holding every gradient, flattened


def _bake_constants(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
    """Host constants of a pass become graph literals, except dropout masks (named
    "<path>.mask"), which change every step and so cannot be baked in."""
    if name.endswith(".mask"):
        raise UnsupportedOperation(
            "dropout", like.field.name,
            f"the compiled backend cannot yet vary dropout masks per step ({name}); "
            "use backend='eager' for models with dropout in train mode",
        )
    return host_constant(like, name, array)


def with_flat_grads(graph: Graph, layout: FlatLayout) -> Graph:
    """`graph` with its gradient outputs (`grad:<name>`) replaced by one output "grads":
    them reshaped to 1-D and concatenated in `layout` order, as `layout.flatten` does."""
    builder = GraphBuilder(layout.field)
    env: list[Var] = []
    for n in graph.nodes:
        if n.is_leaf:
            env.append(builder.leaf(n.op, str(n.attr("name")), n.shape))
        else:
            env.append(builder.copy(n, [env[a] for a in n.args]))
    outs = dict(graph.outputs)
    parts = [F.reshape(env[outs[grad_name(k)]], (size_of(s),))
             for k, s in zip(layout.names, layout.shapes, strict=True)]
    grads = {grad_name(k) for k in layout.names}
    kept = [(name, env[i]) for name, i in graph.outputs if name not in grads]
    return builder.finish([*kept, (_FLAT_GRADS, F.concat(parts, 0))])


@dataclass(frozen=True)
class _Program:
    """A compiled training or predict program with its leaf and output order."""

    compiled: CompiledGraph
    buffer_names: tuple[str, ...]
    leaves: tuple[str, ...]
    outputs: tuple[str, ...]
    layout: FlatLayout | None


def _arrays(field: Field, values: Mapping[str, Tensor], leaves: Sequence[str]) -> list[Any]:
    out = []
    for name in leaves:
        t = values[name]
        if t.field is not field:
            raise FieldMismatchError(f"{name}: a tensor of field {t.field}, the runner's is "
                                     f"{field}")
        out.append(t.data)
    return out


class CompiledBackend:
    """Predictions, losses and gradients from compiled graphs."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._programs: dict[tuple[Any, ...], _Program] = {}

    def _program(
        self, train: bool, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
        x: Tensor, y: Tensor | None, mode: Mode,
    ) -> _Program:
        key = (train, mode, x.shape, None if y is None else y.shape,
               tuple((k, b.shape) for k, b in buffers.items()))
        found = self._programs.get(key)
        if found is not None:
            return found
        model, task = self.task.model, self.task
        names = tuple(buffers)
        inputs: dict[str, tuple[int, ...]] = {"x": x.shape}
        if y is not None:
            inputs["y"] = y.shape
        inputs.update({f"buffer:{k}": b.shape for k, b in buffers.items()})

        def fn(p: Mapping[str, Value], xv: Value, *rest: Value) -> Any:
            yv, bvals = (rest[0], rest[1:]) if y is not None else (None, rest)
            out, new = model.forward(
                p, xv, buffers=dict(zip(names, bvals, strict=True)), mode=mode,
                key=0 if mode == "train" else None, constant=_bake_constants,
            )
            if yv is None:
                return out
            return {"loss": task.loss(out, yv), **{f"buffer:{k}": new[k] for k in names}}

        graph = trace(fn, inputs, {k: t.shape for k, t in params.items()}, model.field)
        layout = None
        if train:  # differentiate first, then simplify: keeps eager's summation order
            graph = simplify(grad_graph(graph, list(params), loss="out.loss"))
            if params:
                layout = FlatLayout.of(params, model.field)
                graph = with_flat_grads(graph, layout)
        else:
            graph = simplify(graph)
        program = _Program(
            compile_graph(graph), names, tuple(n.name for n in graph.leaves),
            tuple(name for name, _ in graph.outputs), layout,
        )
        self._programs[key] = program
        return program

    def _run(self, program: _Program, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        field = self.task.model.field
        outs = program.compiled.run_arrays(_arrays(field, values, program.leaves))
        return {name: Tensor(a, field) for name, a in zip(program.outputs, outs, strict=True)}

    def predict(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        mode: Mode, key: int | None,
    ) -> Tensor:
        program = self._program(False, params, buffers, x, None, mode)
        values = {**params, "x": x, **{f"buffer:{k}": buffers[k] for k in program.buffer_names}}
        return self._run(program, values)["out"]

    def loss_and_grads(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        y: Tensor, mode: Mode, key: int | None,
    ) -> tuple[Tensor, Mapping[str, Tensor], dict[str, Tensor]]:
        program = self._program(True, params, buffers, x, y, mode)
        names = program.buffer_names
        values = {**params, "x": x, "y": y, **{f"buffer:{k}": buffers[k] for k in names}}
        outs = self._run(program, values)
        grads: Mapping[str, Tensor] = (
            FlatGrads(program.layout, outs[_FLAT_GRADS]) if program.layout is not None else {}
        )
        return outs["out.loss"], grads, {k: outs[f"out.buffer:{k}"] for k in names}

class CompiledUpdate:
    """Optimizer updates of a flat parameter vector, each run as one compiled program.

    The program is traced once per (optimizer, first update or not, coefficients, state
    slots, size, field) from the optimizer's step-independent `tensor_update`; the
    step-dependent coefficients are its scalar inputs. The result has the same bits as
    `optimizer.update`, op by op (like PyTorch's fused optimizers, whatever the backend
    that computed the gradients)."""

    def __init__(self) -> None:
        self._updates: dict[tuple[Any, ...], tuple[CompiledGraph, Optimizer]] = {}

    def _update_program(
        self, optimizer: Optimizer, field: Field, size: int, first: bool,
        coeffs: tuple[str, ...], slots: tuple[str, ...],
    ) -> CompiledGraph:
        try:
            key: tuple[Any, ...] = (optimizer, first, coeffs, slots, size, field.name)
            found = self._updates.get(key)
        except TypeError:  # an unhashable schedule: key by identity, holding the optimizer
            key = (id(optimizer), first, coeffs, slots, size, field.name)
            found = self._updates.get(key)
        if found is not None:
            return found[0]
        inputs = {"params": (size,), "grads": (size,), **{f"state:{s}": (size,) for s in slots},
                  **{f"coef:{c}": () for c in coeffs}}

        def fn(p: Value, g: Value, *rest: Value) -> list[Value]:
            bufs = {s: {"p": b} for s, b in zip(slots, rest[:len(slots)], strict=True)}
            cs = dict(zip(coeffs, rest[len(slots):], strict=True))
            new, new_bufs = optimizer.tensor_update({"p": p}, {"p": g}, bufs, cs, first)
            return [new["p"], *(new_bufs[s]["p"] for s in slots)]

        program = compile_graph(trace(fn, inputs, None, field))
        self._updates[key] = (program, optimizer)  # holding it keeps an id key unique
        return program

    def apply(
        self, optimizer: Optimizer, flat: Tensor, grads: Tensor, state: OptState[Any],
    ) -> tuple[Tensor, OptState[Any]]:
        """`optimizer.update` of one flat parameter vector (the state's buffers keyed by the
        name "params"), run as one compiled program; the same bits as the eager update."""
        field = flat.field
        if grads.field is not field or grads.shape != flat.shape:
            raise FieldMismatchError(f"update: flat grads of shape {grads.shape} over "
                                     f"{grads.field} for parameters {flat.shape} over {field}")
        coeffs = optimizer.coefficients(flat, state.step)
        slots = tuple(state.buffers)
        first = state.step == 0 and optimizer.first_update_differs()
        program = self._update_program(
            optimizer, field, flat.shape[0], first, tuple(coeffs), slots
        )
        arrays = [flat.data, grads.data, *(state.buffers[s]["params"].data for s in slots),
                  *(c.data for c in coeffs.values())]
        new, *bufs = program.run_arrays(arrays)
        return Tensor(new, field), OptState(
            state.step + 1,
            {s: {"params": Tensor(b, field)} for s, b in zip(slots, bufs, strict=True)},
        )
