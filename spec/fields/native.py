"""`float` (binary64) and `float32`: the array library's own arithmetic.

Values are arrays of whatever Array API namespace they come from (NumPy, CuPy,
array-api-strict). Rounding is the library's: elementwise ops are IEEE-754 correctly
rounded, but sums and matmuls use the library's order (pairwise, BLAS blocking, FMA), and
transcendentals use the vendor's libm. For a reproducible binary32 semantics use
`ieee32exec`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .base import Array, ArrayField, Constant, SymbolicPi, check_integral_labels, first_max_mask

__all__ = ["NativeFloatField", "float64", "float32"]


class NativeFloatField(ArrayField):
    """A float field of a given dtype name, evaluated by the array namespace."""

    def __init__(self, name: str, dtype_name: str) -> None:
        self.name = name
        self.dtype_name = dtype_name
        self.np_dtype: np.dtype[Any] = np.dtype(dtype_name)

    def dtype(self, xp: Any) -> Any:
        """This field's dtype object in namespace `xp`."""
        return getattr(xp, self.dtype_name)

    def asarray(self, data: object, xp: Any = None) -> Array:
        if xp is None:
            xp = self.xp(data) if hasattr(data, "__array_namespace__") else np
        if isinstance(data, Fraction):
            data = float(data)
        elif isinstance(data, (list, tuple)):
            data = np.asarray(data, dtype=object).astype(np.float64)
        if xp is np:
            return np.asarray(data, dtype=self.np_dtype)
        return xp.asarray(data, dtype=self.dtype(xp))

    def constant(self, value: Constant, like: Array | None = None) -> Array:
        v = math.pi if isinstance(value, SymbolicPi) else float(value)  # Fractions round to nearest
        if like is None or type(like) is np.ndarray or isinstance(like, np.generic):
            return np.asarray(v, dtype=self.np_dtype)
        xp = self.xp(like)
        return xp.asarray(v, dtype=self.dtype(xp), device=like.device)

    def to_numpy(self, a: Array) -> np.ndarray[Any, Any]:
        if isinstance(a, (np.ndarray, np.generic)):
            return np.asarray(a)
        to_host = getattr(a, "get", None)  # CuPy's device-to-host copy
        return np.asarray(to_host()) if to_host is not None else np.from_dlpack(a)

    def _from_host(self, host: np.ndarray[Any, Any], like: Array) -> Array:
        """A host-computed result moved to the namespace and device of `like`."""
        if isinstance(like, (np.ndarray, np.generic)):
            return host
        return self.xp(like).asarray(host, device=like.device)

    def add(self, a: Array, b: Array) -> Array:
        return self.xp(a).add(a, b)

    def sub(self, a: Array, b: Array) -> Array:
        return self.xp(a).subtract(a, b)

    def mul(self, a: Array, b: Array) -> Array:
        return self.xp(a).multiply(a, b)

    def div(self, a: Array, b: Array) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.xp(a).divide(a, b)

    def neg(self, a: Array) -> Array:
        return self.xp(a).negative(a)

    def abs(self, a: Array) -> Array:
        return self.xp(a).abs(a)

    def maximum(self, a: Array, b: Array) -> Array:
        return self.xp(a).maximum(a, b)

    def minimum(self, a: Array, b: Array) -> Array:
        return self.xp(a).minimum(a, b)

    def sqrt(self, a: Array) -> Array:
        with np.errstate(invalid="ignore"):
            return self.xp(a).sqrt(a)

    def exp(self, a: Array) -> Array:
        with np.errstate(over="ignore"):
            return self.xp(a).exp(a)

    def log(self, a: Array) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.xp(a).log(a)

    def log1p(self, a: Array) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.xp(a).log1p(a)

    def expm1(self, a: Array) -> Array:
        with np.errstate(over="ignore"):
            return self.xp(a).expm1(a)

    def tanh(self, a: Array) -> Array:
        return self.xp(a).tanh(a)

    def sigmoid(self, a: Array) -> Array:
        # exp of -|a| never overflows; the two branches are the same function.
        xp = self.xp(a)
        e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def softplus(self, a: Array) -> Array:
        xp = self.xp(a)
        return xp.maximum(a, xp.zeros_like(a)) + xp.log1p(xp.exp(-xp.abs(a)))

    def erf(self, a: Array) -> Array:
        host = np.asarray(self.to_numpy(a), dtype=np.float64)
        out = np.asarray(np.frompyfunc(math.erf, 1, 1)(host)).astype(self.np_dtype)
        return self._from_host(out, a)

    def gelu(self, a: Array) -> Array:
        # x * Phi(x) through erfc, which keeps the left tail accurate.
        host = np.asarray(self.to_numpy(a), dtype=np.float64)
        phi = np.frompyfunc(lambda t: 0.5 * math.erfc(-t / math.sqrt(2.0)), 1, 1)(host)
        out = (host * np.asarray(phi, dtype=np.float64)).astype(self.np_dtype)
        return self._from_host(out, a)

    def sin(self, a: Array) -> Array:
        return self.xp(a).sin(a)

    def cos(self, a: Array) -> Array:
        return self.xp(a).cos(a)

    def step(self, a: Array) -> Array:
        xp = self.xp(a)
        return xp.astype(a > 0, self.dtype(xp))

    def greater(self, a: Array, b: Array) -> Array:
        xp = self.xp(a)
        return xp.astype(a > b, self.dtype(xp))

    def select(self, cond: Array, a: Array, b: Array) -> Array:
        return self.xp(a).where(cond != 0, a, b)

    def one_hot(self, labels: Array, num_classes: int) -> Array:
        idx = check_integral_labels(self.to_numpy(labels), num_classes)
        out = (idx[..., None] == np.arange(num_classes)).astype(self.np_dtype)
        return self._from_host(out, labels)

    def argmax_mask(self, a: Array, axes: tuple[int, ...]) -> Array:
        out = first_max_mask(self.to_numpy(a), axes).astype(self.np_dtype)
        return self._from_host(out, a)

    def sum(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        if type(a) is np.ndarray:  # what np.sum runs for an ndarray, without its wrappers
            add: Any = np.add  # (numpy's stubs type keepdims as a literal)
            return add.reduce(a, axis=axes, keepdims=keepdims)
        return self.xp(a).sum(a, axis=axes, keepdims=keepdims)

    def max(self, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        return self.xp(a).max(a, axis=axes, keepdims=keepdims)

    def matmul(self, a: Array, b: Array) -> Array:
        return self.xp(a).matmul(a, b)

    def permute(self, a: Array, axes: tuple[int, ...]) -> Array:
        if type(a) is np.ndarray:  # what np.permute_dims runs, without its wrappers
            return a.transpose(axes)
        return super().permute(a, axes)

    def reshape(self, a: Array, shape: tuple[int, ...]) -> Array:
        if type(a) is np.ndarray:  # what np.reshape runs, without its wrappers
            return a.reshape(shape)
        return super().reshape(a, shape)


float64 = NativeFloatField("float", "float64")
float32 = NativeFloatField("float32", "float32")
