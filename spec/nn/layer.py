"""Layers as pure descriptions: the run-time base `Module`, the typed bases, and `Scope`.

A layer holds no numbers. It declares its parameters and buffers (`ParamSpec`: a local
name, a shape and an initialisation rule) and computes its output only through the op
table, reading its parameters from a `Scope`, so one definition runs on every field and
every Value kind (concrete tensors, tape values, symbolic graph values).

Static typing: `Layer[In, Out]` is the type of a layer with fixed input and output shape
types; `SameShape` is the type of a shape-preserving layer (activations, dropout,
softmax), whose phantom `_shape_signature` is generic, so it fits between any two layers
whose shapes agree; `LayerLike[In, Out]` is the protocol both satisfy, and what every
function that accepts a layer takes. (A generic *function* `relu() -> Layer[S, S]` does
not work: inside `sequential(a, relu(), c)` mypy solves S to Never and reports false
errors; a non-generic class with a generic method is solved structurally instead, with
one such method per argument position of `sequential`, see `positions`.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, overload

from ..errors import ShapeError
from ..shapes import Shape
from ..value import Value
from .context import Context
from .positions import SameShapeSignatures

__all__ = [
    "Module", "Layer", "SameShape", "LayerLike", "ParamSpec", "Scope", "named_specs",
    "describe_at", "Sequential", "SameSequential", "chain", "splice", "run_child",
    "running_layer",
]

V = TypeVar("V", bound=Value)
In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)
A = TypeVar("A")
C = TypeVar("C")
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter or buffer of a layer: local name, shape and initial value rule.

    `init` is "uniform" (U(-bound, bound)), "zeros" or "ones". Buffers (`buffer=True`,
    e.g. batch norm's running statistics) are state, not trained.
    """

    name: str
    shape: Shape
    init: Literal["uniform", "zeros", "ones"]
    bound: float = 0.0
    buffer: bool = False


class Scope(Generic[V]):
    """What a layer's forward pass sees: its path in the model, its parameters and buffers,
    the context (mode, key), and where updated buffers go."""

    __slots__ = ("params", "buffers", "ctx", "path", "updates")

    def __init__(
        self,
        params: Mapping[str, V],
        buffers: Mapping[str, V],
        ctx: Context,
        path: str,
        updates: dict[str, V],
    ) -> None:
        self.params = params
        self.buffers = buffers
        self.ctx = ctx
        self.path = path
        self.updates = updates

    def child(self, name: str) -> Scope[V]:
        """The scope of the child layer `name` ("0", "block", ...)."""
        return Scope(self.params, self.buffers, self.ctx, self.qualify(name), self.updates)

    def qualify(self, local: str) -> str:
        """The full name of `local` inside this layer ("2" + "weight" -> "2.weight")."""
        return f"{self.path}.{local}" if self.path else local

    def where(self, layer: Module) -> str:
        """How error messages name `layer`: "layer 2 (linear 8->1)"."""
        return describe_at(self.path, layer)

    def param(self, local: str) -> V:
        """This layer's parameter `local` (presence and shape are checked before a pass)."""
        return self.params[self.qualify(local)]

    def buffer(self, local: str) -> V:
        """This layer's buffer `local`, as updated so far in this pass."""
        name = self.qualify(local)
        return self.updates.get(name, self.buffers[name])

    def update(self, local: str, value: V) -> None:
        """Record the new value of buffer `local` (returned by the pass, never mutated)."""
        self.updates[self.qualify(local)] = value


# The child layer whose forward is running (its path and the layer), for tracers to record
# which layer each op belongs to; formatted only when asked for.
_RUNNING: ContextVar[tuple[str, Module] | None] = ContextVar("running_layer", default=None)


def running_layer() -> str:
    """The innermost child layer whose forward is running, as `describe_at` names it
    ("layer 2 (linear 8->1)"); "" outside any (or at the root)."""
    running = _RUNNING.get()
    return describe_at(*running) if running is not None else ""


