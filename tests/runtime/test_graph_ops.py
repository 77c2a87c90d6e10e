"""Compiled == eager for every op of the table and for small composite functions.

`float`/`float32` run through the buffered NumPy lowering and must match eager to 0 ulp
(identical bits, NaN payloads and signed zeros included): every lowered op performs the
same NumPy operation as its field primitive, on buffers with eager's memory layout, so
there is no evaluation-order difference to allow for. Inputs come in C order, Fortran
order and strided views, since NumPy's reductions and vector paths depend on layout.
`ieee32exec`, `exact` and `interval` run through the direct-call lowering and must match
bit for bit. Where eager raises (exp over `exact`, pi over `exact`), compiled must raise
the same error type. No tolerances anywhere.
"""

from __future__ import annotations

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

from torchlean.runtime.graph import compile_graph, interpret, simplify, trace
from torchlean.spec.tensor import Tensor

NATIVE = ["float", "float32"]
CASE_IDS = [c.name for c in CASES]


def check_case(case: OpCase, field: str, seed: int, specials: bool, layouts: list[str],
               backends: tuple[str, ...]) -> None:
    rng = np.random.default_rng(seed)
    tensors = [field_tensor(host_values(rng, s, d, specials), field, lay)
               for s, d, lay in zip(case.shapes, case.domains, layouts[: len(case.shapes)],
                                       strict=True)]
    with np.errstate(all="ignore"):
        want = run_or_error(lambda: case.fn(*tensors))
    graph = trace(case.fn, {f"a{i}": s for i, s in enumerate(case.shapes)}, field=field)
    values = {f"a{i}": t for i, t in enumerate(tensors)}
    for g in (graph, simplify(graph)):
        for backend in backends:
            runner: Any = compile_graph(g, backend=backend)  # type: ignore[arg-type]
            got = run_or_error(partial(call_out, runner, values))
            assert got[0] == want[0], (backend, want, got)
            if want[0] == "error":
                assert got[1] is want[1], (backend, want[1], got[1])
            else:
                assert isinstance(got[1], Tensor)
                assert same_bits(got[1], want[1]), (backend, got[1], want[1])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("field", NATIVE)
@settings(deadline=None, max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), specials=st.booleans(),
       layouts=st.lists(st.sampled_from("CFS"), min_size=3, max_size=3))
def test_op_lowered_matches_eager_native(case: OpCase, field: str, seed: int, specials: bool,
                                         layouts: list[str]) -> None:
    check_case(case, field, seed, specials, layouts, ("auto", "calls"))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("field", ["ieee32exec", "exact"])
@settings(deadline=None, max_examples=3)
@given(seed=st.integers(0, 2**32 - 1))
def test_op_compiled_matches_eager_exactly(case: OpCase, field: str, seed: int) -> None:
    check_case(case, field, seed, field == "ieee32exec", ["C"] * 3, ("auto", "interpret"))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_op_compiled_matches_eager_interval(case: OpCase) -> None:
    check_case(case, "interval", 7, False, ["C"] * 3, ("auto",))


def mlp_inputs(field: str, seed: int, batch: int, rational: bool) -> dict[str, Tensor]:
    rng = np.random.default_rng(seed)
    vals = {k: field_tensor(host_values(rng, s, "real", False), field)
            for k, s in MLP_PARAMS.items()}
    vals["x"] = field_tensor(host_values(rng, (batch, 5), "real", False), field)
    vals["y"] = field_tensor(host_values(rng, (batch, 4), "real", False) if rational
                             else host_values(rng, (batch,), "labels", False), field)
    return vals


@pytest.mark.parametrize("field", ["float", "float32", "ieee32exec", "exact"])
@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 6))
def test_mlp_compiled_matches_eager(field: str, seed: int, batch: int) -> None:
    rational = field == "exact"
    loss = mlp_mse if rational else mlp_ce
    vals = mlp_inputs(field, seed, batch, rational)
    params = {k: vals[k] for k in MLP_PARAMS}
    want = loss(params, vals["x"], vals["y"])
    ys = (batch, 4) if rational else (batch,)
    g = trace(loss, {"x": (batch, 5), "y": ys}, MLP_PARAMS, field=field)
    for graph in (g, simplify(g)):
        assert same_bits(compile_graph(graph)(vals)["out"], want)
        assert same_bits(interpret(graph, vals)["out"], want)


def test_buffers_are_reused_and_outputs_are_fresh() -> None:
    """Two calls on one program: the second's results are right, and the first call's
    results are not overwritten by it (outputs never alias the reused buffers)."""
    g = trace(lambda a, b: (F_exp_sum(a, b), a * 2), {"a": (3, 4), "b": (4,)})
    run = compile_graph(g)
    a1, b1 = np.arange(12.0).reshape(3, 4) / 10, np.ones(4)
    a2, b2 = -a1, 2 * b1
    first = run({"a": a1, "b": b1})
    kept = {k: v.numpy().copy() for k, v in first.items()}
    second = run({"a": a2, "b": b2})
    for k in kept:
        assert np.array_equal(first[k].numpy(), kept[k])
    assert np.array_equal(second["out[1]"].numpy(), a2 * 2)
    prog = run.program([np.asarray(a1), np.asarray(b1)])
    assert prog.mode == "buffered" and "out=" in prog.source


def F_exp_sum(a: Any, b: Any) -> Any:  # noqa: N802  (a helper named after what it computes)
    from torchlean.spec import functional as F

    return F.sum(F.exp(a + b) * a, 0)


def test_array_api_namespace_runs_by_direct_calls() -> None:
    """On array-api-strict (a stand-in for CuPy) the executor calls the field primitives
    directly and agrees with eager bit for bit."""
    xp = pytest.importorskip("array_api_strict")
    from torchlean.spec import float64

    rng = np.random.default_rng(3)
    vals = {k: Tensor(xp.asarray(rng.standard_normal(s)), float64)
            for k, s in [*MLP_PARAMS.items(), ("x", (3, 5))]}
    vals["y"] = Tensor(xp.asarray(np.array([0.0, 3.0, 1.0])), float64)
    params = {k: vals[k] for k in MLP_PARAMS}
    want = mlp_ce(params, vals["x"], vals["y"])
    g = simplify(trace(mlp_ce, {"x": (3, 5), "y": (3,)}, MLP_PARAMS))
    runner = compile_graph(g)
    got = runner(vals)["out"]
    assert runner.mode_for([v.data for v in vals.values()]) == "calls"
    assert same_bits(got, want)
