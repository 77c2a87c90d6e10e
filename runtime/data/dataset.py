"""`TensorDataset`: N supervised examples held in memory as two tensors of one field.

Example i is `(inputs[i], targets[i])`. Gathering a batch is data movement, not
arithmetic, so it indexes the field's arrays directly (NumPy, or the array's own
namespace such as CuPy) and the batch keeps the field and device of the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ...spec.errors import FieldMismatchError, ShapeError
from ...spec.fields import ArrayField, Field, get_field
from ...spec.shapes import Shape
from ...spec.tensor import Tensor, tensor
from ._convert import DType

__all__ = ["TensorDataset", "take_rows", "as_index_array"]


class TensorDataset:
    """N examples: `inputs` of shape (N, ...) and `targets` of shape (N, ...), one field.

    `len(ds)` is N, `ds[i]` the pair (x_i, y_i), `ds.batch(indices)` the stacked pair
    gathered in the order given. Immutable: every method returns new tensors."""

    __slots__ = ("_inputs", "_targets")

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        for what, t in (("inputs", inputs), ("targets", targets)):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"TensorDataset: {what} must be a torchlean Tensor, got {type(t).__name__}"
                )
            if t.ndim < 1:
                raise ShapeError(
                    f"TensorDataset: {what} need a leading example axis, got shape {t.shape}"
                )
        if inputs.field is not targets.field:
            raise FieldMismatchError(
                f"TensorDataset: inputs are in field {inputs.field.name!r} but targets in "
                f"{targets.field.name!r}; convert one with .to(dtype)"
            )
        if inputs.shape[0] != targets.shape[0]:
            raise ShapeError(
                f"TensorDataset: inputs of shape {inputs.shape} and targets of shape "
                f"{targets.shape} have different numbers of examples "
                f"({inputs.shape[0]} vs {targets.shape[0]})"
            )
        if inputs.shape[0] == 0:
            raise ValueError(
                f"TensorDataset: empty dataset (inputs of shape {inputs.shape}, targets of "
                f"shape {targets.shape})"
            )
        self._inputs = inputs
        self._targets = targets

    @classmethod
    def from_arrays(cls, inputs: object, targets: object, dtype: DType = "float") -> TensorDataset:
        """A dataset of nested lists or arrays, converted to field `dtype`."""
        return cls(tensor(inputs, dtype), tensor(targets, dtype))

    @property
    def inputs(self) -> Tensor:
        """All inputs, shape (N, *input_shape)."""
        return self._inputs

    @property
    def targets(self) -> Tensor:
        """All targets, shape (N, *target_shape)."""
        return self._targets

    @property
    def field(self) -> Field:
        """The scalar field of inputs and targets."""
        return self._inputs.field

    @property
    def input_shape(self) -> Shape:
        """The shape of one input example."""
        return self._inputs.shape[1:]

    @property
    def target_shape(self) -> Shape:
        """The shape of one target example."""
        return self._targets.shape[1:]

    def __len__(self) -> int:
        return self._inputs.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        """Example i as (x_i, y_i); negative i counts from the end."""
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"TensorDataset: index must be an int, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"TensorDataset: index {i} out of range for {n} examples")
        idx = np.asarray([int(i) % n])
        x, y = self.batch(idx)
        return (
            Tensor(x.field.reshape(x.data, self.input_shape), x.field),
            Tensor(y.field.reshape(y.data, self.target_shape), y.field),
        )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self[i] for i in range(len(self)))

    def batch(self, indices: Sequence[int] | np.ndarray[Any, Any]) -> tuple[Tensor, Tensor]:
        """The examples at `indices`, stacked in that order: (X_b, Y_b) of shapes
        (len(indices), ...). Repeats are allowed; an empty or out-of-range list raises."""
        idx = as_index_array(indices, len(self), "TensorDataset.batch")
        return take_rows(self._inputs, idx), take_rows(self._targets, idx)

    def subset(self, indices: Sequence[int] | np.ndarray[Any, Any]) -> TensorDataset:
        """The dataset of the examples at `indices`, in that order."""
        return TensorDataset(*self.batch(indices))

    def to(self, dtype: DType) -> TensorDataset:
        """The same examples in field `dtype` (each value converted as that field
        converts host numbers: rounded, exactly, or enclosed)."""
        field = get_field(dtype)
        if field is self.field:
            return self
        return TensorDataset(_convert(self._inputs, field), _convert(self._targets, field))

    def __repr__(self) -> str:
        return (
            f"TensorDataset(n={len(self)}, inputs={self.input_shape}, "
            f"targets={self.target_shape}, dtype={self.field.name})"
        )


def as_index_array(indices: object, n: int, who: str) -> np.ndarray[Any, Any]:
    """`indices` as a 1-D int64 array of valid, non-negative indices below n."""
    raw = np.asarray(indices)
    if raw.ndim != 1 or raw.size == 0:
        raise ValueError(f"{who}: indices must be a non-empty 1-D sequence, got shape {raw.shape}")
    if raw.dtype.kind not in "iu":
        raise TypeError(f"{who}: indices must be integers, got dtype {raw.dtype}")
    idx = raw.astype(np.int64)
    bad = np.flatnonzero((idx < -n) | (idx >= n))
    if bad.size:
        k = int(bad[0])
        raise IndexError(
            f"{who}: index {int(idx[k])} at position {k} out of range for {n} examples"
        )
    return idx % n


def take_rows(t: Tensor, idx: np.ndarray[Any, Any]) -> Tensor:
    """Rows `idx` of `t` along axis 0, in `t`'s field and array namespace."""
    data = t.data
    field = t.field
    if isinstance(data, np.ndarray):
        return Tensor(data[idx], field)
    if isinstance(field, ArrayField):  # CuPy, array-api-strict: the namespace's own take
        xp = field.xp(data)
        return Tensor(xp.take(data, xp.asarray(idx, device=data.device), axis=0), field)
    host = field.to_numpy(data)[idx]  # a field with its own representation: via the host
    return Tensor(field.asarray(host), field)


def _convert(t: Tensor, field: Field) -> Tensor:
    host = t.numpy()
    if host.dtype == np.bool_:
        host = host.astype(np.uint8)
    try:
        return Tensor(field.asarray(host), field)
    except (TypeError, ValueError, ArithmeticError) as e:
        raise ValueError(
            f"TensorDataset.to: cannot convert values of field {t.field.name!r} to "
            f"{field.name!r}: {e}"
        ) from None
