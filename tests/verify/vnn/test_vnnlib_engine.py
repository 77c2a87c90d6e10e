"""The verdict engine on tiny nets built with the library: every verdict checked independently."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vnnlib_text import header, prop

from torchlean.spec import nn
from torchlean.spec.errors import DataFormatError, UnsupportedOperation
from torchlean.spec.tensor import tensor
from torchlean.verify.bounds import as_graph
from torchlean.verify.bounds.model_file import model_graph
from torchlean.verify.vnn.engine import Verdict, verify_instance
from torchlean.verify.vnn.vnnlib import Property

F = Fraction
Obj = np.ndarray[Any, Any]


def mlp(seed: int, n: int = 2, hidden: int = 6, m: int = 2) -> nn.Built[Any, Any]:
    return nn.build(nn.linear(n, hidden) >> nn.relu() >> nn.linear(hidden, m), seed=seed)


def exact_forward(net: nn.Built[Any, Any], x: tuple[Fraction, ...]) -> list[Fraction]:
    """The net by hand over Fractions: relu(x W1^T + b1) W2^T + b2 (independent of the
    engine's graph evaluation)."""
    p = {k: v.numpy().astype(object) for k, v in net.params.items()}
    q = {k: np.vectorize(lambda t: F(float(t)), otypes=[object])(v) for k, v in p.items()}
    h = np.array(list(x), dtype=object) @ q["0.weight"].T + q["0.bias"]
    h = np.array([max(t, F(0)) for t in h], dtype=object)
    return list(h @ q["2.weight"].T + q["2.bias"])


def check(v: Verdict, net: nn.Built[Any, Any], p: Property) -> None:
    """A violated verdict's counterexample is re-derived; a holds verdict survives a dense
    float grid (a point deeper than 1e-9 inside the unsafe region would refute it; the
    float evaluation of these 2-6-2 nets is off by < 1e-14)."""
    if v.status == "violated":
        assert v.counterexample is not None
        x, y = v.counterexample
        assert list(y) == exact_forward(net, x)
        assert p.is_counterexample(x, y)
    if v.status == "holds":
        g = np.linspace(-1, 1, 41)
        xs = np.array([(a, b) for a in g for b in g])
        p0 = {k: t.numpy() for k, t in net.params.items()}
        ys = np.maximum(xs @ p0["0.weight"].T + p0["0.bias"], 0) @ p0["2.weight"].T + \
            p0["2.bias"]
        for case in p.cases:
            for conj in case.unsafe:
                rows = np.array([[float(c) for c in k.coefficients] for k in conj])
                d = np.array([float(k.bound) for k in conj])
                assert not np.any(np.all(ys @ rows.T <= d - 1e-9, axis=1))


def test_each_verdict_on_a_small_net() -> None:
    net = mlp(0)
    g = as_graph(net, net.params, (1, 2))
    base = header(2, 2)
    cases = {
        "(assert (>= Y_0 1000))": "holds",
        "(assert (<= Y_0 1000))": "violated",
        "(assert (or (>= Y_0 (+ Y_1 0.3)) (>= Y_1 (+ Y_0 0.3))))": "violated",
    }
    for text, want in cases.items():
        p = prop(base + text)
        v = verify_instance((g, net.params), p, timeout=60)
        assert v.status == want, (text, v)
        check(v, net, p)


def test_literal_graphs_are_checked_exactly_too() -> None:
    net = mlp(3)
    g = model_graph(net, (2,))  # the parameters inlined as float literals
    p = prop(header(2, 2) + "(assert (<= Y_0 1000))")
    v = verify_instance((g, {}), p)
    assert v.status == "violated"
    check(v, net, p)


def _identity_net() -> nn.Built[Any, Any]:
    net = nn.build(nn.linear(1, 1), seed=0)
    return net.with_state(params={"weight": tensor([[1.0]]), "bias": tensor([0.0])})


def test_a_point_only_the_closure_holds_is_not_a_counterexample() -> None:
    net = _identity_net()
    g = as_graph(net, net.params, (1, 1))
    # Y_0 = X_0 on [0, 1]: Y_0 > 1 is never true, though the closure Y_0 >= 1 is at X_0 = 1
    strict = prop(header(1, 1, "0", "1") + "(assert (> Y_0 1))")
    assert verify_instance((g, net.params), strict).status != "violated"
    closed = prop(header(1, 1, "0", "1") + "(assert (>= Y_0 1))")
    v = verify_instance((g, net.params), closed)
    assert v.status == "violated" and v.counterexample == ((F(1),), (F(1),))
    # X_0 < 1 strictly and Y_0 >= 1: empty, and no point may be reported
    open_box = prop("(declare-const X_0 Real)(declare-const Y_0 Real)"
                    "(assert (>= X_0 0))(assert (< X_0 1))(assert (>= Y_0 1))")
    assert verify_instance((g, net.params), open_box).status != "violated"


def test_rows_that_are_not_binary64_are_charged_their_rounding() -> None:
    net = _identity_net()
    g = as_graph(net, net.params, (1, 1))
    # (1/3) Y_0 >= 1/3 + 1e-30 is empty on [0, 1], but only by 1e-30: far below what the
    # binary64 bounds resolve, so the answer must not be "violated", and "holds" only if
    # the bound really is that tight (it is not: unknown)
    tight = prop(header(1, 1, "0", "1") + "(assert (>= (/ Y_0 3) (+ (/ 1 3) 1e-30)))")
    assert verify_instance((g, net.params), tight).status == "unknown"
    # ... and 1e-30 the other way round is a counterexample at X_0 = 1
    touch = prop(header(1, 1, "0", "1") + "(assert (>= (/ Y_0 3) (- (/ 1 3) 1e-30)))")
    assert verify_instance((g, net.params), touch).status == "violated"
    loose = prop(header(1, 1, "0", "1") + "(assert (>= (/ Y_0 3) 0.334))")
    assert verify_instance((g, net.params), loose).status == "holds"


ROWS = st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-40, 40)),
                min_size=1, max_size=3)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), ROWS)
