"""The exact method on a rational MLP (matmul, add, relu, mse over Fractions): exactly
zero error, and a one-ulp perturbation of one gradient entry is caught and named."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime import autograd as ad
from torchlean.spec import exact as EXACT
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify import gradcheck
from torchlean.verify import strategies as vs
from torchlean.verify.gradients.strategies import MLP

RATIONAL_MLPS = vs.models(field="exact", activations=("relu",), max_layers=3, max_width=4)


def mse(pred: Any, target: Any) -> Any:
    return F.mean(F.square(pred - target))


def loss(params: Any, x: Any, y: Any) -> Any:
    return mse(MLP_BOX[0].apply(params, x), y)


MLP_BOX: list[MLP] = []  # the model whose apply `loss` uses (set per example)


@st.composite
def problems(draw: st.DrawFn) -> tuple[MLP, Tensor, Tensor]:
    model = draw(RATIONAL_MLPS)
    batch = draw(st.integers(1, 3))
    x = draw(vs.tensors((batch, model.in_features), "exact", vs.dyadics(-2, 2, 4)))
    y = draw(vs.tensors((batch, model.out_features), "exact", vs.dyadics(-2, 2, 4)))
    return model, x, y


def ulp_fraction(v: Fraction) -> Fraction:
    """One binary64 ulp at v's float value, as an exact rational."""
    return Fraction(math.ulp(float(v)))


@settings(deadline=None, max_examples=25)
@given(problem=problems(), data=st.data())
def test_exact_error_is_zero_and_one_ulp_is_caught(
    problem: tuple[MLP, Tensor, Tensor], data: st.DataObject
) -> None:
    model, x, y = problem
    MLP_BOX[:] = [model]
    vs.assume_away_from_kinks(loss, (dict(model.params), x, y))
    args = (dict(model.params), x, y)

    report = gradcheck(loss, args, argnums=0, method="exact")
    assert report.passed, str(report)
    assert report.primary.exact_max_abs_error == 0
    assert report.max_abs_error == 0.0

    # Perturb one entry of the tape's exact gradient by one binary64 ulp.
    grads = ad.grad(loss)(*args)
    name = data.draw(st.sampled_from(sorted(grads)), label="param")
    g = grads[name].numpy().copy()
    flat = data.draw(st.integers(0, g.size - 1), label="entry")
    index = tuple(int(i) for i in divmod(flat, g.shape[1])) if g.ndim == 2 else (flat,)
    bump = ulp_fraction(g[index])
    g[index] = g[index] + bump
    perturbed = dict(grads, **{name: Tensor(g, grads[name].field)})

    caught = gradcheck(loss, args, argnums=0, method="exact", analytic=perturbed)
    assert not caught.passed
    assert caught.worst_name == f"{name}[{', '.join(map(str, index))}]"
    assert caught.worst_index == index
    assert caught.primary.exact_max_abs_error == bump
    assert caught.primary.failures == 1
    # Along random directions (entries m / 2^20, never 0) the bump cannot cancel either.
    assert not gradcheck(loss, args, argnums=0, method="exact", analytic=perturbed,
                         directions=2).passed


def test_exact_check_of_a_model_names_layers() -> None:
    model = MLP(
        {
            "0.weight": Tensor(vs_array([[1, -2], [0.5, 1], [-1, 0.25]]), EXACT),
            "0.bias": Tensor(vs_array([0.5, -0.25, 1]), EXACT),
            "2.weight": Tensor(vs_array([[1, -1, 0.5]]), EXACT),
            "2.bias": Tensor(vs_array([0.125]), EXACT),
        },
        (2, 3, 1),
        "relu",
    )
    x = Tensor(vs_array([[1, 2], [-1, 0.5]]), EXACT)
    y = Tensor(vs_array([[0.5], [1]]), EXACT)
    report = gradcheck(model, x, target=y, loss=mse, method="exact")
    assert report.passed and report.primary.exact_max_abs_error == 0
    # 6 + 3 + 3 + 1 parameters and 4 input entries, named by layer path and "input".
    assert report.primary.count == 17
    grads = ad.grad(lambda p, xi: mse(model.apply(p, xi), y), argnums=(0, 1))(
        dict(model.params), x
    )
    bad = dict(grads[0])
    w = bad["0.weight"].numpy().copy()
    w[2, 1] += Fraction(1, 2**60)
    bad["0.weight"] = Tensor(w, EXACT)
    caught = gradcheck(model, x, target=y, loss=mse, method="exact", analytic=(bad, grads[1]))
    assert not caught.passed and caught.worst_name == "0.weight[2, 1]"


def vs_array(rows: Any) -> Any:
    return EXACT.asarray(np.asarray(rows, dtype=np.float64).astype(object))
