"""`batch_loader`: reproducible minibatches of a `TensorDataset`, epoch by epoch.

The order of epoch e is a pure function of (seed, e): the permutation drawn by
`np.random.default_rng([seed, e])`, or 0..N-1 when not shuffling. `loader.epoch(e)`
yields that epoch's batches and changes nothing. Iterating the loader itself is a
convenience for `for epoch in range(k): for xb, yb in loader:` loops: each `iter(loader)`
takes the epoch number `loader.next_epoch` and advances that counter by one when the
iteration starts. The counter is the loader's only state; `loader.at_epoch(e)` gives a
copy that continues from epoch e (to resume a checkpointed fit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...spec.tensor import Tensor
from .dataset import TensorDataset, take_rows

__all__ = ["BatchLoader", "batch_loader", "epoch_order"]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray[Any, Any]:
    """The order in which epoch `epoch` visits examples 0..n-1 (an int64 permutation)."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    # Seeding with the pair makes every epoch an independent stream of the one seed.
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


class BatchLoader:
    """Minibatches of a dataset; build with `batch_loader(...)`.

    The configuration is fixed; `next_epoch` is the epoch the next `iter(loader)` yields."""

    __slots__ = ("_dataset", "_batch_size", "_shuffle", "_seed", "_drop_last", "_next_epoch")

    def __init__(
        self,
        dataset: TensorDataset,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
        next_epoch: int = 0,
    ) -> None:
        if not isinstance(dataset, TensorDataset):
            raise TypeError(
                f"batch_loader: dataset must be a TensorDataset, got {type(dataset).__name__}"
            )
        _check_int("batch_size", batch_size, low=1)
        _check_int("seed", seed, low=0)
        _check_int("epoch", next_epoch, low=0)
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"batch_loader: {name} must be a bool, got {flag!r}")
        n = len(dataset)
        if drop_last and batch_size > n:
            raise ValueError(
                f"batch_loader: batch_size={batch_size} is larger than the dataset ({n} "
                "examples) and drop_last=True would drop every example, leaving empty epochs"
            )
        self._dataset = dataset
        self._batch_size = int(batch_size)
        self._shuffle = shuffle
        self._seed = int(seed)
        self._drop_last = drop_last
        self._next_epoch = int(next_epoch)

    @property
    def dataset(self) -> TensorDataset:
        """The dataset batches are drawn from."""
        return self._dataset

    @property
    def batch_size(self) -> int:
        """Examples per batch (the last batch of an epoch may be smaller unless drop_last)."""
        return self._batch_size

    @property
    def shuffle(self) -> bool:
        """Whether each epoch visits the examples in a seeded random order."""
        return self._shuffle

    @property
    def seed(self) -> int:
        """The seed of every epoch's order."""
        return self._seed

    @property
    def drop_last(self) -> bool:
        """Whether a last, smaller batch is dropped."""
        return self._drop_last

    @property
    def next_epoch(self) -> int:
        """The epoch number the next `iter(loader)` yields."""
        return self._next_epoch

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self._dataset), self._batch_size
        return n // b if self._drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray[Any, Any]:
        """The permutation of example indices that epoch `epoch` visits."""
        _check_int("epoch", epoch, low=0)
        return epoch_order(len(self._dataset), self._seed, epoch, self._shuffle)

    def batch_indices(self, epoch: int) -> list[np.ndarray[Any, Any]]:
        """The example indices of each batch of epoch `epoch`, in order."""
        order = self.order(epoch)
        b = self._batch_size
        return [order[i * b : (i + 1) * b] for i in range(len(self))]

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches (X_b, Y_b) of epoch `epoch`, gathered lazily; changes nothing."""
        return self._gather(self.batch_indices(epoch))  # validates `epoch` now, not lazily

    def _gather(self, batches: list[np.ndarray[Any, Any]]) -> Iterator[tuple[Tensor, Tensor]]:
        inputs, targets = self._dataset.inputs, self._dataset.targets
        for idx in batches:
            yield take_rows(inputs, idx), take_rows(targets, idx)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of epoch `next_epoch`; the counter advances as iteration starts."""
        e = self._next_epoch
        self._next_epoch = e + 1
        return self.epoch(e)

    def at_epoch(self, epoch: int) -> BatchLoader:
        """A copy of this loader whose next iteration yields epoch `epoch`."""
        return BatchLoader(
            self._dataset, self._batch_size, self._shuffle, self._seed, self._drop_last, epoch
        )

    def __repr__(self) -> str:
        return (
            f"BatchLoader({self._dataset!r}, batch_size={self._batch_size}, "
            f"shuffle={self._shuffle}, seed={self._seed}, drop_last={self._drop_last}, "
            f"next_epoch={self._next_epoch})"
        )


def batch_loader(
    dataset: TensorDataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
) -> BatchLoader:
    """A loader of `dataset` in batches of `batch_size`, each epoch in the order
    `np.random.default_rng([seed, epoch]).permutation(N)` (or 0..N-1 without shuffle).

    Without drop_last the last batch of an epoch holds the N % batch_size leftovers."""
    return BatchLoader(dataset, batch_size, shuffle, seed, drop_last)


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"batch_loader: {name} must be an int >= {low}, got {value!r}")
