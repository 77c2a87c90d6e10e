"""Exact products of integer matrices (numpy object arrays of Python ints) done with float64
BLAS: each integer is split into 16-bit limbs (two's complement, the top limb signed), the
limb matrices are multiplied in binary64, where every product sum is an integer below 2^53
and so exact, and the limb products are recombined with carries in int64. The result is
the same integers `a.dot(b)` gives on object arrays, only much faster for big ints.

Bounds that make it exact: a limb has magnitude < 2^16, so one limb product sum over n
terms is below n * 2^32 <= 2^53 when n <= 2^21; a diagonal of the product (the limb pairs
(i, j) with i + j fixed) adds at most min(LA, LB) of them, kept below 2^62 in int64. Where
these do not hold the plain object product is used instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LIMB_WORK", "Limbs", "split", "exact_dot", "limbs_dot"]

Obj = np.ndarray[Any, np.dtype[np.object_]]
F64 = np.ndarray[Any, np.dtype[np.float64]]
BITS = 16
_MAX_TERMS = 1 << 21  # n * 2^32 <= 2^53
_CHUNK = 1 << 22  # int64 / float64 elements per temporary block
# below this many multiply-adds (m n p) numpy's object product is about as fast (measured)
LIMB_WORK = 1 << 14


class Limbs:
    """An integer array as float64 limbs, shape (*shape, count): value = sum over i of
    limb[..., i] * 2^(16 i), limbs 0..count-2 in [0, 2^16), the last in [-2^15, 2^15)."""

    __slots__ = ("data",)

    def __init__(self, data: F64) -> None:
        self.data = data

    @property
    def count(self) -> int:
        """The number of limbs per integer."""
        return int(self.data.shape[-1])

    def __getitem__(self, index: Any) -> Limbs:
        """The limbs of the selected entries (a selection of the leading axes)."""
        return Limbs(self.data[index])

    def positive(self, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Limbs:
        """The limbs of the entries where `mask` holds, zero elsewhere."""
        return Limbs(self.data * mask[..., None])

    def signs(self) -> tuple[np.ndarray[Any, np.dtype[np.bool_]],
                             np.ndarray[Any, np.dtype[np.bool_]]]:
        """Where the integers are > 0 and where < 0: the sign is the top limb's, or
        positive when the top limb is 0 and a lower one is not (lower limbs are >= 0)."""
        negative = self.data[..., -1] < 0
        return ~negative & np.any(self.data != 0, axis=-1), negative

    def ints(self) -> Obj:
        """The integers the limbs stand for, as an object array."""
        shape, count = self.data.shape[:-1], self.count
        digits = np.ascontiguousarray(self.data.astype(np.int64).astype("<u2"))
        raw = memoryview(digits.tobytes())
        width = 2 * count
        out = np.empty(int(np.prod(shape)), dtype=object)
        out[:] = [int.from_bytes(raw[i: i + width], "little", signed=True)
                  for i in range(0, len(raw), width)]
        return out.reshape(shape)


def _to_bytes(flat: Any, width: int) -> bytes:
    try:
        return b"".join(v.to_bytes(width, "little", signed=True) for v in flat)
    except AttributeError:  # numpy integers among the Python ints
        return b"".join(int(v).to_bytes(width, "little", signed=True) for v in flat)


def split(x: Obj) -> Limbs:
    """The integers of `x` (Python or numpy ints) as limbs."""
    flat = np.asarray(x, dtype=object).reshape(-1)
    if flat.size == 0:
        return Limbs(np.zeros((*x.shape, 1)))
    top = max(int(flat.max()), -int(flat.min()) - 1)
    count = max(1, (top.bit_length() + 1 + BITS - 1) // BITS)  # + sign bit
    raw = _to_bytes(flat, 2 * count)
    unsigned = np.frombuffer(raw, dtype="<u2").reshape(flat.size, count)
    data = unsigned.astype(np.float64)
    data[:, -1] = np.frombuffer(raw, dtype="<i2").reshape(flat.size, count)[:, -1]
    return Limbs(data.reshape(*x.shape, count))


def _carry(diag: np.ndarray[Any, np.dtype[np.int64]]) -> None:
    """Rewrite diag (D, ...) int64, standing for sum_d diag[d] * 2^(16 d), in place as
    limbs: 0 <= diag[d] < 2^16 below the top, the top in [-2^15, 2^15) (checked: D must
    leave room for the sign)."""
    for d in range(diag.shape[0] - 1):
        carry = diag[d] >> BITS
        diag[d] &= (1 << BITS) - 1
        diag[d + 1] += carry
    half = 1 << (BITS - 1)
    top = diag[-1]
    if top.size and (int(top.min()) < -half or int(top.max()) >= half):
        raise AssertionError("exact_matmul: recombined value overflows its limbs")


def _trim(diag: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The limbs without top limbs that only extend the sign of the one below."""
    half = 1 << (BITS - 1)
    count = diag.shape[0]
    while count > 1:
        top, below = diag[count - 1], diag[count - 2]
        if not np.all(((top == 0) & (below < half)) | ((top == -1) & (below >= half))):
            break
        diag[count - 2] = below + top * (1 << BITS)
        count -= 1
    return diag[:count]


