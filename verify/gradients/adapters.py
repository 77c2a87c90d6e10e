"""What gradient checks accept: plain functions, built models, tasks, and whatever is
registered later (compiled graphs), each turned into one `Problem`: a scalar function,
its arguments, which of them are differentiated, and how their entries are named.

Built-in shapes (duck-typed, so they work before and after `nn`/`train` exist):
- a callable f(*inputs) -> scalar Value;
- a model: an object with `params` (a mapping of names to tensors) and
  `apply(params, x)` (and `apply(params, x, buffers=...)` when it has non-empty
  `buffers`); differentiated with respect to its parameters and its input;
  with `target` and `loss` the function is loss(apply(params, x), target), without them
  <apply(params, x), w> for a fixed random cotangent w (checking one vector-Jacobian
  product of the model);
- a task: an object with `model` (as above) and `loss(prediction, target)`.
`register_adapter` adds a new kind (e.g. a compiled graph) without touching the checker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec import functional as F
from ...spec.fields import float64
from ...spec.tensor import Tensor
from ...spec.value import Value
from .trees import Tree

__all__ = ["Problem", "Adapter", "register_adapter", "as_problem", "as_tensors"]

WRT_CHOICES = ("params", "input")


@dataclass(frozen=True)
class Problem:
    """A scalar function with its arguments: f(*args) -> scalar Value.

    `argnums` are the differentiated arguments; `prefixes[i]` names the entries of
    argument i in reports (None: the default naming of `trees.named_leaves`).
    """

    f: Callable[..., Value]
    args: tuple[Tree, ...]
    argnums: tuple[int, ...]
    prefixes: tuple[str, ...] | None = None
    kind: str = "function"


# An adapter returns a Problem for objects it recognises, None otherwise.
Adapter = Callable[..., "Problem | None"]
_ADAPTERS: list[Adapter] = []


def register_adapter(adapter: Adapter) -> Adapter:
    """Add an adapter, tried before the built-in ones (newest first). It is called as
    adapter(obj, inputs, target=..., loss=..., wrt=..., argnums=..., seed=...)."""
    _ADAPTERS.insert(0, adapter)
    return adapter


def as_tensors(tree: Any) -> Any:
    """Inputs with NumPy arrays and Python floats turned into binary64 tensors."""
    if isinstance(tree, Value):
        return tree
    if isinstance(tree, np.ndarray) or isinstance(tree, (float, np.floating)):
        return Tensor(float64.asarray(np.asarray(tree, dtype=np.float64)), float64)
    if isinstance(tree, Mapping):
        return {k: as_tensors(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(as_tensors(v) for v in tree)
    return tree


def _is_model(obj: object) -> bool:
    return isinstance(getattr(obj, "params", None), Mapping) and callable(
        getattr(obj, "apply", None)
    )


def _wrt(wrt: str | Sequence[str] | None) -> tuple[str, ...]:
    chosen = WRT_CHOICES if wrt is None else ((wrt,) if isinstance(wrt, str) else tuple(wrt))
    bad = [w for w in chosen if w not in WRT_CHOICES]
    if bad or not chosen:
        raise ValueError(f"gradcheck: wrt must be among {WRT_CHOICES}, got {wrt!r}")
    return chosen


def _model_problem(
    model: Any,
    x: Any,
    loss: Callable[[Value, Value], Value] | None,
    target: Any,
    wrt: str | Sequence[str] | None,
    seed: int,
    kind: str,
) -> Problem:
    if isinstance(x, (tuple, list)) and len(x) == 1:
        x = x[0]
    x = as_tensors(x)
    if not isinstance(x, Value):
        raise TypeError(f"gradcheck: a model takes one input tensor, got {type(x).__name__}")
    params = dict(as_tensors(dict(model.params)))
    chosen = _wrt(wrt)
    argnums = tuple(i for i, w in enumerate(WRT_CHOICES) if w in chosen)
    if (loss is None) != (target is None):
        raise ValueError("gradcheck: a model needs both target and loss, or neither")
    # Buffers (e.g. batch-norm statistics) travel as a non-differentiated argument, so
    # every method sees them in its own field rather than as captured constants.
    raw_buffers = getattr(model, "buffers", None)
    buffers = dict(as_tensors(dict(raw_buffers))) if isinstance(raw_buffers, Mapping) else {}

    def run(p: Any, xin: Value, b: Any) -> Value:
        out: Value = model.apply(p, xin, buffers=b) if b else model.apply(p, xin)
        return out

    names = ("", "input", "target" if loss is not None else "cotangent", "buffers")
    if loss is not None:
        y = as_tensors(target)

        def with_loss(p: Any, xin: Value, t: Value, b: Any) -> Value:
            return loss(run(p, xin, b), t)

        return Problem(with_loss, (params, x, y, buffers), argnums, names, kind)
    out = run(params, x, buffers)
    rng = np.random.default_rng(seed)
    # A fixed cotangent w with entries m / 16: exact in every field, varied enough that a
    # wrong Jacobian entry shows.
    w = Tensor(float64.asarray(rng.integers(-16, 17, size=out.shape) / 16.0), float64)

    def projected(p: Any, xin: Value, wt: Value, b: Any) -> Value:
        return F.sum(run(p, xin, b) * wt)

    return Problem(projected, (params, x, w, buffers), argnums, names, kind)


def as_problem(
    obj: Any,
    inputs: Any,
    *,
    argnums: int | Sequence[int] | None = None,
    target: Any = None,
    loss: Callable[[Value, Value], Value] | None = None,
    wrt: str | Sequence[str] | None = None,
    seed: int = 0,
) -> Problem:
    """The Problem a gradient check of `obj` at `inputs` is about (see module docstring)."""
    for adapter in _ADAPTERS:
        found = adapter(obj, inputs, target=target, loss=loss, wrt=wrt, argnums=argnums,
                        seed=seed)
        if found is not None:
            return found
    task_model = getattr(obj, "model", None)
    if task_model is not None and _is_model(task_model) and callable(getattr(obj, "loss", None)):
        if target is None:
            raise ValueError("gradcheck: checking a task needs target=...")
        return _model_problem(task_model, inputs, loss or obj.loss, target, wrt, seed, "task")
    if _is_model(obj):
        return _model_problem(obj, inputs, loss, target, wrt, seed, "model")
    if not callable(obj):
        raise TypeError(
            f"gradcheck: expected a function, a model (params + apply) or a task "
            f"(model + loss), got {type(obj).__name__}"
        )
    if target is not None or loss is not None or wrt is not None:
        raise ValueError("gradcheck: target/loss/wrt apply to models and tasks, not functions")
    args = tuple(as_tensors(inputs)) if isinstance(inputs, (tuple, list)) else (as_tensors(inputs),)
    if argnums is None:
        nums = tuple(
            i for i, a in enumerate(args) if isinstance(a, (Value, Mapping, tuple, list))
        )
    else:
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not 0 <= i < len(args):
            raise ValueError(f"gradcheck: argnums {argnums!r} out of range for {len(args)} inputs")
    if not nums:
        raise ValueError("gradcheck: no tensor inputs to differentiate with respect to")
    return Problem(obj, args, nums)
