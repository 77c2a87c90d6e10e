"""The runner's compiled backend: the model and its loss traced once into a graph,
differentiated in the IR, simplified and lowered, then run for every step.

Programs are cached per (train or predict, mode, input shapes, buffer shapes). Buffers
(batch norm statistics) are graph inputs and their updates graph outputs, so train mode
works; a dropout layer active in train mode needs a fresh mask each step and is refused
with a clear error rather than baked into the graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec.errors import UnsupportedOperation
from ..spec.nn import Mode
from ..spec.tensor import Tensor
from ..spec.value import Value
from .graph import compile_graph, grad_graph, simplify, trace
from .graph.executor import CompiledGraph
from .tasks import Task

__all__ = ["CompiledBackend"]

Grads = dict[str, Tensor]


def _refuse_dropout(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
    raise UnsupportedOperation(
        "dropout", like.field.name,
        f"the compiled backend cannot yet vary dropout masks per step ({name}); "
        "use backend='eager' for models with dropout in train mode",
    )


class CompiledBackend:
    """Predictions, losses and gradients from compiled graphs of the task."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._programs: dict[tuple[Any, ...], tuple[CompiledGraph, tuple[str, ...]]] = {}

    def _program(
        self, train: bool, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
        x: Tensor, y: Tensor | None, mode: Mode,
    ) -> tuple[CompiledGraph, tuple[str, ...]]:
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
                key=0 if mode == "train" else None, constant=_refuse_dropout,
            )
            if yv is None:
                return out
            return {"loss": task.loss(out, yv), **{f"buffer:{k}": new[k] for k in names}}

        graph = trace(fn, inputs, {k: t.shape for k, t in params.items()}, model.field)
        if train:  # differentiate first, then simplify: keeps eager's summation order
            graph = grad_graph(graph, list(params), loss="out.loss")
        program = compile_graph(simplify(graph))
        self._programs[key] = (program, names)
        return program, names

    def predict(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        mode: Mode, key: int | None,
    ) -> Tensor:
        program, names = self._program(False, params, buffers, x, None, mode)
        values = {**params, "x": x, **{f"buffer:{k}": buffers[k] for k in names}}
        return program(values)["out"]

    def loss_and_grads(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        y: Tensor, mode: Mode, key: int | None,
    ) -> tuple[Tensor, Grads, dict[str, Tensor]]:
        program, names = self._program(True, params, buffers, x, y, mode)
        values = {**params, "x": x, "y": y, **{f"buffer:{k}": buffers[k] for k in names}}
        outs = program(values)
        grads = {k: outs[f"grad:{k}"] for k in params}
        return outs["out.loss"], grads, {k: outs[f"out.buffer:{k}"] for k in names}
