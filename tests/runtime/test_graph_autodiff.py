"""The backward graph: gradients from `grad_graph` equal the eager tape's bit for bit.

`grad_graph` walks the graph as `Tape.backward` walks the tape (same VJP rules, same
seed, same accumulation order), so its gradients are the same computation as
`autograd.grad`; they are compared with identical bits (float, float32, ieee32exec) and
equal Fractions (exact), through the interpreter and the lowered executor, before and
after simplification. No tolerances.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_cases import (
    CASES,
    MLP_PARAMS,
    OpCase,
    call_out,
    field_tensor,
    host_values,
    mlp_ce,
    mlp_mse,
    run_or_error,
    same_bits,
)

from torchlean.runtime import autograd as ad
from torchlean.runtime.graph import (
    NotDifferentiableError,
    compile_graph,
    grad_graph,
    interpret,
    simplify,
    trace,
)
from torchlean.spec import OPS, ShapeError
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.spec.value import Value

CASE_IDS = [c.name for c in CASES]


def weighted(case: OpCase) -> Any:
    """sum(case(a...) * w): a scalar loss whose gradient is the VJP of the op at w."""

    def loss(w: Value, *xs: Value) -> Value:
        return F.sum(case.fn(*xs) * w)

    return loss


def check_grads(case: OpCase, field: str, seed: int, backends: tuple[str, ...]) -> None:
    rng = np.random.default_rng(seed)
    xs = [field_tensor(host_values(rng, s, d, False), field)
          for s, d in zip(case.shapes, case.domains, strict=True)]
    out_shape = trace(case.fn, {f"a{i}": s for i, s in enumerate(case.shapes)}).output("out").shape
    w = field_tensor(host_values(rng, out_shape, "real", False), field)
    loss = weighted(case)
    nums = tuple(range(1, len(xs) + 1))
    with np.errstate(all="ignore"):
        want = run_or_error(lambda: ad.grad(loss, argnums=nums)(w, *xs))
    shapes = {"w": out_shape, **{f"a{i}": s for i, s in enumerate(case.shapes)}}
    graph = grad_graph(trace(loss, shapes, field=field), [f"a{i}" for i in range(len(xs))])
    values = {"w": w, **{f"a{i}": x for i, x in enumerate(xs)}}
    for g in (graph, simplify(graph)):
        for backend in backends:
            runner: Any = compile_graph(g, backend=backend)  # type: ignore[arg-type]
            got = run_or_error(partial(call_out, runner, values, None))
            assert got[0] == want[0], (backend, want, got)
            if want[0] == "error":
                assert got[1] is want[1]
                continue
            for i, gi in enumerate(want[1]):
                assert same_bits(got[1][f"grad:a{i}"], gi), (backend, i, got[1], gi)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("field", ["float", "float32", "exact"])
@settings(deadline=None, max_examples=3)
@given(seed=st.integers(0, 2**32 - 1))
def test_op_gradients_match_eager(case: OpCase, field: str, seed: int) -> None:
    backends = ("interpret", "auto") if field != "exact" else ("auto",)
    check_grads(case, field, seed, backends)


@pytest.mark.parametrize("field", ["float", "float32", "ieee32exec", "exact"])
@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 6))
def test_mlp_gradients_match_eager(field: str, seed: int, batch: int) -> None:
    rational = field == "exact"
    loss = mlp_mse if rational else mlp_ce
    rng = np.random.default_rng(seed)
    params = {k: field_tensor(host_values(rng, s, "real", False), field)
              for k, s in MLP_PARAMS.items()}
    x = field_tensor(host_values(rng, (batch, 5), "real", False), field)
    ys = (batch, 4) if rational else (batch,)
    y = field_tensor(host_values(rng, ys, "real" if rational else "labels", False), field)
    value, grads = ad.value_and_grad(loss)(params, x, y)
    g = grad_graph(trace(loss, {"x": (batch, 5), "y": ys}, MLP_PARAMS, field=field),
                   list(MLP_PARAMS))
    for graph in (g, simplify(g)):
        got = compile_graph(graph)({**params, "x": x, "y": y})
        assert same_bits(got["out"], value)
        for k in MLP_PARAMS:
            assert same_bits(got[f"grad:{k}"], grads[k]), k


def test_gradients_through_an_eager_tape_over_vars_agree() -> None:
    """Tracing `autograd.grad` itself (a tape whose primals are Vars) builds a backward
    graph too; it computes the same numbers as `grad_graph`."""
    rng = np.random.default_rng(0)
    params = {k: Tensor(rng.standard_normal(s), OPS_FIELD) for k, s in MLP_PARAMS.items()}
    x = Tensor(rng.standard_normal((3, 5)), OPS_FIELD)
    y = Tensor(np.array([1.0, 0.0, 3.0]), OPS_FIELD)
    via_tape = trace(lambda p, x, y: ad.grad(mlp_ce)(p, x, y), {"x": (3, 5), "y": (3,)},
                     MLP_PARAMS)
    via_graph = grad_graph(trace(mlp_ce, {"x": (3, 5), "y": (3,)}, MLP_PARAMS),
                           list(MLP_PARAMS))
    a = interpret(via_tape, {**params, "x": x, "y": y})
    b = interpret(via_graph, {**params, "x": x, "y": y})
    for k in MLP_PARAMS:
        assert same_bits(a[f"out.{k}"], b[f"grad:{k}"])


OPS_FIELD = __import__("torchlean.spec", fromlist=["float64"]).float64


def test_piecewise_constant_ops_pass_no_gradient() -> None:
    g = grad_graph(trace(lambda x: F.sum(F.step(x) * x + F.greater(x, 0.5)), {"x": (4,)}),
                   ["x"])
    xs = np.array([-1.0, 0.25, 0.75, 2.0])
    got = interpret(g, {"x": xs})["grad:x"].numpy()
    assert np.array_equal(got, (xs > 0).astype(float))
    only_step = grad_graph(trace(lambda x: F.sum(F.step(x)), {"x": (4,)}), ["x"])
    assert np.array_equal(interpret(only_step, {"x": xs})["grad:x"].numpy(), np.zeros(4))


def test_op_without_vjp_raises_naming_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    g = trace(lambda x: F.sum(F.tanh(x)), {"x": (3,)})
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(OPS["tanh"], vjp=None))
    with pytest.raises(NotDifferentiableError, match=r"node %1 \(tanh\)"):
        grad_graph(g, ["x"])


def test_grad_graph_rejects_bad_requests() -> None:
    g = trace(lambda x: (F.sum(x), x * 2), {"x": (3,)})
    with pytest.raises(ValueError, match="several outputs"):
        grad_graph(g, ["x"])
    with pytest.raises(ShapeError, match="must be a scalar"):
        grad_graph(g, ["x"], loss="out[1]")
    with pytest.raises(KeyError, match="no input or parameter 'z'"):
        grad_graph(g, ["z"], loss="out[0]")
    both = grad_graph(g, ["x"], loss="out[0]")
    assert [n for n, _ in both.outputs] == ["out[0]", "out[1]", "grad:x"]


def test_unused_parameter_gets_zero_gradient() -> None:
    g = grad_graph(trace(lambda p, x: F.sum(x * p["a"]), {"x": (2,)}, {"a": (2,), "b": (3,)}),
                   ["a", "b"])
    out = interpret(g, {"a": np.ones(2), "b": np.ones(3), "x": np.array([2.0, 3.0])})
    assert np.array_equal(out["grad:a"].numpy(), [2.0, 3.0])
    assert np.array_equal(out["grad:b"].numpy(), np.zeros(3))
    with pytest.raises(ShapeError):
        grad_graph(g, ["a"], loss="grad:a")
