"""Hypothesis strategies for property tests of TorchLean code: shapes, tensors of any
field, small random models, and ways to keep inputs away from kinks.

Numbers drawn here are dyadic rationals k / 2^bits: exact in binary64, Fraction,
intervals and mpmath alike, so one drawn input means the same point in every field.

Kinks (ReLU/abs/leaky ReLU at 0, ties of maximum/minimum/comparisons and of max
reductions) are where derivatives stop existing and finite differences straddle two
pieces. Two tools keep tests off them:
- `away_from_kinks(margin)`: an element strategy with |x| >= margin, for inputs that go
  straight into a kink at 0; `distinct_tensors(shape, margin=...)`: entries pairwise at
  least `margin` apart, for inputs of max reductions and elementwise maxima;
- `assume_away_from_kinks(f, inputs, margin)`: for kinks deep inside a model, where input
  strategies cannot reach: evaluates f once (`verify.kinks.kink_distance`) and rejects
  the example with `hypothesis.assume` when some branch switch is nearer than margin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ...spec import functional as F
from ...spec.fields import Field, get_field
from ...spec.shapes import Shape
from ...spec.tensor import Tensor
from ...spec.value import Value
from .kinks import kink_distance

__all__ = [
    "dyadics",
    "away_from_kinks",
    "shapes",
    "tensors",
    "distinct_tensors",
    "assume_away_from_kinks",
    "MLP",
    "models",
    "register_model_kind",
    "ACTIVATIONS",
    "DEFAULT_MARGIN",
]

# Central differences in binary64 step by about 2^-18 max(1, |x|) (and twice that for the
# truncation estimate): a margin of 2^-6 keeps both steps on one side of a kink for
# inputs up to |x| ~ 2^10.
DEFAULT_MARGIN = 2.0**-6


def dyadics(
    min_value: float = -4.0, max_value: float = 4.0, bits: int = 8
) -> st.SearchStrategy[float]:
    """Floats k / 2^bits in [min_value, max_value]: exact in every field."""
    scale = 2**bits
    lo, hi = int(np.ceil(min_value * scale)), int(np.floor(max_value * scale))
    if lo > hi:
        raise ValueError(f"dyadics: empty range [{min_value}, {max_value}] at {bits} bits")
    return st.integers(lo, hi).map(lambda k: k / scale)


def away_from_kinks(
    margin: float = DEFAULT_MARGIN, min_value: float = -4.0, max_value: float = 4.0, bits: int = 8
) -> st.SearchStrategy[float]:
    """Dyadic floats in [min_value, max_value] with |x| >= margin (kinks at 0: ReLU, abs,
    leaky ReLU, step)."""
    if margin <= 0:
        raise ValueError(f"away_from_kinks: margin must be > 0, got {margin}")
    return dyadics(min_value, max_value, bits).filter(lambda x: abs(x) >= margin)


def shapes(
    min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
) -> st.SearchStrategy[Shape]:
    """Tensor shapes: tuples of `min_dims`..`max_dims` sides in [min_side, max_side]."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def _tensor(values: list[float], shape: Shape, field: Field) -> Tensor:
    host = np.asarray(values, dtype=np.float64).reshape(shape)
    if field.name in ("float", "float32"):
        return Tensor(field.asarray(host), field)
    return Tensor(field.asarray(host.astype(object)), field)


@st.composite
def _tensors(
    draw: st.DrawFn, shape: Any, field: Field, elements: st.SearchStrategy[float]
) -> Tensor:
    s = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    n = int(np.prod(s, dtype=np.int64))
    return _tensor(draw(st.lists(elements, min_size=n, max_size=n)), s, field)


def tensors(
    shape: Shape | st.SearchStrategy[Shape] | None = None,
    field: str | Field = "float",
    elements: st.SearchStrategy[float] | None = None,
) -> st.SearchStrategy[Tensor]:
    """Tensors of `shape` (a shape, a strategy of shapes, or None for `shapes()`) in
    `field`, with entries from `elements` (default: `dyadics()`)."""
    return _tensors(shapes() if shape is None else shape, get_field(field),
                    dyadics() if elements is None else elements)


@st.composite
def _distinct(draw: st.DrawFn, shape: Shape, field: Field, margin: float, spread: int) -> Tensor:
    n = int(np.prod(shape, dtype=np.int64))
    slots = draw(st.lists(st.integers(-spread, spread), min_size=n, max_size=n, unique=True))
    return _tensor([k * margin for k in slots], tuple(shape), field)


