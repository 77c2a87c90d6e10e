"""Named leaves of gradcheck inputs: flattening argument pytrees, naming every entry,
rebuilding arguments from new leaves, and moving concrete tensors between fields.

A pytree is a Value, or a Mapping / tuple / list of pytrees (the same structures
`runtime.autograd` differentiates). Leaves are visited in autograd's order (mappings in
their own key order), so a gradient returned by the tape lines up leaf for leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from mpmath import libmp

from ...spec.fields import Field
from ...spec.fields.native import NativeFloatField
from ...spec.shapes import Shape
from ...spec.tensor import Tensor
from ...spec.value import Value

__all__ = [
    "Tree",
    "Leaf",
    "named_leaves",
    "tree_values",
    "map_values",
    "rebuild",
    "entry_name",
    "host_values",
    "to_field",
    "to_fraction_array",
    "interval_bounds",
]

Tree = Any  # a Value, or a Mapping / tuple / list of trees


@dataclass(frozen=True, slots=True)
class Leaf:
    """One differentiated tensor: its display name, shape and place in the argument list."""

    name: str
    shape: Shape
    arg: int  # which positional argument of f it belongs to

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _walk(tree: Tree, prefix: str, sole_name: str) -> Iterator[tuple[str, Value]]:
    if isinstance(tree, Value):
        yield (prefix or sole_name), tree
    elif isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k), sole_name)
    elif isinstance(tree, (tuple, list)):
        for i, v in enumerate(tree):
            yield from _walk(v, f"{prefix}[{i}]", sole_name)
    else:
        where = prefix or "the argument"
        raise TypeError(
            f"gradcheck: cannot differentiate with respect to {where}, a "
            f"{type(tree).__name__} ({tree!r}); expected tensors or mappings/lists of them"
        )


def named_leaves(
    args: Sequence[Tree], argnums: Sequence[int], prefixes: Sequence[str] | None = None
) -> list[tuple[Leaf, Value]]:
    """The differentiated tensors of `args[argnums]` with their names.

    `prefixes[i]` names argument i; by default a sole differentiated argument has no
    prefix (its mapping keys are the names, a bare tensor is "x") and several are
    "arg0", "arg1", ...
    """
    out: list[tuple[Leaf, Value]] = []
    for i in argnums:
        if prefixes is not None:
            prefix = prefixes[i]
        else:
            prefix = "" if len(argnums) == 1 else f"arg{i}"
        for name, v in _walk(args[i], prefix, "x"):
            out.append((Leaf(name, tuple(v.shape), i), v))
    return out


def tree_values(tree: Tree) -> list[Value]:
    """The Values of one pytree, in leaf order."""
    return [v for _, v in _walk(tree, "", "x")]


def map_values(fn: Callable[[Value], Value], tree: Tree) -> Tree:
    """Apply `fn` to every Value of a pytree; anything that is not a Value or a container
    (an int option, a string, None) is passed through unchanged."""
    if isinstance(tree, Value):
        return fn(tree)
    if isinstance(tree, Mapping):
        return {k: map_values(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_values(fn, v) for v in tree)
    return tree


def rebuild(
    args: Sequence[Tree], argnums: Sequence[int], leaves: Sequence[Value]
) -> tuple[Tree, ...]:
    """`args` with the differentiated leaves replaced, in order, by `leaves`."""
    it = iter(leaves)
    out = list(args)
    for i in argnums:
        out[i] = map_values(lambda _v: next(it), args[i])
    return tuple(out)


def entry_name(leaf: Leaf, flat_index: int) -> tuple[str, tuple[int, ...]]:
    """Display name ("0.weight[3, 1]") and index of one entry of a leaf."""
    index = tuple(int(i) for i in np.unravel_index(flat_index, leaf.shape)) if leaf.shape else ()
    shown = f"{leaf.name}[{', '.join(str(i) for i in index)}]" if index else leaf.name
    return shown, index


# -- values between fields ------------------------------------------------------------
def _raw_to_number(raw: Any) -> Fraction | float:
    """A raw mpf tuple as an exact Fraction (or a float for inf / nan)."""
    if raw == libmp.finf:
        return float("inf")
    if raw == libmp.fninf:
        return float("-inf")
    if raw == libmp.fnan:
        return float("nan")
    sign, man, exp, _bc = raw
    m = -int(man) if sign else int(man)
    return Fraction(m << int(exp)) if exp >= 0 else Fraction(m, 1 << int(-exp))


def _scalar_bounds(x: Any) -> tuple[Fraction | float, Fraction | float]:
    """Exact lower and upper bounds of one host scalar (a number, mpf or interval)."""
    mpi = getattr(x, "_mpi_", None)
    if mpi is not None:
        return _raw_to_number(mpi[0]), _raw_to_number(mpi[1])
    mpf = getattr(x, "_mpf_", None)
    if mpf is not None:
        v = _raw_to_number(mpf)
        return v, v
    if isinstance(x, Fraction):
        return x, x
    f = float(x)
    if not np.isfinite(f):
        return f, f
    v2 = Fraction(x) if isinstance(x, int) else Fraction(f)
    return v2, v2


def interval_bounds(
    values: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Exact lower and upper bounds (object arrays of Fractions, or floats for inf/nan)
    of host values: floats, Fractions, mpmath numbers or intervals (a point has lo = hi)."""
    flat = np.asarray(values, dtype=object).reshape(-1)
    lo = np.empty(flat.shape, dtype=object)
    hi = np.empty(flat.shape, dtype=object)
    for i, x in enumerate(flat):
        lo[i], hi[i] = _scalar_bounds(x)
    shape = np.shape(values)
    return lo.reshape(shape), hi.reshape(shape)


def to_fraction_array(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Host values as exact Fractions; an interval gives its midpoint."""
    lo, hi = interval_bounds(values)
    out = np.empty(lo.shape, dtype=object)
    for idx in np.ndindex(lo.shape):
        a, b = lo[idx], hi[idx]
        out[idx] = a if a == b else (a + b) / 2
    return out


def host_values(t: Value) -> np.ndarray[Any, Any]:
    """The entries of a concrete tensor as a NumPy array (floats, or Python objects)."""
    if not isinstance(t, Tensor):
        raise TypeError(
            f"gradcheck: inputs must be concrete tensors, got {type(t).__name__}; "
            "build them with torchlean.spec.tensor(...)"
        )
    return t.numpy()


def to_field(t: Value, field: Field) -> Tensor:
    """The tensor `t` in `field`: exact where the field can hold the value (every float
    is exact in `exact` and `interval`), rounded to nearest otherwise."""
    if isinstance(t, Tensor) and t.field is field:
        return t
    host = host_values(t)
    if host.dtype != object:
        if isinstance(field, NativeFloatField):
            return Tensor(field.asarray(np.array(host, dtype=field.np_dtype)), field)
        data: Any = field.asarray(np.asarray(host, dtype=np.float64).astype(object))
        return Tensor(data, field)
    exact = to_fraction_array(host)
    if isinstance(field, NativeFloatField):
        floats = np.array([float(q) for q in exact.reshape(-1)], dtype=field.np_dtype)
        return Tensor(field.asarray(floats.reshape(exact.shape)), field)
    return Tensor(field.asarray(exact), field)
