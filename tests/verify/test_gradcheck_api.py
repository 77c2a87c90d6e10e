"""gradcheck's interface: inputs, names, adapters (functions, models, tasks, registered
kinds), the analytic-gradient hook, what each method can resolve, kinks, and errors."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from torchlean.runtime import autograd as ad
from torchlean.spec import FieldMismatchError, ShapeError, exact, tensor
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.verify import (
    GradcheckReport,
    GradientMismatch,
    assert_gradients_match,
    gradcheck,
    register_adapter,
)
from torchlean.verify.gradients import adapters as adapters_module
from torchlean.verify.gradients.adapters import Problem
from torchlean.verify.gradients.strategies import MLP

X = tensor([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]])
W = tensor([[0.5, 1.0], [-0.25, 0.75], [1.5, -1.0]])


def smooth(x: Any, w: Any) -> Any:
    return F.sum(F.tanh(x @ w) * F.sigmoid(x).sum())


def rational(x: Any, w: Any) -> Any:
    return F.sum(F.square(x @ w - 1.0))


def scaled_gradient(f: Any, factor: float) -> Any:
    """An analytic-gradient hook returning the tape gradient times `factor`."""

    def hook(*args: Any) -> Any:
        grads = ad.grad(f, argnums=(0, 1))(*args)
        return tuple(g * factor for g in grads)

    return hook


def test_auto_uses_exact_for_rational_functions_and_intervals_otherwise() -> None:
    r = gradcheck(rational, (X, W))
    assert r.passed and r.method == "auto -> exact" and r.primary.exact_max_abs_error == 0
    s = gradcheck(smooth, (X, W))
    assert s.passed and s.method == "auto -> interval"
    assert any("tanh" in n for n in s.notes)  # why exact was skipped


def test_names_follow_the_input_pytrees() -> None:
    params = {"layer": {"w": W}, "bias": [tensor([0.5, -0.5])]}

    def f(p: Any, x: Any) -> Any:
        return F.sum(F.square(x @ p["layer"]["w"] + p["bias"][0]))

    grads = ad.grad(f)(params, X)
    bad = grads["layer"]["w"].numpy().copy()
    bad[2, 1] += 1.0
    wrong = {"layer": {"w": tensor(bad)}, "bias": grads["bias"]}
    report = gradcheck(f, (params, X), argnums=0, analytic=wrong, method="exact")
    assert report.worst_name == "layer.w[2, 1]" and report.worst_index == (2, 1)
    both = gradcheck(rational, (X, W), analytic=scaled_gradient(rational, 2.0), method="exact")
    assert both.worst_name is not None and both.worst_name.startswith(("arg0[", "arg1["))


def test_mismatch_raises_an_assertion_error_carrying_the_report() -> None:
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(rational, (X, W), analytic=scaled_gradient(rational, -1.0))
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value.report, GradcheckReport) and not info.value.report.passed
    assert "FAILED" in str(info.value) and "worst:" in str(info.value)
    assert isinstance(assert_gradients_match(rational, (X, W)), GradcheckReport)


@pytest.mark.parametrize(
    ("relative_error", "caught_by"),
    [
        # 2^-20 ~ 1e-6: far above central differences' tolerance (~1e-9 relative here).
        (2.0**-20, ("central", "fast", "mpmath", "interval", "exact")),
        # 2^-36 ~ 1.5e-11: below central differences' resolution, far above the
        # float64 rounding allowance (gamma_2L ~ 1e-14) of the high-precision methods.
        (2.0**-36, ("mpmath", "interval", "exact")),
    ],
)
def test_each_method_resolves_what_it_promises(
    relative_error: float, caught_by: tuple[str, ...]
) -> None:
    hook = scaled_gradient(rational, 1 + relative_error)
    for method in ("central", "fast", "mpmath", "interval", "exact"):
        report = gradcheck(rational, (X, W), analytic=hook, method=method)
        assert report.passed == (method not in caught_by), f"{method}:\n{report}"
    assert gradcheck(rational, (X, W), analytic=scaled_gradient(rational, 1.0),
                     method="interval").passed


def test_interval_method_proves_a_bound_on_the_float64_gradient_error() -> None:
    x = tensor([[0.1, 0.7, -1.3], [2.9, 0.3, -0.6]])  # not dyadic: float64 gradients round
    report = gradcheck(rational, (x, W), method="interval")
    assert report.passed
    bound = report.comparisons[1].error_bound
    assert bound is not None
    exact_args = [Tensor(exact.asarray(t.numpy().astype(object)), exact) for t in (x, W)]
    exact_grads = ad.grad(rational, argnums=(0, 1))(*exact_args)
    float_grads = ad.grad(rational, argnums=(0, 1))(x, W)
    worst = max(abs(Fraction(float(fv)) - ev)
                for fg, eg in zip(float_grads, exact_grads, strict=True)
                for fv, ev in zip(fg.numpy().reshape(-1), eg.numpy().reshape(-1), strict=True))
    assert worst <= Fraction(bound)


def test_analytic_hook_with_the_wrong_structure_fails_with_a_message() -> None:
    report = gradcheck(rational, (X, W), analytic=lambda *a: (ad.grad(rational)(*a),))
    assert not report.passed
    assert report.primary.problem is not None and "tuple of 2" in report.primary.problem


def test_models_are_checked_in_their_parameters_and_input() -> None:
    model = MLP({"0.weight": tensor([[1.0, -0.5, 0.25], [0.5, 0.5, -1.0]]),
                 "0.bias": tensor([0.125, -0.25])}, (3, 2), "tanh")
    projected = gradcheck(model, X, method="interval")  # no loss: <apply(params, x), w>
    assert projected.passed and projected.primary.count == 6 + 2 + 6
    only_params = gradcheck(model, X, method="interval", wrt="params")
    assert only_params.primary.count == 8
    target = tensor([[0.0, 1.0], [1.0, 0.0]])
    with_loss = gradcheck(model, X, target=target, loss=lambda p, t: F.mean(F.square(p - t)))
    assert with_loss.passed
    with pytest.raises(ValueError, match="both target and loss"):
        gradcheck(model, X, target=target)
    with pytest.raises(ValueError, match="wrt"):
        gradcheck(model, X, wrt="weights")


def test_tasks_bring_their_loss() -> None:
    model = MLP({"0.weight": tensor([[1.0, -0.5, 0.25]]), "0.bias": tensor([0.5])}, (3, 1),
                "relu")

    class Task:
        def __init__(self) -> None:
            self.model = model

        def loss(self, pred: Any, target: Any) -> Any:
            return F.mean(F.square(pred - target))

    report = gradcheck(Task(), X, target=tensor([[1.0], [0.0]]), method="exact")
    assert report.passed and report.worst_name is not None
    with pytest.raises(ValueError, match="target"):
        gradcheck(Task(), X)


def test_registered_adapters_extend_what_can_be_checked() -> None:
    class Compiled:  # stands in for a compiled graph: a function with its own gradient
        def __init__(self, f: Any) -> None:
            self.f = f

    def adapt(obj: Any, inputs: Any, **_: Any) -> Problem | None:
        if not isinstance(obj, Compiled):
            return None
        return Problem(obj.f, tuple(inputs), (0, 1), kind="compiled")

    register_adapter(adapt)
    try:
        assert gradcheck(Compiled(rational), (X, W), method="exact").passed
    finally:
        adapters_module._ADAPTERS.remove(adapt)
    with pytest.raises(TypeError, match="expected a function"):
        gradcheck(Compiled(rational), (X, W))


def test_a_kink_at_the_point_is_reported() -> None:
    x = tensor([[1.0, -1.0], [0.5, 2.0]])
    w = tensor([[1.0, 0.5], [1.0, 0.25]])  # first row of x @ w hits relu's kink at 0

    def f(a: Any, b: Any) -> Any:
        return F.sum(F.relu(a @ b))

    report = gradcheck(f, (x, w), method="exact")
    assert report.kinks.get("maximum", 0) >= 1 and "kink" in str(report)
    near = gradcheck(f, (tensor([[1.0, -1.0 + 2.0**-30], [0.5, 2.0]]), w), method="central")
    assert any("kink lies" in n for n in near.notes)


def test_bad_input_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        gradcheck(rational, (X, W), method="bogus")
    with pytest.raises(ValueError, match="directions"):
        gradcheck(rational, (X, W), directions=0)
    with pytest.raises(ShapeError, match="scalar"):
        gradcheck(lambda x: x * 2.0, X, method="central")
    with pytest.raises(TypeError, match="cannot differentiate"):
        gradcheck(lambda x, s: F.sum(x), (X, "text"), argnums=(0, 1))
    with pytest.raises(ValueError, match="argnums"):
        gradcheck(rational, (X, W), argnums=5)

    def captured(x: Any) -> Any:
        return F.sum(x @ W)  # W is a float64 constant, not an input

    with pytest.raises(FieldMismatchError, match="captured constant"):
        gradcheck(captured, X, method="exact")
    fallback = gradcheck(captured, X)  # auto: only binary64 methods can run
    assert fallback.passed and fallback.method == "auto -> central"


def test_non_finite_values_fail_instead_of_passing() -> None:
    def f(x: Any) -> Any:
        return F.sum(F.log(x))

    report = gradcheck(f, tensor([1.0, 0.0]), method="central")  # log(0) = -inf
    assert not report.passed
    assert not math.isfinite(report.max_abs_error)


def test_inputs_may_be_numpy_arrays() -> None:
    report = gradcheck(rational, (np.asarray(X.numpy()), W), method="exact")
    assert report.passed and report.primary.count == X.size + W.size


def test_built_nn_models_are_checked_by_parameter_name() -> None:
    nn = pytest.importorskip("torchlean.spec.nn")
    net = nn.build(nn.sequential(nn.linear(3, 4), nn.relu(), nn.linear(4, 2)), seed=3)
    y = tensor([[1.0, 0.0], [0.0, 1.0]])
    report = gradcheck(net, X, target=y, loss=nn.mse, method="exact")
    assert report.passed and report.primary.exact_max_abs_error == 0
    names = {report.comparisons[0].worst_name}
    assert report.primary.count == 12 + 4 + 8 + 2 + X.size and names != {None}
    (g, gx) = ad.grad(lambda p, xi: nn.mse(net.apply(p, xi), y), argnums=(0, 1))(
        dict(net.params), X
    )
    bad = dict(g)
    w = bad["2.weight"].numpy().copy()
    w[1, 3] += 2.0**-30
    bad["2.weight"] = tensor(w)
    caught = gradcheck(net, X, target=y, loss=nn.mse, method="interval", analytic=(bad, gx))
    assert not caught.passed and caught.worst_name == "2.weight[1, 3]"


def test_runtime_tasks_are_checked_with_their_own_loss() -> None:
    nn = pytest.importorskip("torchlean.spec.nn")
    tasks = pytest.importorskip("torchlean.runtime.tasks")
    net = nn.build(nn.sequential(nn.linear(3, 3), nn.tanh(), nn.linear(3, 2)), seed=5)
    labels = tensor([1.0, 0.0])  # integer class labels: passed along, never differentiated
    report = gradcheck(tasks.classification(net), X, target=labels)
    assert report.passed and report.method == "auto -> interval"
    assert report.primary.count == 9 + 3 + 6 + 2 + X.size


def test_softmax_float64_allowance_covers_its_cancelling_vjp() -> None:
    """Found by hypothesis: softmax's VJP (g - sum(g y)) cancels terms ~60x larger than the
    gradient; the float64 allowance must scale with those intermediates."""
    import torchlean.spec as S
    from torchlean.spec import functional as F
    from torchlean.verify import gradcheck

    inputs = (S.tensor([0.0, 1.15625]), S.tensor([-1.25, -1.375]))
    report = gradcheck(lambda x, c: F.sum(F.softmax(x, 0) * c), inputs, argnums=(0,),
                       method="mpmath")
    assert report.passed, report
