"""Every op in the table passes every applicable gradient-check method, under hypothesis.

Each op gets a case: inputs drawn in its domain, and a scalar function
sum(op(inputs) * c) with a fixed random weight c (so every output entry matters, unlike a
plain sum, whose softmax gradient is 0). Ops with kinks are checked away from them
(`assume_away_from_kinks`). The exact method runs wherever the op has rational values;
for the others the test asserts that it refuses with UnsupportedOperation (the stated
reason). A new op without a case fails `test_every_op_has_a_case`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from torchlean.spec import UnsupportedOperation
from torchlean.spec import float64 as S_FLOAT
from torchlean.spec import functional as F
from torchlean.spec.ops import OPS
from torchlean.spec.tensor import Tensor
from torchlean.verify import assert_gradients_match
from torchlean.verify import strategies as vs

# Kinks at least this far away: 8x the largest central-difference offset, 2 * 2^-18 *
# max(1, |x|) with |x| <= 8 here, so both steps stay on one side of every kink.
MARGIN = 2.0**-10
INEXACT_REASON = "no rational value (exp, log, trig, erf...): exact refuses"
IRRATIONAL = {
    "exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "erf", "gelu", "silu",
    "sin", "cos", "softmax", "log_softmax",
}
METHODS = ("central", "fast", "mpmath", "interval", "exact")

E = vs.dyadics(-2, 2, 6)
AWAY = vs.away_from_kinks(2.0**-3, -2, 2, 6)
NONZERO = st.one_of(vs.dyadics(0.5, 2, 6), vs.dyadics(-2, -0.5, 6))
SQUARES = st.integers(2, 12).map(lambda k: (k / 4) ** 2)  # sqrt stays rational


@dataclass
class Case:
    f: Callable[..., Any]
    args: tuple[Any, ...]
    argnums: tuple[int, ...]
    kinks: bool = False


def weighted(data: st.DataObject, op: Callable[..., Any], inputs: list[Tensor],
             extra: tuple[Any, ...] = (), kinks: bool = False) -> Case:
    """f(*inputs, *extra, c) = sum(op(*inputs, *extra) * c), differentiated in `inputs`."""
    shape = op(*inputs, *extra).shape
    c = data.draw(vs.tensors(shape, elements=vs.dyadics(-2, 2, 4)), label="c")
    n = len(inputs)

    def f(*args: Any) -> Any:
        return F.sum(op(*args[: n + len(extra)]) * args[-1])

    return Case(f, (*inputs, *extra, c), tuple(range(n)), kinks)


def small_shape(data: st.DataObject, min_dims: int = 0) -> tuple[int, ...]:
    return data.draw(vs.shapes(min_dims=min_dims, max_dims=2, max_side=3), label="shape")


def unary(fn: Callable[..., Any], elements: st.SearchStrategy[float] = E,
          kinks: bool = False) -> Callable[[st.DataObject], Case]:
    def build(data: st.DataObject) -> Case:
        x = data.draw(vs.tensors(small_shape(data), elements=elements), label="x")
        return weighted(data, fn, [x], kinks=kinks)

    return build


def binary(fn: Callable[..., Any], right: st.SearchStrategy[float] = E,
           kinks: bool = False) -> Callable[[st.DataObject], Case]:
    def build(data: st.DataObject) -> Case:
        pair = hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)
        sa, sb = data.draw(pair, label="shapes").input_shapes
        a = data.draw(vs.tensors(sa, elements=E), label="a")
        b = data.draw(vs.tensors(sb, elements=right), label="b")
        return weighted(data, fn, [a, b], kinks=kinks)

    return build


def reduction(fn: Callable[..., Any], distinct: bool = False) -> Callable[[st.DataObject], Case]:
    def build(data: st.DataObject) -> Case:
        shape = small_shape(data, min_dims=1)
        x = data.draw(vs.distinct_tensors(shape) if distinct else vs.tensors(shape, elements=E))
        axis = data.draw(st.one_of(st.none(), st.integers(0, len(shape) - 1)), label="axis")
        keep = data.draw(st.booleans(), label="keepdims")
        return weighted(data, lambda t: fn(t, axis, keep), [x], kinks=distinct)

    return build


def along_axis(fn: Callable[..., Any]) -> Callable[[st.DataObject], Case]:
    def build(data: st.DataObject) -> Case:
        shape = small_shape(data, min_dims=1)
        x = data.draw(vs.tensors(shape, elements=E), label="x")
        axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
        return weighted(data, lambda t: fn(t, axis), [x])

    return build


def matmul_case(data: st.DataObject) -> Case:
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = data.draw(st.sampled_from([((), ()), ((2,), ()), ((), (2,)), ((2,), (1,))]))
    a = data.draw(vs.tensors(batch_a + (m, k), elements=E), label="a")
    b = data.draw(vs.tensors(batch_b + (k, n), elements=E), label="b")
    return weighted(data, F.matmul, [a, b])


def transpose_case(data: st.DataObject) -> Case:
    shape = small_shape(data, min_dims=1)
    perm = data.draw(st.permutations(range(len(shape))), label="perm")
    x = data.draw(vs.tensors(shape, elements=E), label="x")
    return weighted(data, lambda t: F.transpose(t, perm), [x])


def reshape_case(data: st.DataObject) -> Case:
    shape = small_shape(data, min_dims=1)
    x = data.draw(vs.tensors(shape, elements=E), label="x")
    target = data.draw(st.sampled_from([(-1,), (1, -1), tuple(reversed(shape)) + (1,)]))
    return weighted(data, lambda t: F.reshape(t, target), [x])


def broadcast_case(data: st.DataObject) -> Case:
    small = data.draw(st.sampled_from([(3,), (2, 1), (1, 3), ()]), label="from")
    x = data.draw(vs.tensors(small, elements=E), label="x")
    return weighted(data, lambda t: F.broadcast_to(t, (2, 3)), [x])


def concat_case(data: st.DataObject) -> Case:
    axis = data.draw(st.integers(0, 1), label="axis")
    sizes = data.draw(st.lists(st.integers(1, 2), min_size=1, max_size=3), label="sizes")
    parts = [data.draw(vs.tensors((s, 2) if axis == 0 else (2, s), elements=E)) for s in sizes]
    return weighted(data, lambda *ts: F.concat(list(ts), axis), parts)


def slice_case(data: st.DataObject) -> Case:
    x = data.draw(vs.tensors((4, 3), elements=E), label="x")
    return weighted(data, lambda t: t[1::2, :2], [x])


def unslice_case(data: st.DataObject) -> Case:
    x = data.draw(vs.tensors((2, 2), elements=E), label="x")
    spec = ((0, 4, 2), (1, 3, 1))
    return weighted(data, lambda t: F.apply_unslice(t, (4, 3), spec), [x])


def step_case(data: st.DataObject) -> Case:
    x = data.draw(vs.tensors(small_shape(data), elements=AWAY), label="x")
    return weighted(data, lambda t: F.step(t) * F.square(t), [x], kinks=True)


def greater_case(data: st.DataObject) -> Case:
    a = data.draw(vs.tensors((2, 3), elements=E), label="a")
    b = data.draw(vs.tensors((3,), elements=E), label="b")
    return weighted(data, lambda s, t: F.greater(s, t) * s * t, [a, b], kinks=True)


def where_case(data: st.DataObject) -> Case:
    a = data.draw(vs.tensors((2, 3), elements=E), label="a")
    b = data.draw(vs.tensors((3,), elements=E), label="b")
    return weighted(data, lambda s, t: F.where(F.greater(s, t), s * t, t - s), [a, b], kinks=True)


def argmax_case(data: st.DataObject) -> Case:
    x = data.draw(vs.distinct_tensors((2, 3)), label="x")
    axis = data.draw(st.sampled_from([0, 1, None]), label="axis")
    return weighted(data, lambda t: F.argmax_mask(t, axis) * t, [x], kinks=True)


def one_hot_case(data: st.DataObject) -> Case:
    labels = Tensor(np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=2, max_size=2)),
                               dtype=np.float64), S_FLOAT)
    x = data.draw(vs.tensors((2, 3), elements=E), label="x")
    return weighted(data, lambda t, lab: F.one_hot(lab, 3) * t, [x], extra=(labels,))

CASES: dict[str, Callable[[st.DataObject], Case]] = {
    "neg": unary(F.neg), "square": unary(F.square), "exp": unary(F.exp),
    "expm1": unary(F.expm1), "tanh": unary(F.tanh), "sigmoid": unary(F.sigmoid),
    "softplus": unary(F.softplus), "erf": unary(F.erf), "gelu": unary(F.gelu),
    "silu": unary(F.silu), "sin": unary(F.sin), "cos": unary(F.cos),
    "log": unary(F.log, vs.dyadics(0.5, 3, 6)), "log1p": unary(F.log1p, vs.dyadics(-0.5, 3, 6)),
    "sqrt": unary(F.sqrt, SQUARES),
    "abs": unary(F.abs, AWAY, kinks=True), "relu": unary(F.relu, AWAY, kinks=True),
    "leaky_relu": unary(lambda t: F.leaky_relu(t, 0.125), AWAY, kinks=True),
    "add": binary(F.add), "sub": binary(F.sub), "mul": binary(F.mul),
    "div": binary(F.div, NONZERO),
    "maximum": binary(F.maximum, kinks=True), "minimum": binary(F.minimum, kinks=True),
    "sum": reduction(F.sum), "mean": reduction(F.mean), "max": reduction(F.max, distinct=True),
    "softmax": along_axis(F.softmax), "log_softmax": along_axis(F.log_softmax),
    "matmul": matmul_case, "transpose": transpose_case, "reshape": reshape_case,
    "broadcast_to": broadcast_case, "concat": concat_case, "slice": slice_case,
    "unslice": unslice_case, "step": step_case, "greater": greater_case,
    "where": where_case, "argmax_mask": argmax_case, "one_hot": one_hot_case,
}


def test_every_op_has_a_case() -> None:
    missing = sorted(set(OPS) - set(CASES))
    assert not missing, f"ops without a gradcheck case: {missing}"


@pytest.mark.parametrize("tag", sorted(CASES))
@settings(deadline=None, max_examples=20)
@given(data=st.data())
def test_op_passes_every_method(tag: str, data: st.DataObject) -> None:
    case = CASES[tag](data)
    if case.kinks:
        vs.assume_away_from_kinks(case.f, case.args, MARGIN)
    for method in METHODS:
        if method == "exact" and tag in IRRATIONAL:
            with pytest.raises(UnsupportedOperation):  # INEXACT_REASON
                assert_gradients_match(case.f, case.args, argnums=case.argnums, method=method)
            continue
        report = assert_gradients_match(case.f, case.args, argnums=case.argnums, method=method)
        assert report.comparisons and all(c.count > 0 for c in report.comparisons)
        if method == "exact":
            assert report.primary.exact_max_abs_error == 0