def run_child(layer: Module, x: V, scope: Scope[V], name: str) -> V:
    """`layer.forward(x)` in the child scope `name`, recorded as the running layer."""
    child = scope.child(name)
    token = _RUNNING.set((child.path, layer))
    try:
        return layer.forward(x, child)
    finally:
        _RUNNING.reset(token)


def describe_at(path: str, layer: Module) -> str:
    """"layer 2 (linear 8->1)", or "the model (linear 8->1)" for the root."""
    return f"layer {path} ({layer.describe()})" if path else f"the model ({layer.describe()})"


class Module:
    """Run-time base of every layer: structure, parameter declarations and the forward rule.

    Subclasses are immutable descriptions; using one instance twice in a model gives two
    independent sets of parameters (names follow positions, not identity).
    """

    __slots__ = ()

    def describe(self) -> str:
        """A short description for error messages ("linear 8->1")."""
        raise NotImplementedError

    def children(self) -> tuple[tuple[str, Module], ...]:
        """Named sub-layers, in order ("0", "1", ... for sequential; "block" for residual)."""
        return ()

    def own_specs(self) -> tuple[ParamSpec, ...]:
        """The parameters and buffers of this layer itself (not of its children)."""
        return ()

    def forward(self, x: V, scope: Scope[V]) -> V:
        """The output for input `x`, reading parameters and buffers from `scope`."""
        raise NotImplementedError

    def input_width(self) -> int | None:
        """The size of the last input axis this layer requires, or None if it takes any."""
        return None

    def output_width(self, width: int | None) -> int | None:
        """The size of the last output axis for that input size (None: not known)."""
        return width

    def __rshift__(self, other: Any) -> Any:
        return splice(self, other)


def named_specs(model: Module, path: str = "") -> Iterator[tuple[str, ParamSpec, str, Module]]:
    """(full name, spec, layer path, layer) for every parameter and buffer, in model order:
    a layer's own entries first, then its children's."""
    for spec in model.own_specs():
        yield (f"{path}.{spec.name}" if path else spec.name), spec, path, model
    for name, child in model.children():
        yield from named_specs(child, f"{path}.{name}" if path else name)


class Layer(Module, Generic[In, Out]):
    """A layer whose input has static shape type In and output Out (e.g. Vec[2] -> Vec[8])."""

    __slots__ = ()

    def _shape_signature(self, x: In, /) -> Out:
        """Phantom: never called; its signature is how mypy reads the shape types."""
        raise TypeError("_shape_signature is a static-typing device, not an operation")

    def __rshift__(self, other: LayerLike[Out, C]) -> Sequential[In, C]:
        """`self` then `other` (see `sequential`); mypy checks that the shapes meet."""
        return cast("Sequential[In, C]", splice(self, other))


class SameShape(SameShapeSignatures, Module):
    """A shape-preserving layer (activation, dropout, softmax): fits wherever In == Out."""

    __slots__ = ()

    def _shape_signature(self, x: S, /) -> S:
        """Phantom: never called; generic, so this layer maps every shape type to itself."""
        raise TypeError("_shape_signature is a static-typing device, not an operation")

    # The first overload is the more specific one; mypy flags the overlap because a
    # SameShape is also a LayerLike[A, A], but SameShape is what that call returns.
    @overload
    def __rshift__(self, other: SameShape) -> SameShape: ...  # type: ignore[overload-overlap]
    @overload
    def __rshift__(self, other: LayerLike[A, C]) -> Sequential[A, C]: ...
    def __rshift__(self, other: Any) -> Any:
        """`self` then `other`; shape-preserving when `other` is."""
        return splice(self, other)


class LayerLike(Protocol[In, Out]):
    """Anything usable as a layer from In to Out: a Layer[In, Out], or a SameShape layer
    when In and Out agree. Functions that take layers are typed with this."""

    def _shape_signature(self, x: In, /) -> Out: ...


