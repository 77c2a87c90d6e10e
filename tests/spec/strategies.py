"""Hypothesis strategies shared by the op-table tests: rationals, shapes, and one case per op.

An `OpCase` is an op tag, its tensor operands as NumPy object arrays of exact `Fraction`s,
and the canonical attributes the op record expects (what `spec.functional` would pass to
`apply`). Keeping the operands exact lets every field's test start from the same numbers:
`exact` uses them as they are, `interval` encloses them, `float` and `ieee32exec` round them.

`op_cases(tag, smooth=...)` draws cases for any op of the table; with `smooth=True` the
operands stay away from the op's kinks and ties (|x| >= 1/8 for relu/abs/leaky_relu, distinct
values for max, operands of maximum/minimum at least 1/10 apart) and inside the part of the
domain where the derivative is tame, so finite differences and exact difference quotients
see one smooth piece.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from torchlean.spec import Field, Tensor

Q = Fraction
ObjArray = np.ndarray[Any, Any]

# Denominators of the drawn rationals: powers of two give dyadic numbers (exact in binary
# floating point when small enough), the others give non-dyadic ones (never exact).
DENOMINATORS = (1, 2, 3, 7, 10, 64, 1000, 2**20, 3**13)


@dataclass(frozen=True)
class OpCase:
    """One application of an op: its tag, exact operands and canonical attributes."""

    tag: str
    inputs: tuple[ObjArray, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The operands' shapes."""
        return tuple(tuple(x.shape) for x in self.inputs)

    def floats(self) -> tuple[np.ndarray[Any, Any], ...]:
        """The operands rounded to binary64 (nearest, ties to even)."""
        return tuple(to_float64(x) for x in self.inputs)

    def tensors(self, fld: Field) -> tuple[Tensor, ...]:
        """The operands as spec tensors of field `fld` (converted as the field converts)."""
        return tuple(Tensor(fld.asarray(x), fld) for x in self.inputs)


def obj_array(values: list[Any], shape: tuple[int, ...]) -> ObjArray:
    """An object array of `shape` holding `values` in row-major order."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out.reshape(shape)


def to_float64(a: ObjArray) -> np.ndarray[Any, Any]:
    """Fractions rounded to binary64 by `Fraction.__float__` (correctly rounded)."""
    flat = [float(v) for v in a.reshape(-1)]
    return np.asarray(flat, dtype=np.float64).reshape(a.shape)


# -- numbers ------------------------------------------------------------------------------
@st.composite
def rationals(draw: st.DrawFn, lo: Fraction, hi: Fraction) -> Fraction:
    """A rational in [lo, hi]: dyadic or not, with the end points and 0 drawn often."""
    specials = [v for v in (lo, hi, Q(0), Q(1), Q(-1), Q(1, 2)) if lo <= v <= hi]
    if specials and draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from(specials))
    den = draw(st.sampled_from(DENOMINATORS))
    num = draw(st.integers(math.ceil(lo * den), math.floor(hi * den)))
    return Q(num, den)


def away_from(
    values: st.SearchStrategy[Fraction], points: tuple[Fraction, ...], gap: Fraction
) -> st.SearchStrategy[Fraction]:
    """`values` at distance >= gap from each of `points` (kinks of piecewise ops)."""
    return values.filter(lambda v: all(abs(v - p) >= gap for p in points))


def arrays(shape: tuple[int, ...], elements: st.SearchStrategy[Any]) -> st.SearchStrategy[ObjArray]:
    """Object arrays of `shape` with elements drawn independently."""
    n = math.prod(shape)
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: obj_array(v, shape))


def distinct_arrays(shape: tuple[int, ...]) -> st.SearchStrategy[ObjArray]:
    """Arrays of pairwise distinct values k/10, k in [-40, 40]: no ties, gaps >= 1/10."""
    n = math.prod(shape)
    ks = st.lists(st.integers(-40, 40), min_size=n, max_size=n, unique=True)
    return ks.map(lambda v: obj_array([Q(k, 10) for k in v], shape))


def lattice_arrays(shape: tuple[int, ...], offset: Fraction) -> st.SearchStrategy[ObjArray]:
    """Values k/5 + offset: arrays with offsets 0 and 1/10 never come closer than 1/10."""
    return arrays(shape, st.integers(-20, 20).map(lambda k: Q(k, 5) + offset))


# -- shapes ---------------------------------------------------------------------------------
def shapes(
    min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 3
) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes (zero-size dims included unless min_side >= 1)."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable(n: int, min_side: int = 0) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """n mutually broadcastable shapes (ranks 0..3)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=0, max_dims=3, min_side=min_side, max_side=3
    ).map(lambda b: tuple(b.input_shapes))


@st.composite
def axes_of(draw: st.DrawFn, ndim: int) -> tuple[int, ...]:
    """A sorted subset of range(ndim), possibly empty (canonical `axes` attribute)."""
    chosen = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    return tuple(i for i, c in enumerate(chosen) if c)