def test_random_verdicts_are_backed(seed: int, rows: list[tuple[int, int, int]]) -> None:
    _random_verdict(seed, rows)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.integers(0, 10**6), ROWS)
def test_many_random_verdicts_are_backed(seed: int, rows: list[tuple[int, int, int]]) -> None:
    _random_verdict(seed, rows)


def _random_verdict(seed: int, rows: list[tuple[int, int, int]]) -> None:
    net = mlp(seed % 1000)
    g = as_graph(net, net.params, (1, 2))
    disjuncts = " ".join(f"(<= (+ (* {a} Y_0) (* {b} Y_1)) {d / 20})" for a, b, d in rows)
    p = prop(header(2, 2) + f"(assert (or {disjuncts}))")
    v = verify_instance((g, net.params), p, timeout=60)
    assert v.status in ("holds", "violated", "unknown")
    check(v, net, p)


def test_every_case_must_be_proven() -> None:
    net = _identity_net()
    g = as_graph(net, net.params, (1, 1))
    decl = "(declare-const X_0 Real)(declare-const Y_0 Real)\n"
    # Y_0 = X_0 >= 5 is unsafe: empty on [0, 1], reached on [4, 6]
    both = "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 4) (<= X_0 6))))"
    v = verify_instance((g, net.params), prop(decl + both + "(assert (>= Y_0 5))"))
    assert v.status == "violated" and v.counterexample is not None
    assert F(4) <= v.counterexample[0][0] <= F(6) and v.counterexample[1][0] >= 5
    first = "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3))))"
    assert verify_instance((g, net.params), prop(decl + first + "(assert (>= Y_0 5))")
                           ).status == "holds"
    # a conjunction that is empty only as a whole (Y_0 >= 0.75 and Y_0 <= 0.25) is beyond
    # bounds on single rows over the whole box; input splitting refutes one row per box
    v = verify_instance((g, net.params), prop(decl + first.replace("2", "0.5") +
                                              "(assert (>= Y_0 0.75)) (assert (<= Y_0 0.25))"))
    assert v.status == "holds"
    # without splitting, bounds on single rows cannot: unknown, never holds by mistake
    v = verify_instance((g, net.params), prop(decl + first.replace("2", "0.5") +
                                              "(assert (>= Y_0 0.75)) (assert (<= Y_0 0.25))"),
                        max_split_inputs=0)
    assert v.status == "unknown"


