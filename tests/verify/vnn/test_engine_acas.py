"""Engine v2 on the shipped ACAS Xu network (tests/data) and on ONNX toys: counterexamples
re-evaluated by hand from the file's initializers over Fractions, certificates re-checked
exactly, timeouts honoured, float32 (onnxruntime) / exact disagreements reported."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_testing import helper, make_model  # noqa: E402
from vnnlib_text import prop

from torchlean.verify.vnn.confirm import Confirmer  # noqa: E402
from torchlean.verify.vnn.engine import verify_instance  # noqa: E402
from torchlean.verify.vnn.onnx_import import load_onnx  # noqa: E402
from torchlean.verify.vnn.tree_certificate import check_tree_certificate  # noqa: E402
from torchlean.verify.vnn.vnnlib import Property  # noqa: E402

F = Fraction
ACAS = Path(__file__).parents[2] / "data" / "ACASXU_run2a_1_1_batch_2000.onnx"
CENTRE = (-0.3, -0.2, 0.1, 0.2, 0.1)


def acas_prop(width: float, unsafe: str) -> Property:
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
    text += "".join(f"(declare-const Y_{i} Real)\n" for i in range(5))
    text += "".join(f"(assert (>= X_{i} {c - width}))\n(assert (<= X_{i} {c + width}))\n"
                    for i, c in enumerate(CENTRE))
    return prop(text + unsafe)


def acas_by_hand(x: tuple[Fraction, ...]) -> list[Fraction]:
    """The ACAS Xu net from its initializers over Fractions: subtract the mean image, six
    ReLU layers, a linear output (independent of the graph and the engine)."""
    p = {k: np.vectorize(lambda t: F(float(t)), otypes=[object])(np.asarray(v))
         for k, v in load_onnx(ACAS).params.items()}
    h = np.array(list(x), dtype=object) - p["input_AvgImg"].reshape(-1)
    for i in range(1, 7):
        h = h.dot(p[f"Operation_{i}_MatMul_W"]) + p[f"Operation_{i}_Add_B"]
        h = np.array([max(t, F(0)) for t in h], dtype=object)
    return list(h.dot(p["linear_7_MatMul_W"]) + p["linear_7_Add_B"])


def test_acas_violated_is_confirmed_exactly_and_in_float32() -> None:
    p = acas_prop(0.01, "(assert (<= Y_0 0.2))")
    v = verify_instance(ACAS, p, timeout=30)
    assert v.status == "violated" and v.counterexample is not None
    x, y = v.counterexample
    assert list(y) == acas_by_hand(x)  # exact: no tolerance
    assert p.is_counterexample(x, y)
    assert "float32 under onnxruntime" in v.detail


def test_acas_holds_at_the_root() -> None:
    v = verify_instance(ACAS, acas_prop(0.002, "(assert (>= Y_4 Y_1))"), timeout=30)
    assert v.status == "holds"
    assert "crown" in v.detail


@pytest.mark.slow
def test_acas_tree_certificates_are_rechecked_exactly(tmp_path: Path) -> None:
    for width, unsafe in ((0.002, "(assert (>= Y_4 Y_1))"), (0.004, "(assert (>= Y_4 Y_1))")):
        p = acas_prop(width, unsafe)
        cert = tmp_path / "c.json"
        v = verify_instance(ACAS, p, timeout=120, certificate=cert)
        assert v.status == "holds"
        res = check_tree_certificate(cert, ACAS, p)
        assert res.ok, res.reason


LATE = 0.9  # lateness allowed past a timeout (issue #18): batches are sized to the time
# left and a confirmation starts only if the slowest so far fits, so what remains is one
# step's misestimate (a few ms a box here) and the scheduling noise of a shared machine


@pytest.mark.parametrize("timeout", [0.5, 1.0, 2.0])
def test_acas_timeout_is_honoured(timeout: float) -> None:
    # the real property 2 box (Y_0 maximal is unsafe): several seconds of splitting
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
    text += "".join(f"(declare-const Y_{i} Real)\n" for i in range(5))
    text += ("(assert (<= X_0 0.679857769))(assert (>= X_0 0.6))(assert (<= X_1 0.5))"
             "(assert (>= X_1 -0.5))(assert (<= X_2 0.5))(assert (>= X_2 -0.5))"
             "(assert (<= X_3 0.5))(assert (>= X_3 0.45))(assert (<= X_4 -0.45))"
             "(assert (>= X_4 -0.5))"
             + "".join(f"(assert (<= Y_{i} Y_0))" for i in range(1, 5)))
    v = verify_instance(ACAS, prop(text), timeout=timeout)
    assert v.status == "timeout" if timeout < 1 else v.status in ("timeout", "holds")
    assert v.seconds < timeout + LATE


# -- float32 against exact ------------------------------------------------------------
BIG = 2.0**24  # x + 2^24 - 2^24 is 0 or a multiple of 2 in binary32, x over the reals


@pytest.fixture
def cancelling(tmp_path: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "big"], ["s"]),
             helper.make_node("Sub", ["s", "big"], ["y"])]
    return make_model(tmp_path / "cancel.onnx", nodes, {"x": (1, 1)},
                      inits={"big": np.array([BIG], np.float32)})


def _confirmer(path: Path) -> Confirmer:
    m = load_onnx(path)
    params: dict[str, Any] = {k: np.asarray(v, np.float64) for k, v in m.params.items()}
    return Confirmer(m.graph, params, str(path))


def test_an_exact_counterexample_that_float32_misses_is_reported(cancelling: Path) -> None:
    p = prop("(declare-const X_0 Real)(declare-const Y_0 Real)"
             "(assert (>= X_0 0.2))(assert (<= X_0 0.4))(assert (>= Y_0 0.25))")
    c = _confirmer(cancelling).confirm(p.cases[0], np.array([0.3]))
    assert c is not None  # the exact verdict decides ...
    assert c.y == c.x and c.y[0] >= F(1, 4)
    assert c.float32 is False and "DISAGREES" in c.note  # ... and the disagreement is said


def test_a_float32_counterexample_the_reals_refute_is_not_confirmed(cancelling: Path) -> None:
    p = prop("(declare-const X_0 Real)(declare-const Y_0 Real)"
             "(assert (>= X_0 0.2))(assert (<= X_0 0.4))(assert (<= Y_0 0.1))")
    conf = _confirmer(cancelling)
    y32 = conf.float32_outputs(np.array([0.3], np.float32))
    assert y32 is not None and y32[0] == 0.0  # onnxruntime: unsafe in float32
    assert conf.confirm(p.cases[0], np.array([0.3])) is None  # not over the reals


def test_the_engine_reports_a_float32_disagreement(cancelling: Path) -> None:
    """The search runs in binary64, near the real-number function: it finds the point, the
    exact check confirms it, onnxruntime's float32 does not, and the verdict says so."""
    p = prop("(declare-const X_0 Real)(declare-const Y_0 Real)"
             "(assert (>= X_0 0.2))(assert (<= X_0 0.4))(assert (>= Y_0 0.25))")
    v = verify_instance(cancelling, p, timeout=30)
    assert v.status == "violated" and v.counterexample is not None
    x, y = v.counterexample
    assert y == x and p.is_counterexample(x, y)
    assert "DISAGREES" in v.detail