@st.composite
def broadcast_source(draw: st.DrawFn, target: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to `target`: leading dims dropped, some dims set to 1."""
    drop = draw(st.integers(0, len(target)))
    kept = target[drop:]
    ones = draw(st.lists(st.booleans(), min_size=len(kept), max_size=len(kept)))
    return tuple(1 if o else d for d, o in zip(kept, ones, strict=True))


@st.composite
def reshape_pair(draw: st.DrawFn, min_side: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes of the same size: one list of factors grouped two ways."""
    factors = draw(st.lists(st.integers(min_side, 3), min_size=0, max_size=4))

    def grouping(fs: list[int]) -> tuple[int, ...]:
        cuts = draw(st.lists(st.booleans(), min_size=len(fs), max_size=len(fs)))
        out: list[int] = []
        for f, cut in zip(fs, cuts, strict=True):
            if out and not cut:
                out[-1] *= f
            else:
                out.append(f)
        ones = draw(st.integers(0, 1))
        return tuple(out) + (1,) * ones

    source = grouping(factors)
    target = grouping(draw(st.permutations(factors)))
    return source, target


@st.composite
def slice_spec(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
    """A resolved basic-slicing spec: (start, stop, step) per axis, 0 <= start <= stop <= d."""
    spec = []
    for d in shape:
        start = draw(st.integers(0, d))
        stop = draw(st.integers(start, d))
        spec.append((start, stop, draw(st.integers(1, 3))))
    return tuple(spec)


def sliced_shape(spec: tuple[tuple[int, int, int], ...]) -> tuple[int, ...]:
    """The shape a slicing spec selects."""
    return tuple(len(range(a, b, k)) for a, b, k in spec)


# -- one case per op ----------------------------------------------------------------------
DEFAULT = (Q(-4), Q(4))
# Operand ranges where an op is defined (and, for `smooth`, where its third derivative is
# moderate: the finite-difference tolerance in test_ops_vjp.py relies on it).
DOMAINS: dict[str, tuple[Fraction, Fraction]] = {
    "sqrt": (Q(0), Q(9)),
    "log": (Q(1, 4), Q(16)),
    "log1p": (Q(-3, 4), Q(16)),
    "exp": (Q(-8), Q(8)),
    "expm1": (Q(-8), Q(8)),
}
SMOOTH_DOMAINS: dict[str, tuple[Fraction, Fraction]] = {"sqrt": (Q(1, 4), Q(9))}
KINKED_AT_ZERO = ("abs", "relu", "leaky_relu")
GAP = Q(1, 8)

UNARY = (
    "neg",
    "abs",
    "square",
    "sqrt",
    "exp",
    "log",
    "log1p",
    "expm1",
    "tanh",
    "sigmoid",
    "softplus",
    "erf",
    "gelu",
    "silu",
    "sin",
    "cos",
    "relu",
    "leaky_relu",
    "step",
)
BINARY = ("add", "sub", "mul", "div", "maximum", "minimum", "greater")
REDUCTIONS = ("sum", "mean", "max", "argmax_mask")
# Reductions whose value is undefined on an empty group (tested separately).
NONEMPTY_GROUPS = ("mean", "max", "argmax_mask", "softmax", "log_softmax")


def elements(tag: str, smooth: bool) -> st.SearchStrategy[Fraction]:
    """Operand values for a unary or reducing op."""
    lo, hi = (SMOOTH_DOMAINS.get(tag) if smooth else None) or DOMAINS.get(tag, DEFAULT)
    values = rationals(lo, hi)
    if smooth and tag in KINKED_AT_ZERO:
        values = away_from(values, (Q(0),), GAP)
    return values


@st.composite
def unary_case(draw: st.DrawFn, tag: str, smooth: bool, min_side: int) -> OpCase:
    shape = draw(shapes(min_side=min_side))
    x = draw(arrays(shape, elements(tag, smooth)))
    attrs: dict[str, Any] = {}
    if tag == "leaky_relu":
        attrs["negative_slope"] = draw(st.sampled_from([0.01, 0.2, Q(1, 3), 1.5]))
    return OpCase(tag, (x,), attrs)


@st.composite
def binary_case(draw: st.DrawFn, tag: str, smooth: bool, min_side: int) -> OpCase:
    sa, sb = draw(broadcastable(2, min_side))
    if tag in ("maximum", "minimum") and smooth:
        return OpCase(tag, (draw(lattice_arrays(sa, Q(0))), draw(lattice_arrays(sb, Q(1, 10)))))
    a = draw(arrays(sa, rationals(*DEFAULT)))
    if tag == "div":  # denominators bounded away from 0
        mag = rationals(Q(1, 2), Q(4))
        b = draw(arrays(sb, st.tuples(mag, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])))
    else:
        b = draw(arrays(sb, rationals(*DEFAULT)))
    return OpCase(tag, (a, b))


@st.composite
def where_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    sc, sa, sb = draw(broadcastable(3, min_side))
    cond = draw(arrays(sc, st.sampled_from([Q(0), Q(1)])))
    a = draw(arrays(sa, rationals(*DEFAULT)))
    b = draw(arrays(sb, rationals(*DEFAULT)))
    return OpCase("where", (cond, a, b))


@st.composite
def reduction_case(draw: st.DrawFn, tag: str, smooth: bool, min_side: int) -> OpCase:
    nonempty = tag in NONEMPTY_GROUPS
    shape = draw(shapes(min_side=1 if nonempty else min_side))
    smooth_max = smooth and tag in ("max", "argmax_mask")
    x = draw(distinct_arrays(shape) if smooth_max else arrays(shape, elements(tag, smooth)))
    attrs: dict[str, Any] = {"axes": draw(axes_of(len(shape)))}
    if tag != "argmax_mask":
        attrs["keepdims"] = draw(st.booleans())
    return OpCase(tag, (x,), attrs)


@st.composite
def softmax_case(draw: st.DrawFn, tag: str, smooth: bool, min_side: int) -> OpCase:
    shape = draw(shapes(min_dims=1, min_side=1))
    x = draw(arrays(shape, rationals(*DEFAULT)))
    return OpCase(tag, (x,), {"axis": draw(st.integers(0, len(shape) - 1))})


@st.composite
def matmul_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    ba, bb = draw(
        hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=2, min_side=min_side, max_side=3
        ).map(lambda b: b.input_shapes)
    )
    n, k, m = (draw(st.integers(min_side, 3)) for _ in range(3))
    a = draw(arrays(tuple(ba) + (n, k), rationals(*DEFAULT)))
    b = draw(arrays(tuple(bb) + (k, m), rationals(*DEFAULT)))
    return OpCase("matmul", (a, b))


