"""The graph IR itself: tracing and its errors, graphs from tapes, inspection, the shape
checker, what each pass removes, rejected JSON documents, and the executor cache."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from test_graph_cases import mlp_ce, same_bits

import torchlean.spec as S
from torchlean.runtime import autograd as ad
from torchlean.runtime.graph import (
    Graph,
    GraphError,
    TracingError,
    cache_size,
    check_shapes,
    clear_cache,
    compile_graph,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    from_json,
    grad_graph,
    graph_from_tape,
    interpret,
    simplify,
    trace,
)
from torchlean.spec import DataFormatError, FieldMismatchError, ShapeError
from torchlean.spec import functional as F
from torchlean.spec.tensor import Tensor
from torchlean.spec.value import Value

PARAMS = {"w1": (5, 6), "b1": (6,), "w2": (6, 4), "b2": (4,)}


def mlp_graph() -> Graph:
    return trace(mlp_ce, {"x": (3, 5), "y": (3,)}, PARAMS)


# -- tracing ---------------------------------------------------------------------
def test_trace_records_leaves_ops_and_named_outputs() -> None:
    g = trace(lambda p, x: {"y": x @ p["w"], "z": (F.relu(x), x * 2)}, {"x": (2, 3)},
              {"w": (3, 4)}, field="float32")
    assert [(n.op, n.name) for n in g.leaves] == [("param", "w"), ("input", "x")]
    assert [n for n, _ in g.outputs] == ["out.y", "out.z[0]", "out.z[1]"]
    assert g.output("out.y").shape == (2, 4) and g.field == "float32"
    assert [n.op for n in g.nodes if not n.is_leaf] == ["matmul", "relu", "const", "mul"]


def test_branching_on_data_is_a_tracing_error() -> None:
    def branchy(x: Value) -> Value:
        if F.sum(x):  # data-dependent: cannot be a fixed graph
            return x
        return -x

    with pytest.raises(TracingError) as info:
        trace(branchy, {"x": (3,)})
    msg = str(info.value)
    assert "bool()" in msg and "(sum, shape ())" in msg and "eager" in msg
    assert "test_graph_ir.py" in msg and "branchy" in msg
    assert isinstance(info.value, TypeError)  # also caught by `except TypeError`


@pytest.mark.parametrize("peek", [
    lambda x: x > 0, lambda x: float(F.sum(x)), lambda x: x.item(), lambda x: np.asarray(x),
    lambda x: x.numpy(), lambda x: [0, 1][F.sum(x)],
])
def test_every_data_access_is_a_tracing_error(peek: Callable[[Value], Any]) -> None:
    with pytest.raises(TracingError, match="cannot trace"):
        trace(peek, {"x": (2,)})


def test_shape_errors_while_tracing_name_the_op_and_line() -> None:
    with pytest.raises(ShapeError, match="do not broadcast") as info:
        trace(lambda a, b: a + b, {"a": (2, 3), "b": (4, 5)})
    assert any("test_graph_ir.py" in note for note in info.value.__notes__)


def test_captured_concrete_tensors_become_literals_on_either_side() -> None:
    w = S.tensor([[1.0, -2.0], [0.5, 3.0]])

    def fn(x: Value) -> Value:
        return F.sum(w @ x + x @ w)  # type: ignore[operator]

    g = trace(fn, {"x": (2, 2)})
    assert [n.op for n in g.nodes].count("literal") == 2
    x = S.tensor([[0.25, 1.0], [-1.0, 2.0]])
    assert same_bits(interpret(g, {"x": x})["out"], fn(x))


def test_values_from_two_traces_or_fields_do_not_mix() -> None:
    other: list[Value] = []

    def keep(x: Value) -> Value:
        other.append(x)
        return x

    trace(keep, {"x": (2,)})
    with pytest.raises(FieldMismatchError, match="two different traces"):
        trace(lambda x: x + other[0], {"x": (2,)})
    with pytest.raises(FieldMismatchError, match="mix fields float and float32"):
        trace(lambda x: x + S.tensor([1.0, 2.0], "float32"), {"x": (2,)})


def test_graph_from_tape_reproduces_the_eager_run() -> None:
    rng = np.random.default_rng(1)
    params = {k: S.tensor(rng.standard_normal(s)) for k, s in PARAMS.items()}
    x, y = S.tensor(rng.standard_normal((3, 5))), S.tensor([0.0, 3.0, 2.0])
    out, tape = ad.trace(lambda p: mlp_ce(p, x, y), params)
    g = graph_from_tape(tape, params=[f"{k}" for k in PARAMS])
    assert {n.name for n in g.params} == set(PARAMS)
    assert [n.op for n in g.nodes].count("literal") >= 2  # x and y were not on the tape
    got = interpret(g, params)["out"]
    assert same_bits(got, out)
    grads = compile_graph(simplify(grad_graph(g, list(PARAMS))))(params)
    want = ad.grad(lambda p: mlp_ce(p, x, y))(params)
    for k in PARAMS:
        assert same_bits(grads[f"grad:{k}"], want[k])


# -- inspection ---------------------------------------------------------------------
def test_pretty_and_dot() -> None:
    g = mlp_graph()
    text = g.pretty()
    lines = text.splitlines()
    assert lines[0].startswith("graph[float] (w1=%0:f64[5,6]")
    assert len(lines) == len(g) - len(g.leaves) + 3  # header, return, closing brace
    assert "  %6:f64[3,6] = matmul %4 %0" in lines
    assert lines[-2] == f"  return out=%{g.outputs[0][1]}"
    dot = g.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == sum(
        len(n.args) for n in g.nodes) + len(g.outputs)


# -- the shape checker ------------------------------------------------------------------
def corrupt(g: Graph, node_id: int, **changes: Any) -> Graph:
    nodes = list(g.nodes)
    nodes[node_id] = dataclasses.replace(nodes[node_id], **changes)
    return Graph(g.field, tuple(nodes), g.outputs)


def test_shape_checker_rejects_a_hand_corrupted_graph() -> None:
    g = mlp_graph()
    check_shapes(g)
    bad = corrupt(g, 7, shape=(3, 7))
    with pytest.raises(ShapeError, match=r"node %7 \(add\): declared shape \(3, 7\)"):
        check_shapes(bad)
    with pytest.raises(ShapeError, match=r"node %8 \(relu\)"):
        check_shapes(corrupt(g, 8, shape=(3, 5)))
    with pytest.raises(GraphError, match=r"node %12 \(log_softmax\): attributes"):
        check_shapes(corrupt(g, 12, attrs=(("axes", 1),)))


def test_graph_construction_rejects_broken_structure() -> None:
    g = mlp_graph()
    with pytest.raises(GraphError, match="not an earlier node"):
        corrupt(g, 6, args=(6, 0))
    with pytest.raises(GraphError, match="unknown op tag"):
        corrupt(g, 6, op="__import__")
    with pytest.raises(GraphError, match="takes 2 arguments"):
        corrupt(g, 6, args=(4,))
    with pytest.raises(GraphError, match="used by another leaf"):
        corrupt(g, 1, attrs=(("name", "w1"),))


# -- passes ----------------------------------------------------------------------------
def test_dead_code_elimination_drops_exactly_the_unused_nodes() -> None:
    g = trace(lambda x, u: (x * 2, F.exp(F.tanh(x)))[0], {"x": (3,), "u": (2,)})
    assert g.op_count == 3
    h = eliminate_dead_code(g)
    assert h.op_count == 1 and len(h) == len(g) - 2  # tanh and exp gone; leaves kept
    assert [n.name for n in h.leaves] == ["x", "u"]


def test_cse_merges_equal_nodes_but_not_signed_zeros() -> None:
    g = trace(lambda x: F.exp(x) * 2 + F.exp(x) * 2 + x * 0.0 + x * -0.0, {"x": (3,)})
    h = eliminate_common_subexpressions(g)
    ops = [n.op for n in h.nodes]
    assert ops.count("exp") == 1 and [n.op for n in g.nodes].count("exp") == 2
    assert ops.count("const") == 3  # 2, 0.0 and -0.0
    xs = np.array([1.0, -np.inf, 0.5])
    with np.errstate(all="ignore"):
        assert same_bits(interpret(h, {"x": xs})["out"], interpret(g, {"x": xs})["out"])


def test_constant_folding_evaluates_constant_subgraphs_in_the_field() -> None:
    def fn(x: Value) -> Value:
        return x * F.sqrt(F.pi(x) * 2) + F.constant(x, Fraction(1, 3))

    for field in ("float", "float32", "ieee32exec", "interval"):
        g = trace(fn, {"x": (2,)}, field=field)
        h = simplify(g)
        assert g.op_count == 4 and h.op_count == 2  # mul(pi,2) and sqrt folded
        x = Tensor(S.tensor([0.5, -3.0], field).data, S.get_field(field))
        assert same_bits(interpret(h, {"x": x})["out"], fn(x))


def test_folding_never_materialises_broadcasts_and_keeps_failing_nodes() -> None:
    g = trace(lambda x: x + F.ones_like(x) + F.log(F.constant(x, -1)), {"x": (100,)})
    h = fold_constants(g)
    assert "broadcast_to" in {n.op for n in h.nodes}
    exact = trace(lambda x: x * F.exp(F.constant(x, 1)), {"x": (2,)}, field="exact")
    assert fold_constants(exact).op_count == exact.op_count  # exp over exact raises later
    with pytest.raises(S.UnsupportedOperation, match="'exp'"):
        interpret(fold_constants(exact), {"x": [1, 2]})


# -- JSON: rejected documents ---------------------------------------------------------------
def doc() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(mlp_graph().to_json())
    return parsed


def load(d: dict[str, Any]) -> Graph:
    return from_json(json.dumps(d))


def test_json_from_a_newer_version_is_rejected() -> None:
    d = doc()
    d["version"] = 2
    with pytest.raises(DataFormatError, match="version 2 is newer"):
        load(d)


def test_json_with_a_shape_lie_is_rejected_naming_the_node() -> None:
    d = doc()
    d["nodes"][9]["shape"] = [3, 5]
    with pytest.raises(ShapeError, match=r"node %9 \(matmul\): declared shape \(3, 5\)"):
        load(d)
    d = doc()
    d["nodes"][4]["shape"] = [3, 6]  # the input x: now the first matmul lies
    with pytest.raises(ShapeError, match=r"node %6 \(matmul\)"):
        load(d)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("nodes"), "missing key"),
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["nodes"][6].update(op="__import__('os').system"), "unknown op tag"),
    (lambda d: d["nodes"][6].update(args=[7, 0]), "not an earlier node"),
    (lambda d: d["nodes"][12]["attrs"].update(axis=1.5), "expected an int"),
    (lambda d: d["nodes"][12]["attrs"].update(axis="1"), "is not int"),
    (lambda d: d["nodes"][12].update(extra=1), "unexpected key"),
    (lambda d: d["nodes"][16].update(value={"float": "1e3"}), "float.hex"),
    (lambda d: d["nodes"][16].update(value={"fraction": "1/0"}), "zero denominator"),
    (lambda d: d["outputs"].append({"name": "z", "id": 99}), "does not exist"),
    (lambda d: d["nodes"][1].update(name="w1"), "used by another leaf"),
    (lambda d: d.update(field="float16"), "unknown dtype"),
    (lambda d: d["nodes"].__setitem__(16, {"id": 16, "op": "literal", "shape": [2],
                                           "data": ["0x1p+0"]}), "1 items"),
])
def test_malformed_json_is_rejected_clearly(edit: Any, message: str) -> None:
    d = doc()
    edit(d)
    with pytest.raises(DataFormatError, match=message):
        load(d)


@pytest.mark.parametrize("text, message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "top level"),
    ('{"format": "torchlean.graph", "version": NaN}', "bare NaN"),
])
def test_non_graph_text_is_rejected(text: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        from_json(text)


@pytest.mark.parametrize("field, item, message", [
    ("float32", "0x1.0000000000001p+0", "not exactly representable"),
    ("float", "nan:0x1", "not a NaN bit pattern"),
    ("exact", "1/3x", "rational"),
    ("interval", "[1p0,0p0]", "lo > hi"),
])
def test_bad_literal_items_are_rejected(field: str, item: str, message: str) -> None:
    g = fold_constants(trace(lambda x: x * F.sqrt(F.constant(x, 4)), {"x": (1,)}, field=field))
    d = json.loads(g.to_json())
    lit = next(n for n in d["nodes"] if n["op"] == "literal")
    lit["data"] = [item]
    with pytest.raises(DataFormatError, match=message):
        load(d)


# -- executors -----------------------------------------------------------------------------
def test_programs_are_cached_per_signature() -> None:
    g = simplify(grad_graph(mlp_graph(), list(PARAMS)))
    rng = np.random.default_rng(0)
    vals = {k: rng.standard_normal(s) for k, s in {**PARAMS, "x": (3, 5)}.items()}
    vals["y"] = np.array([1.0, 2.0, 0.0])
    arrays = [vals[n.name] for n in g.leaves]
    first = compile_graph(g).program(arrays)
    assert compile_graph(g).program(arrays) is first  # another wrapper: the same program
    fortran = [np.asfortranarray(a) if a.ndim == 2 else a for a in arrays]
    assert compile_graph(g).program(fortran) is not first  # another layout
    clear_cache()
    assert cache_size() == 0 and compile_graph(g).program(arrays) is not first


def test_leaf_values_are_checked() -> None:
    run = compile_graph(mlp_graph())
    good: dict[str, Any] = {k: np.zeros(s) for k, s in {**PARAMS, "x": (3, 5)}.items()}
    with pytest.raises(KeyError, match="missing \\['y'\\]"):
        run(good)
    with pytest.raises(ShapeError, match="input 'y': expected shape \\(3,\\), got \\(4,\\)"):
        run({**good, "y": np.zeros(4)})
    with pytest.raises(FieldMismatchError):
        run({**good, "y": S.tensor([0, 1, 2], "float32")})


def test_a_traced_graph_runs_in_other_fields_unless_it_holds_literals() -> None:
    g = trace(lambda x: F.relu(x) * Fraction(1, 3), {"x": (2,)})
    got = interpret(g, {"x": S.tensor([1, -1], "exact")}, field="exact")["out"]
    assert got.tolist() == [Fraction(1, 3), 0]
    lit = fold_constants(trace(lambda x: x * F.sqrt(F.constant(x, 4)), {"x": (1,)}))
    with pytest.raises(FieldMismatchError, match="literals of field float"):
        interpret(lit, {"x": S.tensor([1], "exact")}, field="exact")
