"""The directions a gradient check differentiates along.

Either the standard basis (one direction per input entry: a full check, entry by entry)
or k random directions (a fast check of v^T J u, as torch's `fast_mode`). Random
entries are nonzero dyadic rationals m / 2^20 with |m| <= 2^20, exact in every field
(binary64, Fraction, intervals, mpmath), so an exact or rigorous method sees exactly
the direction that was drawn. For an exact comparison, a wrong gradient g != grad f
escapes a random direction only if <g - grad f, u> = 0; for each entry where they differ
there is at most one value of u_i making that sum vanish, so each direction misses
with probability at most 1 / 2^21 (the number of values u_i can take), independently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec.fields.base import Array, Field
from ...spec.fields.objectarray import ObjectArrayField
from .trees import Leaf, entry_name

__all__ = ["Directions", "RANDOM_DENOMINATOR_BITS"]

RANDOM_DENOMINATOR_BITS = 20


@dataclass(frozen=True)
class Directions:
    """The standard basis over `leaves` (random is None) or k random directions."""

    leaves: tuple[Leaf, ...]
    random: tuple[tuple[np.ndarray[Any, Any], ...], ...] | None = None  # per direction, per leaf

    @staticmethod
    def basis(leaves: Sequence[Leaf]) -> Directions:
        """One direction per entry of every leaf."""
        return Directions(tuple(leaves))

    @staticmethod
    def sample(leaves: Sequence[Leaf], k: int, seed: int) -> Directions:
        """k random directions with entries m / 2^20, m a nonzero integer in [-2^20, 2^20]."""
        if k < 1:
            raise ValueError(f"gradcheck: directions must be >= 1, got {k}")
        rng = np.random.default_rng(seed)
        top = 2**RANDOM_DENOMINATOR_BITS
        dirs = []
        for _ in range(k):
            per_leaf = []
            for leaf in leaves:
                m = rng.integers(1, top + 1, size=leaf.shape) * rng.choice([-1, 1], size=leaf.shape)
                per_leaf.append(np.asarray(m, dtype=np.float64) / top)  # exact: <= 21 bits
            dirs.append(tuple(per_leaf))
        return Directions(tuple(leaves), tuple(dirs))

    @property
    def is_basis(self) -> bool:
        return self.random is None

    @property
    def count(self) -> int:
        """The number of directions."""
        if self.random is not None:
            return len(self.random)
        return sum(leaf.size for leaf in self.leaves)

    def describe(self) -> str:
        """e.g. "standard basis (12 entries)" or "3 random directions"."""
        if self.random is None:
            return f"standard basis ({self.count} entries)"
        return f"{self.count} random direction{'s' if self.count != 1 else ''}"

    def locate(self, j: int) -> tuple[int, int]:
        """Basis direction j as (leaf number, flat index in that leaf)."""
        for li, leaf in enumerate(self.leaves):
            if j < leaf.size:
                return li, j
            j -= leaf.size
        raise IndexError("direction out of range")

    def name_of(self, j: int) -> tuple[str, tuple[int, ...] | None]:
        """Display name and index of direction j."""
        if self.random is not None:
            return f"direction {j}", None
        li, i = self.locate(j)
        return entry_name(self.leaves[li], i)

    def l1_norms(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """||u||_1 of each direction."""
        if self.random is None:
            return np.ones(self.count)
        return np.array([sum(float(np.abs(u).sum()) for u in d) for d in self.random])

    def chunks(self, size: int) -> Iterator[range]:
        """Consecutive ranges of at most `size` direction numbers."""
        for start in range(0, self.count, size):
            yield range(start, min(start + size, self.count))

    def seeds(self, field: Field, block: range) -> list[Array | None]:
        """Per leaf, the tangents (K,) + shape of directions `block` in `field` (None where
        a leaf is untouched by every direction of the block)."""
        k = len(block)
        out: list[Array | None] = []
        offset = 0
        for li, leaf in enumerate(self.leaves):
            if self.random is not None:
                host = np.stack([self.random[j][li] for j in block]).astype(np.float64)
                out.append(_to_field(field, host))
                continue
            lo, hi = max(block.start, offset), min(block.stop, offset + leaf.size)
            if lo >= hi:
                out.append(None)
            else:
                host = np.zeros((k, leaf.size))
                for j in range(lo, hi):
                    host[j - block.start, j - offset] = 1.0
                out.append(_to_field(field, host.reshape((k,) + leaf.shape)))
            offset += leaf.size
        return out


def _to_field(field: Field, host: np.ndarray[Any, Any]) -> Array:
    if isinstance(field, ObjectArrayField):
        # Directions hold only a few distinct values: convert each once.
        values, inverse = np.unique(host, return_inverse=True)
        table = np.array([field.scalar(float(v)) for v in values] + [None], dtype=object)[:-1]
        return table[inverse.reshape(host.shape)]
    return field.asarray(host)
