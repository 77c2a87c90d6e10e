"""`build(model, seed, dtype)`: fix a model's initial parameters; `Built`, the trainable
package of structure plus explicit, named, ordered parameters and buffers.

Initialisation follows PyTorch's per-layer defaults (see each layer's docstring: Linear
U(-1/sqrt(in), 1/sqrt(in)) for weight and bias; LayerNorm/BatchNorm weight 1, bias 0;
BatchNorm running_mean 0, running_var 1). Every parameter is drawn in binary64 from its
own stream, a pure function of (seed, parameter name) (see `draws`), then converted to
the chosen field, so a model is initialised identically on every machine, and
inserting a layer does not change the other layers' initial values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar, cast, overload

import numpy as np

from ..errors import ShapeError
from ..fields import Field, get_field
from ..tensor import Tensor
from ..value import Value
from .context import ConstantHook, Context, Mode, host_constant
from .draws import INIT, check_seed, uniform01
from .forward import StateSpecs, check_state, forward, state_specs
from .layer import LayerLike, Module, ParamSpec, SameShape

__all__ = ["Built", "build", "check_input_shape", "initial_values"]

V = TypeVar("V", bound=Value)
In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)
X = TypeVar("X")
Y = TypeVar("Y")


def initial_values(spec: ParamSpec, seed: int, name: str) -> np.ndarray[Any, Any]:
    """The binary64 initial values of parameter/buffer `name` for `seed`."""
    if spec.init == "zeros":
        return np.zeros(spec.shape)
    if spec.init == "ones":
        return np.ones(spec.shape)
    u = uniform01(seed, name, INIT, spec.shape)
    return (2.0 * u - 1.0) * spec.bound  # U(-bound, bound)


@dataclass(frozen=True, eq=False, repr=False)
class Built(Generic[In, Out]):
    """A model with its parameters and buffers: what training and verification work on.

    `params` and `buffers` are read-only mappings from names ("0.weight", "0.bias",
    "3.running_mean", PyTorch state_dict style) to tensors of `field`, in model order.
    `apply` is a pure function of the parameters given to it; `with_state` makes the
    package for new parameters. The static type carries the model's input and output
    shape types, so `apply` rejects (in mypy) an input of the wrong shape type.
    """

    model: Module
    params: Mapping[str, Tensor]
    buffers: Mapping[str, Tensor]
    field: Field
    seed: int
    specs: StateSpecs

    # -- running -----------------------------------------------------------------
    def apply(
        self,
        params: Mapping[str, Tensor],
        x: Tensor[In],
        mode: Mode = "eval",
        key: int | None = None,
        buffers: Mapping[str, Tensor] | None = None,
    ) -> Tensor[Out]:
        """The model's output for input `x` with parameters `params` (buffers default to
        the package's). In train mode the updated buffers are dropped; use
        `apply_with_buffers` to keep them. Runs any Value kind; its types speak of concrete
        tensors (`forward` keeps a tape or graph value's kind in the types)."""
        out, _ = self.apply_with_buffers(params, x, mode, key, buffers)
        return out

    def apply_with_buffers(
        self,
        params: Mapping[str, Tensor],
        x: Tensor[In],
        mode: Mode = "train",
        key: int | None = None,
        buffers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor[Out], dict[str, Tensor]]:
        """The output and the buffers after the pass: updated in train mode (the default
        here), returned unchanged in eval mode; nothing is mutated."""
        out, new = self.forward(
            cast("Mapping[str, Value]", params),
            cast(Value, x),
            buffers=buffers,
            mode=mode,
            key=key,
        )
        return cast("Tensor[Out]", out), cast("dict[str, Tensor]", new)

    def forward(
        self,
        params: Mapping[str, V],
        x: V,
        *,
        buffers: Mapping[str, Value] | None = None,
        mode: Mode = "eval",
        key: int | None = None,
        constant: ConstantHook = host_constant,
    ) -> tuple[V, dict[str, V]]:
        """The generic pass for any Value kind V (tape values, graph values): output and
        updated buffers. Buffers default to the package's tensors, which every kind lifts
        as constants (so an unchanged buffer may come back as a concrete tensor);
        `constant` turns dropout masks into values of the running kind."""
        # Buffers of another kind than V combine with V through the op table's coercion.
        state = cast("Mapping[str, V]", self.buffers if buffers is None else buffers)
        ctx = Context(mode, key, constant)
        return forward(self.model, params, state, x, ctx, specs=self.specs)

    def __call__(self, x: Tensor[In]) -> Tensor[Out]:
        """The output for `x` with the package's own parameters and buffers, in eval mode."""
        return self.apply(self.params, x)

    # -- new packages --------------------------------------------------------------
    def with_state(
        self,
        params: Mapping[str, Tensor] | None = None,
        buffers: Mapping[str, Tensor] | None = None,
    ) -> Built[In, Out]:
        """The same model with new parameters and/or buffers (names, shapes and field are
        checked against the package)."""
        new_params = dict(self.params if params is None else params)
        new_buffers = dict(self.buffers if buffers is None else buffers)
        check_state(self.specs, new_params, new_buffers, self.field)
        return _package(self.model, new_params, new_buffers, self.field, self.seed, self.specs)

    def to(self, dtype: str | Field) -> Built[In, Out]:
        """The package with every parameter and buffer converted to field `dtype` (as that
        field converts numbers: exactly into exact/interval, rounded into float32, ...)."""
        field = get_field(dtype)

        def convert(t: Tensor) -> Tensor:
            return Tensor(field.asarray(t.numpy()), field)

        return _package(
            self.model,
            {k: convert(v) for k, v in self.params.items()},
            {k: convert(v) for k, v in self.buffers.items()},
            field,
            self.seed,
            self.specs,
        )

    # -- description -----------------------------------------------------------------
    @property
    def num_params(self) -> int:
        """The number of trainable scalars."""
        return sum(t.size for t in self.params.values())

    def __repr__(self) -> str:
        rows = [f"Built({self.model!r}, dtype={self.field}, seed={self.seed})"]
        for kind, state in (("param", self.params), ("buffer", self.buffers)):
            rows.extend(f"  {kind} {name}: {t.shape}" for name, t in state.items())
        return "\n".join(rows)


def _package(
    model: Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    field: Field,
    seed: int,
    specs: StateSpecs,
) -> Built[Any, Any]:
    return Built(model, MappingProxyType(params), MappingProxyType(buffers), field, seed, specs)


@overload
def build(
    model: SameShape, seed: int = 0, dtype: str | Field = "float",
    input_shape: Sequence[int] | None = None,
) -> Built[Any, Any]: ...
@overload
def build(model: LayerLike[X, Y], seed: int = 0, dtype: str | Field = "float",
          input_shape: Sequence[int] | None = None) -> Built[X, Y]: ...
def build(model: Any, seed: int = 0, dtype: str | Field = "float",
          input_shape: Sequence[int] | None = None) -> Built[Any, Any]:
    """Initialise `model` from `seed` in field `dtype` ("float", "float32", "ieee32exec",
    "exact", "interval"): the trainable package (see `Built`).

    Parameters are named PyTorch state_dict style ("0.weight", "2.block.0.bias") and
    initialised by PyTorch's per-layer defaults; the same seed gives the same values on
    every machine. A negative or non-int seed raises ValueError. With `input_shape`
    (e.g. (1, 28, 28)), the shapes are checked through the whole model now, by one
    eval-mode pass over zeros in binary64: what mypy cannot type (a convolution's output
    size, a flatten feeding a linear layer) fails here with a ShapeError naming the layer.
    """
    if not isinstance(model, Module):
        raise TypeError(f"build: model must be a layer, got {type(model).__name__} {model!r}")
    seed = check_seed(seed, "build: seed")
    field = get_field(dtype)
    specs = state_specs(model)
    params: dict[str, Tensor] = {}
    buffers: dict[str, Tensor] = {}
    for table, out in ((specs[0], params), (specs[1], buffers)):
        for name, (spec, _, _) in table.items():
            out[name] = Tensor(field.asarray(initial_values(spec, seed, name)), field)
    built = _package(model, params, buffers, field, seed, specs)
    if input_shape is not None:
        check_input_shape(built, input_shape)
    return built


def check_input_shape(built: Built[Any, Any], input_shape: Sequence[int]) -> tuple[int, ...]:
    """The output shape of `built` for an input of `input_shape`, found by one eval-mode
    pass over zeros in binary64 (shapes do not depend on the field); a mismatch raises
    ShapeError naming the input shape and the layer."""
    shape = tuple(input_shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"build: input_shape must be non-negative ints, got {input_shape!r}")
    probe = built if built.field.name == "float" else built.to("float")
    zeros = Tensor(np.zeros(shape), probe.field)
    try:
        out, _ = probe.forward(probe.params, zeros, mode="eval")
    except ShapeError as e:
        raise ShapeError(f"build: input shape {shape}: {e}") from None
    return tuple(out.shape)