def _matmul(a: F64, b: F64) -> Limbs:
    """a (m, n, LA) times b (n, p, LB) as integers; the contraction bounds hold."""
    m, n, la = a.shape
    p, lb = b.shape[1], b.shape[2]
    count = la + lb + 2  # |result| < n 2^(16 (LA + LB) - 2) <= 2^(16 count - 1)
    rows = max(1, _CHUNK // max(1, max(la, count) * p))
    diag = np.zeros((count, m, p), dtype=np.int64)
    b_by_limb = [np.ascontiguousarray(b[:, :, j]) for j in range(lb)]
    for r0 in range(0, m, rows):
        block = a[r0: r0 + rows]
        mb = block.shape[0]
        stacked = np.ascontiguousarray(np.moveaxis(block, 2, 0)).reshape(la * mb, n)
        for j in range(lb):
            prod = (stacked @ b_by_limb[j]).reshape(la, mb, p)
            diag[j: j + la, r0: r0 + rows] += prod.astype(np.int64)
    _carry(diag)
    return Limbs(np.moveaxis(_trim(diag), 0, -1).astype(np.float64))


def limbs_dot(a: Obj | Limbs, b: Obj | Limbs) -> Limbs:
    """The exact integer product `a.dot(b)` for a (m, n) or (n,) and b (n, p) or (n,),
    either given as object integers or as their `Limbs`; the result as limbs."""
    al = a if isinstance(a, Limbs) else split(a)
    bl = b if isinstance(b, Limbs) else split(b)
    a_vec, b_vec = al.data.ndim == 2, bl.data.ndim == 2
    ad = al.data[None] if a_vec else al.data
    bd = bl.data[:, None] if b_vec else bl.data
    if ad.shape[1] != bd.shape[0]:
        raise ValueError(f"exact_dot: shapes {ad.shape[:2]} and {bd.shape[:2]} do not chain")
    n = ad.shape[1]
    if n > _MAX_TERMS or min(al.count, bl.count) * n >= 1 << 29:
        # the bounds fail: the plain exact product
        return split(np.asarray(al.ints().dot(bl.ints()), dtype=object))
    data = _matmul(ad, bd).data  # (m, p, limbs)
    if b_vec:
        data = data[:, 0]
    if a_vec:
        data = data[0]
    return Limbs(data)


def exact_dot(a: Obj, b: Obj) -> Obj:
    """The exact integer product `a.dot(b)` of object arrays of integers: the same
    integers numpy's object `dot` gives, computed with float64 BLAS where large."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a.size * (b.shape[-1] if b.ndim == 2 else 1) < LIMB_WORK:
        return np.asarray(a.dot(b), dtype=object)
    return limbs_dot(a, b).ints()
