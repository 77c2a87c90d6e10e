"""The hypothesis strategies: shapes and tensors as asked, values exact in every field,
inputs kept off kinks, small random models that pass gradient checks, and the hook for
new model kinds. The last test is written as a user would, with the `gradcheck` fixture."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.spec import exact, float64, interval
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify import kink_distance
from torchlean.verify import strategies as vs
from torchlean.verify.pytest_plugin import GradcheckFixture


@settings(deadline=None, max_examples=30)
@given(shape=vs.shapes(min_dims=1, max_dims=3, min_side=2, max_side=3))
def test_shapes_respect_their_bounds(shape: tuple[int, ...]) -> None:
    assert 1 <= len(shape) <= 3 and all(2 <= d <= 3 for d in shape)


@settings(deadline=None, max_examples=20)
@given(data=st.data())
def test_tensors_are_the_same_numbers_in_every_field(data: st.DataObject) -> None:
    shape = data.draw(vs.shapes(max_dims=2))
    drawn = {
        name: data.draw(vs.tensors(shape, name, vs.dyadics(-4, 4, 8)))
        for name in ("float", "exact", "interval")
    }
    for t in drawn.values():
        assert t.shape == tuple(shape)
    for x in drawn["exact"].numpy().reshape(-1):
        assert isinstance(x, Fraction) and (x * 256).denominator == 1
    for x in drawn["interval"].numpy().reshape(-1):
        assert x.a == x.b  # a point: the dyadic is exact at 113 bits
    assert drawn["exact"].field is exact and drawn["interval"].field is interval


@settings(deadline=None, max_examples=30)
@given(v=vs.away_from_kinks(2.0**-4), t=vs.distinct_tensors((2, 3), margin=0.25))
def test_kink_free_inputs_keep_their_margin(v: float, t: Tensor) -> None:
    assert abs(v) >= 2.0**-4
    values = t.numpy().reshape(-1)
    assert all(abs(a - b) >= 0.25 for a, b in itertools.combinations(values, 2))
    assert kink_distance(lambda x: F.max(x), t) >= 0.25


def test_kink_distance_measures_the_nearest_branch_switch() -> None:
    x = Tensor(np.array([0.5, -0.25, 3.0]), float64)
    assert kink_distance(F.relu, x) == 0.25
    # maximum(a, a/2 + 1) switches where a/2 - 1 = 0: nearest is a = 3, at 0.5.
    assert kink_distance(lambda a: F.maximum(a, a * 0.5 + 1.0), x) == 0.5
    assert math.isinf(kink_distance(F.tanh, x))
    tied = Tensor(np.array([[1.0, 1.0], [0.0, 2.0]]), float64)
    assert kink_distance(lambda a: F.max(a, axis=1), tied) == 0.0


def test_model_kinds_are_extensible_and_unknown_ones_refused() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        vs.models(kinds=("conv",))
    vs.register_model_kind("tiny", lambda field, **_: st.just(("a tiny model", field.name)))
    try:
        drawn: list[Any] = []

        @settings(max_examples=3)
        @given(vs.models(kinds=("tiny",), field="exact"))
        def draw(model: Any) -> None:
            drawn.append(model)

        draw()
        assert set(drawn) == {("a tiny model", "exact")}
    finally:
        vs._MODEL_KINDS.pop("tiny")


@settings(deadline=None, max_examples=15)
@given(model=vs.models(max_layers=2, max_width=4), data=st.data())
def test_random_models_pass_a_users_gradcheck(
    model: vs.MLP, data: st.DataObject, gradcheck: GradcheckFixture
) -> None:
    x = data.draw(vs.tensors((2, model.in_features), elements=vs.dyadics(-2, 2, 4)))
    assert set(model.params) == {f"{2 * i}.{k}" for i in range(len(model.widths) - 1)
                                 for k in ("weight", "bias")}
    assert model.apply(dict(model.params), x).shape == (2, model.out_features)

    def projected(p: Any, xi: Any) -> Any:  # what gradcheck(model, x) differentiates
        return F.sum(model.apply(p, xi))

    vs.assume_away_from_kinks(projected, (dict(model.params), x))
    report = gradcheck(model, x, method="interval")
    assert report.primary.count == sum(t.size for t in model.params.values()) + x.size
    assert gradcheck(model, x, method="fast").passed
