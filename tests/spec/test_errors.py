"""Bad input to the op table gets a clear, typed error naming what was wrong.

- shape mismatches raise ShapeError naming the op and the shapes, before any field
  primitive runs (a spy field records every primitive call);
- mixing fields raises FieldMismatchError (a TypeError) naming both fields;
- an op a field cannot evaluate raises UnsupportedOperation;
- bad axes, reshapes, permutations, indices and one_hot labels raise errors naming the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from torchlean.spec import (
    FieldMismatchError,
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
from torchlean.spec.fields import Field, IntervalField, NativeFloatField

Q = Fraction

# Every method of a float field except the helpers the Tensor constructor and dispatch use.
NOT_PRIMITIVES = {"shape_of", "xp", "dtype", "unsupported"}
PRIMITIVES = sorted(
    name for name in dir(NativeFloatField)
    if not name.startswith("_") and callable(getattr(NativeFloatField, name))
    and name not in NOT_PRIMITIVES
)


class SpyField(NativeFloatField):
    """float64 that records the name of every primitive called on it."""

    def __init__(self) -> None:
        super().__init__("spy", "float64")
        self.calls: list[str] = []


def _recording(name: str) -> Callable[..., Any]:
    base = getattr(NativeFloatField, name)

    def method(self: SpyField, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(name)
        return base(self, *args, **kwargs)

    return method


for _name in PRIMITIVES:
    setattr(SpyField, _name, _recording(_name))


def spy_tensors(*shapes: tuple[int, ...]) -> tuple[SpyField, list[Tensor]]:
    """Tensors of a fresh spy field, built directly (no primitive calls recorded)."""
    spy = SpyField()
    return spy, [Tensor(np.ones(s), spy) for s in shapes]


def test_spy_records_primitives() -> None:
    """The spy works: a valid op is seen calling its primitive."""
    spy, (a, b) = spy_tensors((2, 3), (3,))
    assert "add" in PRIMITIVES and "matmul" in PRIMITIVES and "exp" in PRIMITIVES
    total = a + b
    assert spy.calls == ["add"]
    np.testing.assert_array_equal(total.numpy(), np.full((2, 3), 2.0))


def named(shape: tuple[int, ...]) -> str:
    return re.escape(str(shape))


# (op, operand shapes, call): the message must name the op and every operand's shape.
MISMATCHES: list[tuple[str, list[tuple[int, ...]], Callable[..., Any]]] = [
    ("add", [(2, 3), (4,)], lambda a, b: a + b),
    ("sub", [(2, 3), (2,)], lambda a, b: F.sub(a, b)),
    ("mul", [(5,), (2, 3)], lambda a, b: a * b),
    ("div", [(2, 3), (3, 2)], lambda a, b: a / b),
    ("maximum", [(2, 1, 3), (4, 2)], lambda a, b: F.maximum(a, b)),
    ("minimum", [(3,), (4,)], lambda a, b: F.minimum(a, b)),
    ("greater", [(3,), (4,)], lambda a, b: F.greater(a, b)),
    ("where", [(2, 3), (3,), (4,)], lambda c, a, b: F.where(c, a, b)),
    ("matmul", [(2, 3), (4, 5)], lambda a, b: a @ b),
    ("matmul", [(3, 2, 3), (3, 2, 4)], lambda a, b: F.matmul(a, b)),
    ("concat", [(2, 3), (3, 4)], lambda a, b: F.concat([a, b], 0)),
]


@pytest.mark.parametrize(("tag", "shapes", "call"), MISMATCHES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISMATCHES)])
def test_shape_mismatch_names_op_and_shapes_before_any_primitive(
    tag: str, shapes: list[tuple[int, ...]], call: Callable[..., Any]
) -> None:
    spy, xs = spy_tensors(*shapes)
    with pytest.raises(ShapeError) as info:
        call(*xs)
    message = str(info.value)
    assert message.startswith(f"{tag}:"), message
    for s in shapes:
        assert str(s) in message, f"{s} not named in {message!r}"
    assert spy.calls == [], f"primitives ran before the ShapeError: {spy.calls}"


@pytest.mark.parametrize(("shapes"), [
    pytest.param([(2, 3, 4), (5, 4, 2)], id="batch"),
    pytest.param([(3,), (4, 2)], id="vector"),
])
def test_matmul_mismatch_names_the_operands_shapes(shapes: list[tuple[int, ...]]) -> None:
    spy, (a, b) = spy_tensors(*shapes)
    with pytest.raises(ShapeError) as info:
        F.matmul(a, b)
    for s in shapes:
        assert str(s) in str(info.value), str(info.value)
    assert spy.calls == []


# Unary ops with bad attributes, applied straight through the table: (op, shape, attrs, text)
BAD_ATTRS: list[tuple[str, tuple[int, ...], dict[str, Any], str]] = [
    ("reshape", (2, 3), {"shape": (4,)}, r"\(2, 3\).*\(4,\)"),
    ("reshape", (2, 3), {"shape": (-2, -3)}, r"\(-2, -3\)"),
    ("broadcast_to", (2, 3), {"shape": (4, 3)}, r"\(2, 3\).*\(4, 3\)"),
    ("broadcast_to", (2, 3), {"shape": (3,)}, r"\(2, 3\).*\(3,\)"),
    ("transpose", (2, 3), {"axes": (0, 0)}, r"\(0, 0\)"),
    ("transpose", (2, 3), {"axes": (0,)}, r"\(0,\)"),
    ("sum", (2, 3), {"axes": (2,), "keepdims": False}, r"\(2,\)"),
    ("sum", (2, 3), {"axes": (1, 0), "keepdims": False}, r"\(1, 0\)"),
    ("max", (2, 3), {"axes": (0, 0), "keepdims": True}, r"\(0, 0\)"),
    ("max", (0, 3), {"axes": (0,), "keepdims": False}, r"empty"),
    ("softmax", (2, 3), {"axis": 2}, r"\(2,\)"),
    ("slice", (2, 3), {"spec": ((0, 3, 1), (0, 3, 1))}, r"\(0, 3, 1\)"),
    ("slice", (2, 3), {"spec": ((0, 2, 1),)}, r"\(2, 3\)"),
    ("slice", (2, 3), {"spec": ((0, 2, 0), (0, 3, 1))}, r"\(0, 2, 0\)"),
    ("unslice", (2, 3), {"shape": (4, 4), "spec": ((0, 4, 1), (0, 4, 1))}, r"\(2, 3\)"),
]


@pytest.mark.parametrize(("tag", "shape", "attrs", "text"), BAD_ATTRS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_ATTRS)])
def test_bad_attributes_raise_shape_error_before_any_primitive(
    tag: str, shape: tuple[int, ...], attrs: dict[str, Any], text: str
) -> None:
    spy, (x,) = spy_tensors(shape)
    with pytest.raises(ShapeError, match=rf"^{tag}:.*{text}"):
        apply(tag, x, **attrs)
    assert spy.calls == []


@pytest.mark.parametrize("fld", [float64, float32, ieee32exec, exact, interval],
                         ids=lambda f: f.name)
def test_shape_errors_do_not_depend_on_the_field(fld: Field) -> None:
    a, b = tensor(np.ones((2, 3)), fld), tensor(np.ones(4), fld)
    with pytest.raises(ShapeError, match=r"add: .*\(2, 3\).*\(4,\)"):
        a + b


# -- mixing fields --------------------------------------------------------------------------
MIXABLE = [float64, float32, ieee32exec, exact, interval, IntervalField(53)]


def names_field(message: str, fld: Field) -> bool:
    return re.search(rf"(?<![\w]){re.escape(fld.name)}(?![\w])", message) is not None


@pytest.mark.parametrize("left", MIXABLE, ids=lambda f: f.name)
@pytest.mark.parametrize("right", MIXABLE, ids=lambda f: f.name)
def test_mixing_fields_is_a_type_error_naming_both(left: Field, right: Field) -> None:
    if left is right:
        return
    a, b = tensor([1, 2], left), tensor([3, 4], right)
    calls: list[Callable[[], Any]] = [
        lambda: a + b, lambda: F.where(a, a, b), lambda: F.concat([a, a, b])]
    for call in calls:
        with pytest.raises(FieldMismatchError) as info:
            call()
        assert isinstance(info.value, TypeError)
        message = str(info.value)
        assert names_field(message, left) and names_field(message, right), message


def test_field_mismatch_comes_before_any_primitive() -> None:
    spy, (a,) = spy_tensors((2,))
    with pytest.raises(FieldMismatchError, match=r"spy.*float|float.*spy"):
        F.mul(a, tensor([1.0, 2.0]))
    assert spy.calls == []


# -- unsupported operations -------------------------------------------------------------
def test_unsupported_operation_is_typed() -> None:
    with pytest.raises(UnsupportedOperation) as info:
        F.exp(tensor([Q(1, 3)], "exact"))
    e = info.value
    assert isinstance(e, NotImplementedError)
    assert (e.op, e.field) == ("exp", "exact")
    assert str(e) == "op 'exp' is not supported in field 'exact'"


def test_exact_division_by_zero_and_negative_sqrt_name_the_field() -> None:
    with pytest.raises(ZeroDivisionError, match="div.*exact"):
        tensor([1, 2], "exact") / tensor([1, 0], "exact")
    with pytest.raises(ValueError, match=r"sqrt.*-4.*exact"):
        F.sqrt(tensor([4, -4], "exact"))


# -- bad axes, reshapes, permutations and indices through the functional API -----------
X = tensor(np.arange(6.0).reshape(2, 3))

BAD_CALLS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("sum axis", lambda: F.sum(X, 2), ShapeError, r"sum: axis 2 .*rank 2"),
    ("mean axis", lambda: F.mean(X, -3), ShapeError, r"mean: axis -3"),
    ("max repeated", lambda: F.max(X, (1, -1)), ShapeError, r"max: repeated axis.*\(1, -1\)"),
    ("softmax axis", lambda: F.softmax(X, 2), ShapeError, r"softmax: axis 2"),
    ("concat axis", lambda: F.concat([X, X], 2), ShapeError, r"concat: axis 2"),
    ("concat none", lambda: F.concat([]), ShapeError, r"concat"),
    ("reshape size", lambda: F.reshape(X, (4,)), ShapeError, r"reshape: .*\(2, 3\).*\(4,\)"),
    ("reshape -1 -1", lambda: F.reshape(X, (-1, -1)), ShapeError, r"reshape: .*\(-1, -1\)"),
    ("reshape -1", lambda: F.reshape(X, (-1, 4)), ShapeError, r"reshape: .*\(2, 3\).*\(-1, 4\)"),
    ("transpose", lambda: F.transpose(X, (1, 1)), ShapeError, r"transpose: \(1, 1\)"),
    ("transpose rank", lambda: X.transpose(0, 1, 2), ShapeError, r"transpose: \(0, 1, 2\)"),
    ("swap_last", lambda: F.swap_last(tensor([1.0])), ShapeError, r"swap_last: .*\(1,\)"),
    ("matmul 0-d", lambda: F.matmul(tensor(1.0), X), ShapeError, r"matmul: .*scalar"),
    ("index range", lambda: X[2], IndexError, r"index 2 out of range for axis 0 of size 2"),
    ("index negative", lambda: X[:, -4], IndexError, r"index -4 out of range for axis 1"),
    ("too many", lambda: X[0, 0, 0], IndexError, r"too many indices.*\(2, 3\)"),
    ("float index", lambda: X[1.5], IndexError, r"unsupported index 1\.5"),
    ("array index", lambda: X[[0, 1]], IndexError, r"unsupported index \[0, 1\]"),
    ("negative step", lambda: X[::-1], IndexError, r"positive slice steps"),
    ("two ellipses", lambda: X[..., 0, ...], IndexError, r"one Ellipsis"),
    ("power", lambda: F.power(X, -1), ValueError, r"power: .*-1"),
    ("truth value", lambda: bool(X), TypeError, r"truth value"),
    ("unknown op", lambda: apply("conv9d", X), KeyError, r"conv9d.*known ops:.*add"),
    ("arity", lambda: apply("add", X), TypeError, r"add: takes 2 tensor operands, got 1"),
    ("operand type", lambda: apply("add", X, "a"), TypeError, r"add: cannot use str 'a'"),
    ("first operand", lambda: apply("neg", 3.0),  # type: ignore[type-var]  # the mistake
     TypeError, r"neg: the first operand"),
    ("bool operand", lambda: X + True, TypeError, r"add: cannot use bool"),
]


@pytest.mark.parametrize(("name", "call", "error", "text"), BAD_CALLS,
                         ids=[b[0] for b in BAD_CALLS])
def test_bad_arguments_raise_clear_errors(
    name: str, call: Callable[[], Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        call()


# -- one_hot labels -------------------------------------------------------------------------
LABEL_FIELDS = ["float", "float32", "ieee32exec", "exact", "interval"]


@pytest.mark.parametrize("dtype", LABEL_FIELDS)
@pytest.mark.parametrize(("label", "shown"), [
    (1.5, r"1\.5|3, 2|Fraction\(3, 2\)"), (3, "3"), (-1, "-1"),
])
def test_one_hot_bad_label_is_named(dtype: str, label: float, shown: str) -> None:
    labels = tensor([0, 2, label], dtype)
    with pytest.raises(ValueError, match=rf"one_hot: label .*({shown}).* at flat index 2"):
        F.one_hot(labels, 3)


@pytest.mark.parametrize("dtype", LABEL_FIELDS)
def test_one_hot_good_labels(dtype: str) -> None:
    out = F.one_hot(tensor([[2, 0]], dtype), 3)
    assert out.shape == (1, 2, 3)
    np.testing.assert_array_equal(np.asarray(tensor_values(out)), [[[0, 0, 1], [1, 0, 0]]])


def tensor_values(t: Tensor) -> list[Any]:
    """Values as Python numbers (interval points by their midpoint)."""
    flat = [float(v.mid) if hasattr(v, "mid") else float(v) for v in t.numpy().reshape(-1)]
    return np.asarray(flat).reshape(t.shape).tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("dtype", ["float", "ieee32exec"])
@pytest.mark.parametrize("label", [
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
])
def test_one_hot_non_finite_label_is_named(dtype: str, label: float) -> None:
    with pytest.raises(ValueError, match=r"one_hot: label .*(nan|inf).* at flat index 1"):
        F.one_hot(tensor([0, label], dtype), 3)


@pytest.mark.parametrize("classes", [0, -1, 2.5, True])
def test_one_hot_bad_num_classes_is_named(classes: Any) -> None:
    with pytest.raises(ValueError, match=rf"one_hot: num_classes .*{re.escape(repr(classes))}"):
        F.one_hot(tensor([0]), classes)