# -- chains: what `a >> b` builds (compose.sequential builds them too) ----------------
def _check_layers(where: str, layers: Sequence[object]) -> tuple[Module, ...]:
    if not layers:
        raise ValueError(f"{where}: needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Module):
            raise TypeError(
                f"{where}: argument {i} is not a layer (nn.linear(...), nn.relu(), ...), "
                f"got {type(layer).__name__} {layer!r}"
            )
    return cast("tuple[Module, ...]", tuple(layers))


def _check_chain(layers: tuple[Module, ...]) -> None:
    """Reject neighbours whose known feature sizes differ (the run-time twin of mypy's check,
    for sizes that are only known at run time)."""
    size: int | None = None
    for i, layer in enumerate(layers):
        need = layer.input_width()
        if need is not None and size is not None and need != size:
            raise ShapeError(
                f"sequential: layer {i} ({layer.describe()}) expects inputs (..., {need}) but "
                f"layer {i - 1} ({layers[i - 1].describe()}) gives (..., {size})"
            )
        size = layer.output_width(size if size is not None else need)


def _chain_input_width(layers: tuple[Module, ...]) -> int | None:
    for layer in layers:
        need = layer.input_width()
        if need is not None or not isinstance(layer, SameShape):
            return need
    return None


def _chain_output_width(layers: tuple[Module, ...], size: int | None) -> int | None:
    for layer in layers:
        size = layer.output_width(size)
    return size


def _chain_forward(layers: tuple[Module, ...], x: V, scope: Scope[V]) -> V:
    for i, layer in enumerate(layers):
        x = run_child(layer, x, scope, str(i))
    return x


def _chain_repr(layers: tuple[Module, ...]) -> str:
    return "sequential(" + ", ".join(repr(layer) for layer in layers) + ")"


@dataclass(frozen=True, slots=True, repr=False)
class Sequential(Layer[In, Out]):
    """Layers applied in order; children are named "0", "1", ..."""

    layers: tuple[Module, ...]

    def __post_init__(self) -> None:
        _check_chain(_check_layers("sequential", self.layers))

    def describe(self) -> str:
        return f"sequential of {len(self.layers)}"

    def children(self) -> tuple[tuple[str, Module], ...]:
        return tuple((str(i), layer) for i, layer in enumerate(self.layers))

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _chain_forward(self.layers, x, scope)

    def input_width(self) -> int | None:
        return _chain_input_width(self.layers)

    def output_width(self, width: int | None) -> int | None:
        return _chain_output_width(self.layers, width)

    def __repr__(self) -> str:
        return _chain_repr(self.layers)


@dataclass(frozen=True, slots=True, repr=False)
class SameSequential(SameShape):
    """A sequential of shape-preserving layers only: itself shape-preserving."""

    layers: tuple[Module, ...]

    def __post_init__(self) -> None:
        _check_layers("sequential", self.layers)

    def describe(self) -> str:
        return f"sequential of {len(self.layers)}"

    def children(self) -> tuple[tuple[str, Module], ...]:
        return tuple((str(i), layer) for i, layer in enumerate(self.layers))

    def forward(self, x: V, scope: Scope[V]) -> V:
        return _chain_forward(self.layers, x, scope)

    def __repr__(self) -> str:
        return _chain_repr(self.layers)


def chain(*layers: object) -> Any:
    """The run-time composition behind `sequential` and `>>` (untyped: those two type it)."""
    mods = _check_layers("sequential", layers)
    if all(isinstance(m, SameShape) for m in mods):
        return SameSequential(mods)
    return Sequential(mods)


def splice(a: object, b: object) -> Any:
    """`a >> b`: one flat sequential (nested sequentials on either side are spliced)."""
    parts: list[object] = []
    for side in (a, b):
        if isinstance(side, (Sequential, SameSequential)):
            parts.extend(side.layers)
        else:
            parts.append(side)
    return chain(*parts)