def distinct_tensors(
    shape: Shape, field: str | Field = "float", margin: float = 2.0**-3, spread: int = 32
) -> st.SearchStrategy[Tensor]:
    """Tensors whose entries are pairwise at least `margin` apart (k * margin for distinct
    integers |k| <= spread): no ties for max reductions or elementwise maxima."""
    n = int(np.prod(shape, dtype=np.int64))
    if n > 2 * spread + 1:
        raise ValueError(f"distinct_tensors: {n} entries need spread >= {(n - 1) // 2}")
    return _distinct(tuple(shape), get_field(field), margin, spread)


def assume_away_from_kinks(
    f: Callable[..., Any], inputs: Any, margin: float = DEFAULT_MARGIN
) -> float:
    """Reject the current hypothesis example unless every kink f meets at `inputs` (a
    tuple of arguments, as for gradcheck) is at least `margin` away; returns the distance."""
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    gap = kink_distance(f, *args)
    assume(gap >= margin)
    return gap


# -- models ----------------------------------------------------------------------------
ACTIVATIONS: dict[str, Callable[[Value], Value]] = {
    "relu": F.relu,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
    "leaky_relu": F.leaky_relu,
}


@dataclass(frozen=True)
class MLP:
    """A small multilayer perceptron in the shape gradient checks accept for models:
    ordered named `params` ("0.weight" of shape (out, in), "0.bias", "2.weight", ...,
    as in a sequential of linear/activation layers) and a pure `apply(params, x)`."""

    params: Mapping[str, Tensor]
    widths: tuple[int, ...]
    activation: str

    @property
    def in_features(self) -> int:
        return self.widths[0]

    @property
    def out_features(self) -> int:
        return self.widths[-1]

    def apply(self, params: Mapping[str, Value], x: Value) -> Value:
        """x (batch, in_features) -> (batch, out_features)."""
        act = ACTIVATIONS[self.activation]
        h = x
        layers = len(self.widths) - 1
        for i in range(layers):
            h = h @ F.swap_last(params[f"{2 * i}.weight"]) + params[f"{2 * i}.bias"]
            if i + 1 < layers:
                h = act(h)
        return h


@st.composite
def _mlps(
    draw: st.DrawFn,
    field: Field,
    max_layers: int,
    max_width: int,
    activations: tuple[str, ...],
    elements: st.SearchStrategy[float],
) -> MLP:
    layers = draw(st.integers(1, max_layers))
    widths = tuple(draw(st.integers(1, max_width)) for _ in range(layers + 1))
    params: dict[str, Tensor] = {}
    for i in range(layers):
        fan_in, fan_out = widths[i], widths[i + 1]
        params[f"{2 * i}.weight"] = draw(_tensors((fan_out, fan_in), field, elements))
        params[f"{2 * i}.bias"] = draw(_tensors((fan_out,), field, elements))
    return MLP(params, widths, draw(st.sampled_from(activations)))


ModelKind = Callable[..., st.SearchStrategy[Any]]
_MODEL_KINDS: dict[str, ModelKind] = {}


def register_model_kind(name: str, build: ModelKind) -> None:
    """Make `models(kinds=(name, ...))` draw from `build(field=..., **options)` (the hook
    for convolutional and other model families)."""
    _MODEL_KINDS[name] = build


register_model_kind(
    "mlp",
    lambda field, max_layers=3, max_width=5, activations=tuple(ACTIVATIONS), elements=None,
    **_: _mlps(field, max_layers, max_width, tuple(activations),
               dyadics(-1, 1, 6) if elements is None else elements),
)


def models(
    kinds: tuple[str, ...] = ("mlp",), field: str | Field = "float", **options: Any
) -> st.SearchStrategy[Any]:
    """Small random models (objects with `params` and `apply(params, x)`) of the given
    kinds; "mlp" takes max_layers, max_width, activations and elements."""
    unknown = [k for k in kinds if k not in _MODEL_KINDS]
    if unknown or not kinds:
        raise ValueError(f"models: unknown kinds {unknown}; known: {sorted(_MODEL_KINDS)}")
    fld = get_field(field)
    return st.one_of([_MODEL_KINDS[k](field=fld, **options) for k in kinds])