@st.composite
def transpose_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    shape = draw(shapes(max_dims=4, min_side=min_side))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    return OpCase("transpose", (draw(arrays(shape, rationals(*DEFAULT))),), {"axes": perm})


@st.composite
def reshape_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    source, target = draw(reshape_pair(min_side))
    return OpCase("reshape", (draw(arrays(source, rationals(*DEFAULT))),), {"shape": target})


@st.composite
def broadcast_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    target = draw(shapes(min_side=min_side))
    source = draw(broadcast_source(target))
    x = draw(arrays(source, rationals(*DEFAULT)))
    return OpCase("broadcast_to", (x,), {"shape": target})


@st.composite
def concat_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    base = draw(shapes(min_dims=1, min_side=min_side))
    axis = draw(st.integers(0, len(base) - 1))
    count = draw(st.integers(1, 3))
    parts = []
    for _ in range(count):
        shape = base[:axis] + (draw(st.integers(min_side, 3)),) + base[axis + 1 :]
        parts.append(draw(arrays(shape, rationals(*DEFAULT))))
    return OpCase("concat", tuple(parts), {"axis": axis})


@st.composite
def slice_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    shape = draw(shapes(min_side=min_side))
    spec = draw(slice_spec(shape))
    return OpCase("slice", (draw(arrays(shape, rationals(*DEFAULT))),), {"spec": spec})


@st.composite
def unslice_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    shape = draw(shapes(min_side=min_side))
    spec = draw(slice_spec(shape))
    x = draw(arrays(sliced_shape(spec), rationals(*DEFAULT)))
    return OpCase("unslice", (x,), {"shape": shape, "spec": spec})


@st.composite
def one_hot_case(draw: st.DrawFn, smooth: bool, min_side: int) -> OpCase:
    shape = draw(shapes(max_dims=2, min_side=min_side))
    classes = draw(st.integers(1, 4))
    labels = draw(arrays(shape, st.integers(0, classes - 1).map(Q)))
    return OpCase("one_hot", (labels,), {"num_classes": classes})


Builder = Callable[[bool, int], st.SearchStrategy[OpCase]]


def _builders() -> dict[str, Builder]:
    table: dict[str, Builder] = {}
    for tag in UNARY:
        table[tag] = partial(unary_case, tag)
    for tag in BINARY:
        table[tag] = partial(binary_case, tag)
    for tag in REDUCTIONS:
        table[tag] = partial(reduction_case, tag)
    for tag in ("softmax", "log_softmax"):
        table[tag] = partial(softmax_case, tag)
    table.update(
        where=where_case,
        matmul=matmul_case,
        transpose=transpose_case,
        reshape=reshape_case,
        broadcast_to=broadcast_case,
        concat=concat_case,
        slice=slice_case,
        unslice=unslice_case,
        one_hot=one_hot_case,
    )
    return table


CASE_BUILDERS = _builders()
CASE_TAGS = frozenset(CASE_BUILDERS)


def op_cases(tag: str, smooth: bool = False, min_side: int = 0) -> st.SearchStrategy[OpCase]:
    """Valid applications of op `tag` (see the module docstring for `smooth`); with
    min_side=1 no operand has a zero-size dim."""
    return CASE_BUILDERS[tag](smooth, min_side)
