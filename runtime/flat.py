"""A flat parameter buffer: all of a model's parameters in one 1-D tensor, seen by name.

Elementwise optimizers then run a handful of ops on one tensor instead of a handful per
parameter; because every such update is elementwise, the result is bit-identical to
updating each parameter on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..spec.errors import ShapeError
from ..spec.fields import Field
from ..spec.shapes import Shape, size_of
from ..spec.tensor import Tensor

__all__ = ["FlatLayout"]


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
        if tuple(tensors) != self.names:
            missing = set(self.names) - set(tensors)
            extra = set(tensors) - set(self.names)
            raise KeyError(f"{what}: names differ from the model's: missing {missing}, "
                           f"unexpected {extra}")
        f = self.field
        parts = []
        for name, shape in zip(self.names, self.shapes, strict=True):
            t = tensors[name]
            if t.shape != shape:
                raise ShapeError(f"{what}: {name} has shape {t.shape}, the model's is {shape}")
            parts.append(f.reshape(t.data, (size_of(shape),)))
        return Tensor(f.concat(parts, 0), f)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """The named tensors of a flat vector (views, not copies, where the field allows)."""
        f, out, start = self.field, {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = size_of(shape)
            part = f.slice(flat.data, ((start, start + n, 1),))
            out[name] = Tensor(f.reshape(part, shape), f)
            start += n
        return out
