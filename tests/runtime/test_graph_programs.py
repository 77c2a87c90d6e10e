"""Random small programs (hypothesis): JSON round trips, passes that keep results, and
compiled == eager on arbitrary op chains (which exercise buffer reuse and in-place
elementwise chains in the lowered executor).

A program is a recipe of steps, each applied to earlier values; it runs on any Value
kind, so the same recipe is evaluated eagerly and traced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_cases import field_tensor, host_values, same_bits

from torchlean.runtime.graph import (
    Graph,
    compile_graph,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    from_json,
    interpret,
    simplify,
    trace,
)
from torchlean.spec import functional as F
from torchlean.spec.fields import PI
from torchlean.spec.value import Value

Step = tuple[Any, ...]
UNARY = ["neg", "abs", "exp", "tanh", "sigmoid", "relu", "square", "sin", "softplus", "step",
         "silu"]
BINARY = ["add", "sub", "mul", "maximum", "minimum", "greater"]
CONSTANTS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.1, -0.0, 0.0, 1.5, math.inf, -math.inf, math.nan, 1e-300]),
    st.fractions(min_value=-2, max_value=2, max_denominator=7),
    st.just(PI),
)


@dataclass(frozen=True)
class Program:
    """Input shapes, steps, and which values are returned."""

    shapes: tuple[tuple[int, ...], ...]
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]

    def __call__(self, *inputs: Value) -> tuple[Value, ...]:
        vals = list(inputs)
        for step in self.steps:
            vals.append(apply_step(vals, step))
        return tuple(vals[i] for i in self.outputs)


def apply_step(vals: list[Value], step: Step) -> Value:
    kind, *args = step
    result: Value
    if kind == "unary":
        result = getattr(F, args[0])(vals[args[1]])
        return result
    if kind == "binary":
        result = getattr(F, args[0])(vals[args[1]], vals[args[2]])
        return result
    if kind == "const":
        result = vals[args[1]] * args[0]
        return result
    if kind == "reduce":
        result = getattr(F, args[0])(vals[args[1]], args[2], args[3])
        return result
    if kind == "transpose":
        return F.transpose(vals[args[0]], args[1])
    if kind == "flatten":
        return F.reshape(vals[args[0]], (-1,))
    if kind == "leaky":
        return F.leaky_relu(vals[args[0]], args[1])
    if kind == "softmax":
        return F.softmax(vals[args[0]], args[1])
    if kind == "concat":
        return F.concat([vals[args[0]], vals[args[0]]], args[1])
    if kind == "slice":
        return vals[args[0]][..., :1]
    if kind == "matmul":
        return F.matmul(vals[args[0]], vals[args[1]])
    raise AssertionError(kind)


SHAPES = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def programs(draw: st.DrawFn, rational: bool = False) -> Program:
    shapes = tuple(draw(st.lists(SHAPES, min_size=1, max_size=3)))
    known = list(shapes)
    steps: list[Step] = []
    kinds = ["unary", "binary", "const", "reduce", "transpose", "flatten", "leaky", "softmax",
             "concat", "slice", "matmul"]
    target = draw(st.integers(1, 8))
    for _ in range(4 * target):  # steps that do not fit the drawn value are skipped
        if len(steps) == target:
            break
        kind = draw(st.sampled_from(kinds))
        i = draw(st.integers(0, len(known) - 1))
        s = known[i]
        step: Step
        if kind == "unary":
            ops = ["neg", "abs", "relu", "square", "step"] if rational else UNARY
            step, out = ("unary", draw(st.sampled_from(ops)), i), s
        elif kind == "binary":
            same = [j for j, t in enumerate(known) if t == s or t == ()]
            j = draw(st.sampled_from(same))
            step, out = ("binary", draw(st.sampled_from(BINARY)), i, j), s
        elif kind == "const":
            c = draw(CONSTANTS)
            if rational and (c is PI or isinstance(c, float) and not math.isfinite(c)):
                c = Fraction(1, 3)
            step, out = ("const", c, i), s
        elif kind == "reduce" and s:
            axes = tuple(sorted(draw(st.sets(st.integers(0, len(s) - 1), min_size=1))))
            keep = draw(st.booleans())
            tag = draw(st.sampled_from(["sum", "mean", "max"]))
            step = ("reduce", tag, i, axes, keep)
            out = tuple(1 if k in axes else d for k, d in enumerate(s)) if keep else tuple(
                d for k, d in enumerate(s) if k not in axes)
        elif kind == "transpose" and s:
            perm = tuple(draw(st.permutations(range(len(s)))))
            step, out = ("transpose", i, perm), tuple(s[p] for p in perm)
        elif kind == "flatten":
            step, out = ("flatten", i), (int(np.prod(s)),)
        elif kind == "leaky":
            slope = draw(st.sampled_from([0.01, 0.25, 0.5]))
            step, out = ("leaky", i, slope), s
        elif kind == "softmax" and s and not rational:
            step, out = ("softmax", i, draw(st.integers(0, len(s) - 1))), s
        elif kind == "concat" and s:
            ax = draw(st.integers(0, len(s) - 1))
            step, out = ("concat", i, ax), s[:ax] + (2 * s[ax],) + s[ax + 1:]
        elif kind == "slice" and s:
            step, out = ("slice", i), s[:-1] + (1,)
        elif kind == "matmul" and len(s) == 2:
            fits = [j for j, t in enumerate(known) if len(t) == 2 and t[0] == s[1]]
            if not fits:
                continue
            j = draw(st.sampled_from(fits))
            step, out = ("matmul", i, j), (s[0], known[j][1])
        else:
            continue
        steps.append(step)
        known.append(out)
    n = len(known)
    outputs = draw(st.sets(st.integers(0, n - 1), max_size=2)) | {n - 1}
    return Program(shapes, tuple(steps), tuple(sorted(outputs)))


def traced(p: Program, field: str) -> Graph:
    return trace(p, {f"x{i}": s for i, s in enumerate(p.shapes)}, field=field)


def inputs_for(p: Program, field: str, seed: int, specials: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {f"x{i}": field_tensor(host_values(rng, s, "real", specials), field)
            for i, s in enumerate(p.shapes)}


def eager(p: Program, values: dict[str, Any]) -> list[Any]:
    with np.errstate(all="ignore"):
        return list(p(*values.values()))


FIELDS = ["float", "float32", "ieee32exec", "exact", "interval"]


@settings(deadline=None, max_examples=40)
@given(field=st.sampled_from(FIELDS), fold=st.booleans(), data=st.data())
def test_json_round_trip_is_exact(field: str, fold: bool, data: st.DataObject) -> None:
    p = data.draw(programs(rational=field == "exact"))
    g = traced(p, field)
    if fold:
        g = fold_constants(g)
    text = g.to_json()
    back = from_json(text)
    assert back.to_json() == text
    assert back.fingerprint == g.fingerprint
    assert json.loads(g.to_json(indent=None)) == json.loads(text)
    if not _has_nan(g):
        assert back == g


def _has_nan(g: Graph) -> bool:
    return any(isinstance(v, float) and math.isnan(v) for n in g.nodes for _, v in n.attrs)


@settings(deadline=None, max_examples=40)
@given(p=programs(), field=st.sampled_from(["float", "float32"]), seed=st.integers(0, 2**32),
       specials=st.booleans())
def test_random_programs_compiled_match_eager(p: Program, field: str, seed: int,
                                              specials: bool) -> None:
    values = inputs_for(p, field, seed, specials)
    want = eager(p, values)
    g = traced(p, field)
    for graph in (g, simplify(g)):
        got = compile_graph(graph)(values)
        for (name, _), w in zip(graph.outputs, want, strict=True):
            assert same_bits(got[name], w), name


@settings(deadline=None, max_examples=25)
@given(p=programs(rational=True), seed=st.integers(0, 2**32))
def test_random_programs_exact(p: Program, seed: int) -> None:
    values = inputs_for(p, "exact", seed, False)
    want = eager(p, values)
    g = traced(p, "exact")
    got = compile_graph(simplify(g))(values)
    for (name, _), w in zip(g.outputs, want, strict=True):
        assert same_bits(got[name], w), name


@settings(deadline=None, max_examples=30)
@given(p=programs(), seed=st.integers(0, 2**32))
def test_passes_keep_results_and_never_grow(p: Program, seed: int) -> None:
    values = inputs_for(p, "float", seed, True)
    g = traced(p, "float")
    want = interpret(g, values)
    for pass_ in (eliminate_dead_code, eliminate_common_subexpressions, fold_constants,
                  simplify):
        h = pass_(g)
        assert len(h) <= len(g)
        assert [n for n, _ in h.outputs] == [n for n, _ in g.outputs]
        with np.errstate(all="ignore"):
            got = interpret(h, values)
        for name in want:
            assert same_bits(got[name], want[name]), (pass_.__name__, name)


@pytest.mark.parametrize("field", FIELDS)
def test_folded_literals_round_trip_in_every_field(field: str) -> None:
    """Folding makes literal arrays in the field's own notation (hex floats, p/q,
    dyadic interval endpoints); they survive JSON and give the same results."""
    def fn(x: Value) -> Value:
        c = F.broadcast_to(F.constant(x, Fraction(1, 3)) * 3 + F.constant(x, 0.1), (2,))
        return x * F.sum(c) if field == "exact" else x * F.sum(c) * F.sqrt(F.pi(x) * 2)

    g = trace(fn, {"x": (2,)}, field=field)
    folded = simplify(g)
    assert "literal" in {n.op for n in folded.nodes} and folded.op_count < g.op_count
    back = from_json(folded.to_json())
    x = field_tensor(np.array([0.5, -2.0]), field)
    want = fn(x)
    for graph in (g, folded, back):
        assert same_bits(compile_graph(graph)({"x": x})["out"], want)


@pytest.mark.parametrize("field", ["float", "float32", "ieee32exec"])
def test_folded_nans_and_signed_zeros_keep_their_bits(field: str) -> None:
    """sqrt(-1) folds to the platform's NaN (x86 makes it negative) and -0.0 * 1 to -0.0;
    the literals keep those exact bit patterns through JSON."""
    def fn(x: Value) -> Value:
        return F.concat([x, F.broadcast_to(F.sqrt(F.constant(x, -1.0)), (1,)),
                         F.broadcast_to(F.constant(x, -0.0) * 1, (1,))], 0)

    g = trace(fn, {"x": (1,)}, field=field)
    folded = fold_constants(g)
    items = [t for n in folded.nodes if n.op == "literal" for t in n.attr("data").items]
    assert any(t.startswith("nan:0x") for t in items)
    assert "-0x0.0p+0" in items  # every binary field keeps the sign of a -0.0 constant
    back = from_json(folded.to_json())
    x = field_tensor(np.array([2.0]), field)
    want = fn(x)
    for graph in (folded, back):
        assert same_bits(compile_graph(graph)({"x": x})["out"], want)
