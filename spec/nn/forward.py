"""The single forward definition of a model: `forward(model, params, buffers, x, ctx)`.

Generic over the Value kind: concrete spec tensors, tape values and symbolic graph values
all run through the same layer code. Parameters and buffers are plain mappings from names
("0.weight", "3.running_mean") to values; the pass returns the output and the updated
buffers, and mutates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from ..errors import FieldMismatchError, ShapeError
from ..fields import Field
from ..value import Value
from .context import Context
from .layer import Module, ParamSpec, Scope, describe_at, named_specs

__all__ = ["forward", "check_state", "StateSpecs", "state_specs"]

V = TypeVar("V", bound=Value)

# name -> (spec, layer path, layer), for parameters and for buffers, in model order
StateSpecs = tuple[
    dict[str, tuple[ParamSpec, str, Module]], dict[str, tuple[ParamSpec, str, Module]]
]


def state_specs(model: Module) -> StateSpecs:
    """The model's parameter and buffer declarations by full name, in model order."""
    params: dict[str, tuple[ParamSpec, str, Module]] = {}
    buffers: dict[str, tuple[ParamSpec, str, Module]] = {}
    for name, spec, path, layer in named_specs(model):
        (buffers if spec.buffer else params)[name] = (spec, path, layer)
    return params, buffers


def _check_names(what: str, expected: Mapping[str, object], given: Mapping[str, object]) -> None:
    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        raise ValueError(f"{what}: {'; '.join(parts)} (the model has {list(expected)})")


def check_state(
    specs: StateSpecs, params: Mapping[str, Value], buffers: Mapping[str, Value], field: Field
) -> None:
    """Check that params and buffers have exactly the model's names and shapes and are in
    `field` (the input's); errors name the parameter ("2.weight") and its layer."""
    for what, expected, given in (("params", specs[0], params), ("buffers", specs[1], buffers)):
        _check_names(what, expected, given)
        for name, (spec, path, layer) in expected.items():
            value = given[name]
            if not isinstance(value, Value):
                raise TypeError(f"{what}[{name!r}] must be a tensor, got {type(value).__name__}")
            if value.shape != spec.shape:
                raise ShapeError(
                    f"{what}[{name!r}] of {describe_at(path, layer)} has shape {value.shape}, "
                    f"expected {spec.shape}"
                )
            if value.field is not field:
                raise FieldMismatchError(
                    f"{what}[{name!r}] is in field {value.field}, expected {field} (the input's)"
                )


def forward(
    model: Module,
    params: Mapping[str, V],
    buffers: Mapping[str, V],
    x: V,
    ctx: Context | None = None,
    *,
    specs: StateSpecs | None = None,
) -> tuple[V, dict[str, V]]:
    """Run `model` on `x`: the output and the buffers after the pass (updated in train mode
    only; a new dict, the inputs are not mutated).

    `ctx` gives the mode ("eval" by default), the dropout key and the constant hook.
    `specs` (from `state_specs`) may be passed to skip recomputing the declarations.
    """
    if not isinstance(model, Module):
        raise TypeError(f"forward: model must be a layer, got {type(model).__name__}")
    if not isinstance(x, Value):
        raise TypeError(
            f"the model input must be a tensor (tl.tensor(data, dtype=...)), got "
            f"{type(x).__name__}"
        )
    check_state(specs if specs is not None else state_specs(model), params, buffers, x.field)
    updates: dict[str, V] = {}
    out = model.forward(x, Scope(params, buffers, ctx or Context(), "", updates))
    return out, {name: updates.get(name, value) for name, value in buffers.items()}
