"""Shapes through the op table: every op's evaluated output shape equals its shape rule's
and NumPy's result shape for the same operation, over every field.

Cases come from `strategies.op_cases` (broadcastable pairs and triples, random axes and
keepdims, batched matmul with broadcast batch dims, permutations, reshapes, concat,
slices, one_hot with integer labels). The functional API's argument normalisation
(negative axes, -1 in reshape, vector matmul, NumPy basic indexing) is checked against
NumPy on its own. Zero-size operands are covered over `float` by the property tests and
over the other fields by the explicit table at the end.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_references import TRANSCENDENTAL_OPS, numpy_reference
from strategies import (
    CASE_TAGS,
    arrays,
    axes_of,
    op_cases,
    rationals,
    shapes,
    to_float64,
)

from torchlean.spec import (
    OPS,
    Field,
    ShapeError,
    Tensor,
    UnsupportedOperation,
    apply,
    exact,
    float32,
    float64,
    ieee32exec,
    interval,
    tensor,
)
from torchlean.spec import functional as F

TAGS = sorted(OPS)
OTHER_FIELDS = [float32, ieee32exec, exact, interval]


def test_every_op_has_a_shape_case() -> None:
    """New ops cannot slip in untested: each tag of OPS needs a case strategy here."""
    missing = sorted(set(OPS) - CASE_TAGS)
    assert not missing, f"ops without a shape test case in strategies.py: {missing}"
    stale = sorted(CASE_TAGS - set(OPS))
    assert not stale, f"case strategies for ops that are not in OPS: {stale}"


def check_shapes(fld: Field, data: st.DataObject, tag: str, min_side: int) -> None:
    case = data.draw(op_cases(tag, min_side=min_side), label="case")
    rule = OPS[tag].shape(case.shapes, case.attrs)
    expected = numpy_reference(tag, case.floats(), case.attrs).shape
    try:
        out = apply(tag, *case.tensors(fld), **case.attrs)
    except UnsupportedOperation as e:
        # Only ops with no rational value may be refused, and only by `exact`.
        assert fld is exact and tag in TRANSCENDENTAL_OPS, e
        return
    assert isinstance(out, Tensor)
    assert out.shape == rule == expected, (out.shape, rule, expected)
    assert fld.shape_of(out.data) == out.shape  # the array agrees with the tensor's shape
    assert out.field is fld


@pytest.mark.parametrize("tag", TAGS)
@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_output_shape_over_float(tag: str, data: st.DataObject) -> None:
    """Over `float`, zero-size dims included."""
    check_shapes(float64, data, tag, min_side=0)




def field_tag_params() -> list[Any]:
    return [
        pytest.param(
            fld,
            tag,
            id=f"{tag}-{fld.name}",
        )
        for tag in TAGS
        for fld in OTHER_FIELDS
    ]


@pytest.mark.parametrize(("fld", "tag"), field_tag_params())
@settings(deadline=None, max_examples=6)
@given(data=st.data())
def test_output_shape_over_other_fields(fld: Field, tag: str, data: st.DataObject) -> None:
    """The same over float32, ieee32exec, exact and interval (non-empty operands)."""
    check_shapes(fld, data, tag, min_side=1)


# -- the functional API's argument handling, against NumPy --------------------------------
def floats_of(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    return arrays(shape, rationals(Fraction(-4), Fraction(4))).map(to_float64)


@st.composite
def axis_argument(draw: st.DrawFn, ndim: int) -> Any:
    """An axis argument as users write it: None, an int or a tuple, negatives allowed."""
    chosen = [a - ndim if draw(st.booleans()) else a for a in draw(axes_of(ndim))]
    signed = list(draw(st.permutations(chosen)))
    if not signed:
        return draw(st.sampled_from([None, ()]))
    if len(signed) == 1 and draw(st.booleans()):
        return signed[0]
    return tuple(signed)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_reduction_arguments_follow_numpy(name: str, data: st.DataObject) -> None:
    x = data.draw(shapes(min_side=1).flatmap(floats_of))
    axis = data.draw(axis_argument(x.ndim))
    keepdims = data.draw(st.booleans())
    got = getattr(F, name)(tensor(x), axis, keepdims)
    expected = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert got.shape == expected.shape
    if name == "max":  # a selection: exact
        np.testing.assert_array_equal(got.numpy(), expected)


@settings(deadline=None, max_examples=60)
@given(
    a_shape=shapes(min_dims=1, max_dims=3, min_side=1),
    b_rank=st.integers(1, 3),
    batch_b=shapes(max_dims=1, min_side=1),
    m=st.integers(1, 3),
)
def test_matmul_promotes_vectors_like_numpy(
    a_shape: tuple[int, ...], b_rank: int, batch_b: tuple[int, ...], m: int
) -> None:
    k = a_shape[-1]
    b_shape = (k,) if b_rank == 1 else batch_b[: b_rank - 2] + (k, m)
    a, b = np.ones(a_shape), np.ones(b_shape)
    try:
        expected = np.matmul(a, b).shape
    except ValueError:  # batch dims that do not broadcast: the spec must refuse too
        with pytest.raises(ShapeError):
            F.matmul(tensor(a), tensor(b))
        return
    assert F.matmul(tensor(a), tensor(b)).shape == expected
    assert (tensor(a) @ tensor(b)).shape == expected


@settings(deadline=None, max_examples=60)
@given(shape=shapes(max_dims=4), data=st.data())
def test_transposes_follow_numpy(shape: tuple[int, ...], data: st.DataObject) -> None:
    x = np.arange(float(np.prod(shape))).reshape(shape)
    t = tensor(x)
    np.testing.assert_array_equal(F.transpose(t).numpy(), np.transpose(x))
    np.testing.assert_array_equal(t.T.numpy(), x.T)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    np.testing.assert_array_equal(t.transpose(*perm).numpy(), np.transpose(x, perm))
    if len(shape) >= 2:
        np.testing.assert_array_equal(t.mT.numpy(), np.swapaxes(x, -1, -2))


@settings(deadline=None, max_examples=60)
@given(shape=shapes(max_dims=4, min_side=1), data=st.data())
def test_reshape_with_minus_one_and_flatten(shape: tuple[int, ...], data: st.DataObject) -> None:
    x = np.arange(float(np.prod(shape))).reshape(shape)
    target = list(data.draw(st.permutations(shape)))
    if target:
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    np.testing.assert_array_equal(F.reshape(tensor(x), target).numpy(), x.reshape(target))
    start = data.draw(st.integers(0, max(len(shape) - 1, 0)))
    flat = F.flatten(tensor(x), start)
    assert flat.shape == shape[:start] + (int(np.prod(shape[start:])),)


@st.composite
def basic_index(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """A NumPy basic index: ints (negative too), slices with positive steps, None, one ...."""
    items: list[Any] = []
    for d in shape[: draw(st.integers(0, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "slice"]))
        if kind == "int" and d > 0:
            items.append(draw(st.integers(-d, d - 1)))
        else:
            bound = st.none() | st.integers(-d - 2, d + 2)
            items.append(slice(draw(bound), draw(bound), draw(st.none() | st.integers(1, 3))))
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    return tuple(items)


@settings(deadline=None, max_examples=150)
@given(shape=shapes(max_dims=3), data=st.data())
def test_getitem_follows_numpy_basic_indexing(shape: tuple[int, ...], data: st.DataObject) -> None:
    x = np.arange(float(np.prod(shape))).reshape(shape)
    index = data.draw(basic_index(shape))
    try:
        expected = x[index]
    except IndexError:  # e.g. an int landing on a zero-size axis after an Ellipsis
        with pytest.raises(IndexError):
            tensor(x)[index]
        return
    got = tensor(x)[index]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.numpy(), expected)


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_concat_negative_axis_and_broadcast_helpers(data: st.DataObject) -> None:
    base = data.draw(shapes(min_dims=1, min_side=1))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    parts = []
    for n in sizes:
        s = list(base)
        s[axis] = n
        parts.append(np.full(s, float(n)))
    got = F.concat([tensor(p) for p in parts], axis)
    np.testing.assert_array_equal(got.numpy(), np.concatenate(parts, axis=axis))
    # sum_to_shape undoes broadcast_to's shape change (its adjoint).
    small = tuple(1 if data.draw(st.booleans()) else d for d in base)
    big = F.broadcast_to(tensor(np.ones(small)), base)
    assert big.shape == np.broadcast_shapes(small, base)
    assert F.sum_to_shape(big, small).shape == small


# -- zero-size operands over every field ------------------------------------------------
# (tag, shape, axes): what NumPy does with the same reduction, or ShapeError where the
# reduced group is empty and the op has no value there.
ZERO_SIZE = [
    ("sum", (0, 3), (1,)),
    ("sum", (2, 0), ()),
    ("sum", (0,), ()),
    ("sum", (0, 3), (0, 1)),
    ("sum", (2, 0), (1,)),
    ("max", (0, 3), (1,)),
    ("max", (2, 0), ()),
    ("max", (0, 3), (0,)),
    ("argmax_mask", (0, 3), (1,)),
    ("argmax_mask", (2, 0), (1,)),
    ("softmax", (0, 3), (1,)),
    ("softmax", (2, 0), (1,)),
]
FIELDS = [float64, float32, ieee32exec, exact, interval]
def zero_size_params() -> list[Any]:
    params = []
    for tag, shape, axes in ZERO_SIZE:
        for fld in FIELDS:
            params.append(
                pytest.param(fld, tag, shape, axes, id=f"{tag}-{shape}-{axes}-{fld.name}")
            )
    return params


@pytest.mark.parametrize(("fld", "tag", "shape", "axes"), zero_size_params())
def test_zero_size_reductions(
    fld: Field, tag: str, shape: tuple[int, ...], axes: tuple[int, ...]
) -> None:
    x = tensor(np.zeros(shape), fld)
    group = int(np.prod([shape[a] for a in axes]))
    if tag == "softmax":
        if fld is exact and group:  # exp has no exact value: refused whatever the size
            with pytest.raises(UnsupportedOperation, match="softmax"):
                F.softmax(x, axes[0])
            return
        # Softmax over an empty axis is vacuous: an empty result, or a ShapeError.
        try:
            out = F.softmax(x, axes[0])
        except ShapeError:
            assert group == 0
            return
        assert out.shape == shape
        return
    call = (
        (lambda: F.argmax_mask(x, axes))
        if tag == "argmax_mask"
        else (lambda: getattr(F, tag)(x, axes))
    )
    if tag in ("max", "argmax_mask") and group == 0:
        with pytest.raises(ShapeError, match=tag):
            call()
        return
    expected = (
        x.shape if tag == "argmax_mask" else getattr(np, tag)(np.zeros(shape), axis=axes).shape
    )
    assert call().shape == expected




@pytest.mark.parametrize(
    "fld",
    [
        float64,
        float32,
        ieee32exec,
        exact,
        interval,
    ],
    ids=lambda f: f.name,
)
@pytest.mark.parametrize("tag", ["slice", "unslice"])
def test_0d_slicing_over_object_fields(fld: Field, tag: str) -> None:
    x = tensor(3, fld)
    attrs: dict[str, Any] = {"spec": ()} if tag == "slice" else {"spec": (), "shape": ()}
    out = apply(tag, x, **attrs)
    assert out.shape == ()
    element = out.numpy()[()]
    assert not isinstance(element, np.ndarray), f"{tag} nested an array: {out.data!r}"
    assert out.item() == x.item()


def test_transpose_accepts_negative_axes_like_numpy() -> None:
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(F.transpose(tensor(x), (-1, 0)).numpy(),
                                  np.transpose(x, (-1, 0)))