def test_conv_nets_are_bounded_and_searched() -> None:
    net = nn.build(nn.conv2d(1, 2, 3) >> nn.relu() >> nn.flatten() >> nn.linear(8, 2), seed=0)
    g = as_graph(net, net.params, (1, 1, 4, 4))
    text = "".join(f"(declare-const X_{i} Real)(assert (<= 0 X_{i} 1))" for i in range(16))
    text += "(declare-const Y_0 Real)(declare-const Y_1 Real)"
    v = verify_instance((g, net.params), prop(text + "(assert (>= Y_0 1000000))"))
    assert v.status == "holds"  # the bounds cover conv layers (slice, concat, matmul)
    v = verify_instance((g, net.params), prop(text + "(assert (<= Y_0 1000000))"))
    assert v.status == "violated" and v.counterexample is not None
    x = np.array([float(q) for q in v.counterexample[0]]).reshape(1, 1, 4, 4)
    y, _ = net.forward(net.params, tensor(x), mode="eval")
    # the exact outputs agree with a binary64 forward to rounding (1e-12 for this tiny net)
    assert np.allclose(y.numpy().reshape(-1), [float(q) for q in v.counterexample[1]],
                       rtol=0, atol=1e-12)


def test_timeout_and_no_cases() -> None:
    net = mlp(1)
    g = as_graph(net, net.params, (1, 2))
    v = verify_instance((g, net.params), prop(header(2, 2) + "(assert (<= Y_0 1000))"),
                        timeout=0)
    assert v.status == "timeout" and v.counterexample is None
    empty = verify_instance((g, net.params), prop(header(2, 2) + "(assert (< 0 0))"))
    assert empty.status == "holds"


def test_numbers_beyond_binary64_give_unknown() -> None:
    net = mlp(1)
    g = as_graph(net, net.params, (1, 2))
    v = verify_instance((g, net.params), prop(header(2, 2, "-1e400", "1") + "(assert (<= Y_0 0))"))
    assert v.status == "unknown" and "binary64 range" in v.detail


def test_outputs_are_padded_and_checked_against_the_model() -> None:
    net = mlp(2)
    g = as_graph(net, net.params, (1, 2))
    one = prop(header(2, 1) + "(assert (<= Y_0 1000))")  # names Y_0 only
    assert verify_instance((g, net.params), one).status == "violated"
    three = prop(header(2, 3) + "(assert (<= Y_2 1000))")
    with pytest.raises(DataFormatError, match="the model 2 and 2"):
        verify_instance((g, net.params), three)


def test_a_property_file_with_outputs_the_model_lacks_names_the_line(tmp_path: Path) -> None:
    net = mlp(2)
    g = as_graph(net, net.params, (1, 2))
    path = tmp_path / "p.vnnlib"
    path.write_text(header(2, 3) + "(assert (<= Y_2 1000))")
    with pytest.raises(DataFormatError, match=r"p.vnnlib:5:16: Y_2: the model has only 2"):
        verify_instance((g, net.params), path)


def test_without_the_onnx_importer_a_typed_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchlean.verify.vnn.onnx_import", None)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    path = tmp_path / "p.vnnlib"
    path.write_text(header(1, 1) + "(assert (<= Y_0 0))")
    with pytest.raises(UnsupportedOperation, match="ONNX import is unavailable"):
        verify_instance(model, path)
    with pytest.raises(DataFormatError, match="no such file"):
        verify_instance(tmp_path / "missing.onnx", path)


def test_verdicts_are_well_formed() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        Verdict("maybe", None, 0.0)
    with pytest.raises(ValueError, match="counterexample"):
        Verdict("violated", None, 0.0)
