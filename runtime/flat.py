"""A flat parameter buffer: all of a model's parameters in one 1-D tensor, seen by name.

Elementwise optimizers then run a handful of ops on one tensor instead of a handful per
parameter; because every such update is elementwise, the result is bit-identical to
updating each parameter on its own. `FlatGrads` is gradients that already come as one
such vector (from the compiled backend), so an update need not flatten them again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..spec.errors import ShapeError
from ..spec.fields import Field
from ..spec.shapes import Shape, size_of
from ..spec.tensor import Tensor

__all__ = ["FlatLayout", "FlatGrads"]


@dataclass(frozen=True)
class FlatLayout:
    """Names, shapes and offsets of parameters packed into one vector, in model order."""

    names: tuple[str, ...]
    shapes: tuple[Shape, ...]
    field: Field

    @classmethod
    def of(cls, params: Mapping[str, Tensor], field: Field) -> FlatLayout:
        """The layout of `params` (their order is kept)."""
        return cls(tuple(params), tuple(t.shape for t in params.values()), field)

    @property
    def size(self) -> int:
        """The number of scalars in the flat vector."""
        return sum(size_of(s) for s in self.shapes)

    def flatten(self, tensors: Mapping[str, Tensor], what: str = "params") -> Tensor:
        """One 1-D tensor holding `tensors` (which must match the layout) in order."""
        if isinstance(tensors, FlatGrads) and tensors.layout == self:
            return tensors.flat
        if tuple(tensors) != self.names:
            missing = set(self.names) - set(tensors)
            extra = set(tensors) - set(self.names)
            raise KeyError(f"{what}: names differ from the model's: missing {missing}, "
                           f"unexpected {extra}")
        f = self.field
        arrays = []
        for name, shape in zip(self.names, self.shapes, strict=True):
            t = tensors[name]
            if t.shape != shape:
                raise ShapeError(f"{what}: {name} has shape {t.shape}, the model's is {shape}")
            arrays.append(t.data)
        if arrays and all(type(a) is np.ndarray for a in arrays):  # NumPy-backed: what the
            # field's reshape and concat run, without their dispatch (once per update)
            return Tensor(np.concatenate([a.reshape(-1) for a in arrays]), f)
        return Tensor(f.concat([f.reshape(a, (size_of(a_shape),))
                                for a, a_shape in zip(arrays, self.shapes, strict=True)], 0), f)

    @cached_property
    def _bounds(self) -> tuple[tuple[str, int, int, Shape], ...]:
        bounds, start = [], 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            bounds.append((name, start, start + size_of(shape), shape))
            start += size_of(shape)
        return tuple(bounds)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """The named tensors of a flat vector (views, not copies, where the field allows)."""
        f, data = self.field, flat.data
        if type(data) is np.ndarray:  # every NumPy-backed field: the same views, directly
            return {name: Tensor(data[a:b].reshape(shape), f)
                    for name, a, b, shape in self._bounds}
        return {name: Tensor(f.reshape(f.slice(data, ((a, b, 1),)), shape), f)
                for name, a, b, shape in self._bounds}


class FlatGrads(Mapping[str, Tensor]):
    """Gradients by parameter name that are views of one flat vector in `layout` order.

    Read-only, so `flat` always holds exactly the named gradients; `FlatLayout.flatten`
    of it is then just `flat`."""

    __slots__ = ("layout", "flat", "_views")

    def __init__(self, layout: FlatLayout, flat: Tensor) -> None:
        if flat.shape != (layout.size,) or flat.field is not layout.field:
            raise ShapeError(f"grads: a flat vector of shape {flat.shape} over {flat.field} for "
                             f"a layout of {layout.size} scalars over {layout.field}")
        self.layout = layout
        self.flat = flat
        self._views: dict[str, Tensor] | None = None

    def _named(self) -> dict[str, Tensor]:
        if self._views is None:  # made on first look: an update needs only `flat`
            self._views = self.layout.views(self.flat)
        return self._views

    def __getitem__(self, name: str) -> Tensor:
        return self._named()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layout.names)

    def __len__(self) -> int:
        return len(self.layout.names)

    def __repr__(self) -> str:
        return f"FlatGrads({dict(self._named())!r})"
