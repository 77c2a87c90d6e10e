"""The runner's compiled backend: the model and its loss traced once into a graph,
differentiated in the IR, simplified and lowered, then run for every step; and the
optimizer's tensor update traced once into a graph of its own.

Training programs are cached per (train or predict, mode, input shapes, buffer shapes).
Buffers (batch norm statistics) are graph inputs and their updates graph outputs, so
train mode works. Dropout masks in train mode are graph inputs too: a first trace finds
every mask's name and shape, and each step draws them from the step's key with
`dropout_mask`, exactly as eager does, so a compiled step gives eager's bits. A training
program outputs the gradients already packed into one flat vector (`FlatGrads`), the
form the update takes.

Update programs are cached per (optimizer, first update or not, coefficient names,
slots, size). Their inputs are the flat parameters, flat gradients, state buffers and
the update's 0-d coefficients (`Optimizer.coefficients`, computed per step exactly as
the eager update computes them), so one program serves every step, and each op in it is
the op eager runs: a compiled step gives the eager step's bits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import functional as F
from ..spec.errors import FieldMismatchError, UnsupportedOperation
from ..spec.fields import Field
from ..spec.nn import Dropout, Mode, Module, dropout_mask, host_constant
from ..spec.shapes import Shape, size_of
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
_MASK = "mask"  # a dropout layer's constant: "<path>.mask" (just "mask" at the root)
Constant = Callable[[Value, str, np.ndarray[Any, Any]], Value]


def _is_mask(name: str) -> bool:
    return name == _MASK or name.endswith("." + _MASK)


def _mask_path(name: str) -> str:
    return name[: -len(_MASK) - 1] if name != _MASK else ""


def dropout_layers(model: Module, path: str = "") -> dict[str, float]:
    """The drop probability of every dropout layer of `model`, by layer path."""
    found = {path: model.p} if isinstance(model, Dropout) else {}
    for name, child in model.children():
        found.update(dropout_layers(child, f"{path}.{name}" if path else name))
    return found


def _bake_constants(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
    """Host constants of a pass become graph literals (dropout masks never get here:
    they are graph inputs)."""
    if _is_mask(name):  # a mask the discovery trace did not see: never bake it in
        raise UnsupportedOperation(
            "dropout", like.field.name,
            f"{name}: a per-step mask that is not a graph input; use backend='eager'")
    return host_constant(like, name, array)


def _mask_inputs(fn: Callable[[Constant], Callable[..., Any]], inputs: dict[str, Shape],
                 params: dict[str, Shape], field: Field,
                 layers: Mapping[str, float]) -> dict[str, Shape]:
    """The names and shapes of the dropout masks one train-mode pass draws, found by a
    first trace whose masks are baked (that graph is thrown away)."""
    masks: dict[str, Shape] = {}

    def collect(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
        if _is_mask(name):
            if _mask_path(name) not in layers:
                raise UnsupportedOperation(
                    "dropout", field.name, f"{name}: a mask constant of no dropout layer")
            if name in masks:
                raise UnsupportedOperation(
                    "dropout", field.name,
                    f"{name}: the layer draws two masks in one pass (a layer applied twice); "
                    "use backend='eager'")
            masks[name] = tuple(array.shape)
        return host_constant(like, name, array)

    trace(fn(collect), inputs, params, field)
    return masks


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
    masks: tuple[tuple[str, Shape], ...]
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
        self._dropout = dropout_layers(task.model.model)

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

        def with_constants(constant: Constant) -> Callable[..., Any]:
            def fn(p: Mapping[str, Value], xv: Value, *rest: Value) -> Any:
                yv, rest = (rest[0], rest[1:]) if y is not None else (None, rest)
                bvals = rest[:len(names)]
                out, new = model.forward(
                    p, xv, buffers=dict(zip(names, bvals, strict=True)), mode=mode,
                    key=0 if mode == "train" else None, constant=constant,
                )
                if yv is None:
                    return out
                return {"loss": task.loss(out, yv), **{f"buffer:{k}": new[k] for k in names}}
            return fn

        pshapes = {k: t.shape for k, t in params.items()}
        masks: dict[str, Shape] = {}
        if mode == "train" and self._dropout:
            masks = _mask_inputs(with_constants, inputs, pshapes, model.field, self._dropout)
        inputs.update({f"mask:{k}": s for k, s in masks.items()})
        n_fixed = len(inputs) - len(masks) - 1  # y and buffers, after x

        def traced(p: Mapping[str, Value], xv: Value, *rest: Value) -> Any:
            mvals = dict(zip(masks, rest[n_fixed:], strict=True))

            def constant(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
                return mvals[name] if name in mvals else _bake_constants(like, name, array)

            return with_constants(constant)(p, xv, *rest[:n_fixed])

        graph = trace(traced, inputs, pshapes, model.field)
        layout = None
        if train:  # differentiate first, then simplify: keeps eager's summation order
            graph = simplify(grad_graph(graph, list(params), loss="out.loss"))
            if params:
                layout = FlatLayout.of(params, model.field)
                graph = with_flat_grads(graph, layout)
        else:
            graph = simplify(graph)
        program = _Program(
            compile_graph(graph), names, tuple(masks.items()), tuple(n.name for n in graph.leaves),
            tuple(name for name, _ in graph.outputs), layout,
        )
        self._programs[key] = program
        return program

    def _masks(self, program: _Program, x: Tensor, key: int | None) -> dict[str, Tensor]:
        """This step's dropout masks, drawn as eager draws them, on x's device."""
        if not program.masks:
            return {}
        if key is None:
            raise ValueError("train mode with dropout needs a key to draw the masks")
        out = {}
        for name, shape in program.masks:
            path = _mask_path(name)
            keep = dropout_mask(key, path, shape, self._dropout[path]).astype(np.float64)
            mask = host_constant(x, name, keep)
            assert isinstance(mask, Tensor)  # x is concrete
            out[f"mask:{name}"] = mask
        return out

    def _run(self, program: _Program, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        field = self.task.model.field
        outs = program.compiled.run_arrays(_arrays(field, values, program.leaves))
        return {name: Tensor(a, field) for name, a in zip(program.outputs, outs, strict=True)}

    def predict(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        mode: Mode, key: int | None,
    ) -> Tensor:
        program = self._program(False, params, buffers, x, None, mode)
        values = {**params, "x": x, **{f"buffer:{k}": buffers[k] for k in program.buffer_names},
                  **self._masks(program, x, key)}
        return self._run(program, values)["out"]

    def loss_and_grads(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        y: Tensor, mode: Mode, key: int | None,
    ) -> tuple[Tensor, Mapping[str, Tensor], dict[str, Tensor]]:
        program = self._program(True, params, buffers, x, y, mode)
        names = program.buffer_names
        values = {**params, "x": x, "y": y, **{f"buffer:{k}": buffers[k] for k in names},
                  **self._masks(program, x, key)}
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
