"""Engine v2 on toy nets: verdicts against independent ground truth (exact evaluation by
hand on dense grids), tree certificates accepted and tampered ones rejected, the exact
leaf bound below every exact output, the work pool giving the serial answer."""

from __future__ import annotations

import json
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exact_nets import exact_forward
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from vnnlib_text import header, prop

from torchlean.spec import nn
from torchlean.spec.tensor import tensor
from torchlean.verify.bounds import as_graph
from torchlean.verify.vnn.engine import verify_instance
from torchlean.verify.vnn.exact_chain import exact_chain
from torchlean.verify.vnn.tree_certificate import check_tree_certificate
from torchlean.verify.vnn.vnnlib import Property
from torchlean.verify.workers import WorkPool

F = Fraction
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)  # each example costs seconds


def mlp(seed: int, hidden: int = 8) -> Any:
    return nn.build(nn.linear(2, hidden) >> nn.relu() >> nn.linear(hidden, hidden) >> nn.relu()
                    >> nn.linear(hidden, 2), seed=seed)


def grid_values(net: Any, points: int = 41) -> tuple[list[tuple[Fraction, ...]], list[Any]]:
    g = np.linspace(-1, 1, points)
    xs = [(F(float(a)), F(float(b))) for a in g for b in g]
    return xs, [exact_forward(net, x) for x in xs]


# -- verdicts against ground truth ------------------------------------------------------
ROWS = st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-30, 30)),
                min_size=1, max_size=2)


def _random_case(seed: int, rows: list[tuple[int, int, int]], tmp: Path) -> None:
    net = mlp(seed % 50)
    g = as_graph(net, net.params, (1, 2))
    disj = " ".join(f"(<= (+ (* {a} Y_0) (* {b} Y_1)) {d / 20})" for a, b, d in rows)
    p = prop(header(2, 2) + f"(assert (or {disj}))")
    cert = tmp / "cert.json"
    v = verify_instance((g, net.params), p, timeout=60, certificate=cert)
    assert v.status in ("holds", "violated")  # 2 inputs: branch and bound decides
    if v.status == "violated":
        assert v.counterexample is not None
        x, y = v.counterexample
        assert list(y) == exact_forward(net, x)  # exact, no tolerance
        assert p.is_counterexample(x, y)
    else:
        xs, ys = grid_values(net, 21)
        assert not any(p.is_counterexample(x, y) for x, y in zip(xs, ys, strict=True))
        res = check_tree_certificate(cert, (g, net.params), p)
        assert res.ok, res.reason


@settings(max_examples=8, deadline=None, phases=NO_SHRINK)
@given(st.integers(0, 10**6), ROWS)
def test_verdicts_agree_with_exact_grids_and_certificates_check(
        seed: int, rows: list[tuple[int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _random_case(seed, rows, Path(tmp))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, phases=NO_SHRINK)
@given(st.integers(0, 10**6), ROWS)
def test_many_verdicts_agree(seed: int, rows: list[tuple[int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _random_case(seed, rows, Path(tmp))


def test_holds_only_by_splitting_is_found_and_certified(tmp_path: Path) -> None:
    """The minimum of Y_0 over the box is read off an exact grid; Y_0 <= min - 0.01 needs
    input splitting (CROWN over the whole box is too loose) and holds."""
    net = mlp(7)
    g = as_graph(net, net.params, (1, 2))
    xs, ys = grid_values(net)
    low = min(y[0] for y in ys)
    p = prop(header(2, 2) + f"(assert (<= Y_0 {float(low) - 0.01}))")
    cert = tmp_path / "c.json"
    v = verify_instance((g, net.params), p, timeout=60, certificate=cert)
    # the grid min is above the true min by at most the Lipschitz bound times the grid
    # step; when holds, the certificate (checked exactly) is the ground truth
    assert v.status in ("holds", "violated")
    if v.status == "holds":
        doc = json.loads(cert.read_text())
        assert len(doc["cases"][0]["leaves"]) >= 1
        assert check_tree_certificate(cert, (g, net.params), p).ok
    above = prop(header(2, 2) + f"(assert (<= Y_0 {float(low) + 0.01}))")
    v = verify_instance((g, net.params), above, timeout=60)
    assert v.status == "violated" and v.counterexample is not None
    assert list(v.counterexample[1]) == exact_forward(net, v.counterexample[0])


def test_timeout_is_honoured() -> None:
    net = mlp(3, hidden=32)
    g = as_graph(net, net.params, (1, 2))
    xs, ys = grid_values(net, 11)
    low = min(y[0] for y in ys)
    # just below the minimum: needs a deep tree
    p = prop(header(2, 2) + f"(assert (<= Y_0 {float(low) - 1e-9}))")
    v = verify_instance((g, net.params), p, timeout=0.5)
    assert v.status in ("timeout", "violated")
    assert v.seconds < 0.5 + 3.0  # one bounds batch and the set-up may overrun
    assert dict(v.phases).keys() == {"attack", "bounds", "branching"}


# -- tree certificates ------------------------------------------------------------------
def _identity() -> tuple[Any, Any]:
    net = nn.build(nn.linear(1, 1) >> nn.relu() >> nn.linear(1, 1), seed=0)
    net = net.with_state(params={"0.weight": tensor([[1.0]]), "0.bias": tensor([0.0]),
                                 "2.weight": tensor([[1.0]]), "2.bias": tensor([0.0])})
    return as_graph(net, net.params, (1, 1)), net.params


# Y_0 = X_0 on [0, 1]; unsafe: Y_0 >= 0.75 and Y_0 <= 0.25 (empty, but neither row is
# refuted on the whole box: a split point p in (0.25, 0.75) is needed)
BAND = ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 0))"
        "(assert (<= X_0 1))(assert (>= Y_0 0.75))(assert (<= Y_0 0.25))")


@pytest.fixture
def band_cert(tmp_path: Path) -> tuple[Path, Any, Property, dict[str, Any]]:
    g, params = _identity()
    p = prop(BAND)
    cert = tmp_path / "band.json"
    v = verify_instance((g, params), p, certificate=cert, batch=2)  # batch 2: one split
    assert v.status == "holds" and v.certificate == str(cert)
    return cert, (g, params), p, json.loads(cert.read_text())


def _tampered(path: Path, doc: dict[str, Any]) -> Path:
    out = path.with_name("tampered.json")
    out.write_text(json.dumps(doc))
    return out


def test_a_certificate_is_accepted(band_cert: Any) -> None:
    cert, model, p, doc = band_cert
    res = check_tree_certificate(cert, model, p)
    assert res.ok and res.leaves == len(doc["cases"][0]["leaves"]) >= 2


def test_a_moved_split_point_is_rejected(band_cert: Any) -> None:
    cert, model, p, doc = band_cert
    first = doc["cases"][0]["splits"][0]
    first[2] = "9/10"  # the left box [0, 0.9] reaches 0.75: its row no longer refutes
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "does not exceed" in res.reason
    first[2] = "3/1"  # outside the box
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "outside" in res.reason


def test_a_dropped_leaf_is_rejected(band_cert: Any) -> None:
    cert, model, p, doc = band_cert
    doc["cases"][0]["leaves"].pop()
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "not exactly the unsplit boxes" in res.reason


def test_a_changed_refuting_row_is_rejected(band_cert: Any) -> None:
    cert, model, p, doc = band_cert
    leaf = doc["cases"][0]["leaves"][0]
    leaf[1] = [1 - leaf[1][0]]  # the other row of the conjunction: not refuted there
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "does not exceed" in res.reason
    leaf[1] = [5]
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "one row of each" in res.reason


def test_a_root_that_does_not_cover_the_box_is_rejected(band_cert: Any) -> None:
    cert, model, p, doc = band_cert
    doc["cases"][0]["root"]["upper"] = ["1/2"]
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "does not contain" in res.reason


def test_a_certificate_for_another_property_is_rejected(band_cert: Any) -> None:
    cert, model, _, _ = band_cert
    wider = prop(BAND.replace("(assert (<= X_0 1))", "(assert (<= X_0 2))"))
    assert not check_tree_certificate(cert, model, wider).ok
    malformed = cert.with_name("bad.json")
    malformed.write_text('{"format": "torchlean-vnn-tree/1", "cases": [{"root": 3}]}')
    assert not check_tree_certificate(malformed, model, prop(BAND)).ok


def test_a_certificate_that_is_not_strict_json_is_rejected(band_cert: Any) -> None:
    """The checker reads with spec/strict_json: a key given twice (json.load would keep
    the last) or a NaN makes the file invalid, with the position named."""
    cert, model, p, doc = band_cert
    twice = cert.with_name("twice.json")
    twice.write_text(json.dumps(doc)[:-1] + ', "format": "torchlean-vnn-tree/1"}')
    res = check_tree_certificate(twice, model, p)
    assert not res.ok and "twice.json: line 1" in res.reason
    doc["cases"][0]["leaves"][0].append(float("nan"))
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "NaN" in res.reason


# -- the exact leaf bound ---------------------------------------------------------------
@settings(max_examples=10, deadline=None, phases=NO_SHRINK)
@given(st.integers(0, 10**6), st.floats(-1, 0.5), st.floats(-1, 0.5), st.floats(0.01, 0.5))
def test_the_exact_leaf_bound_is_below_every_exact_output(seed: int, a: float, b: float,
                                                          w: float) -> None:
    """Sound: below c . y at every point of an exact grid of the box (no tolerance)."""
    net = mlp(seed % 50)
    g = as_graph(net, net.params, (1, 2))
    chain = exact_chain(g, net.params)
    lo, hi = (F(a), F(b)), (F(a) + F(w), F(b) + F(w))
    rows = [[F(1), F(0)], [F(1), F(-3)], [F(1, 3), F(-2, 7)]]  # the last: not dyadic
    bound = chain.lower_bound(lo, hi, rows)
    for i in range(6):
        for j in range(6):
            x = (lo[0] + (hi[0] - lo[0]) * i / 5, lo[1] + (hi[1] - lo[1]) * j / 5)
            y = exact_forward(net, x)
            for r, low in zip(rows, bound, strict=True):
                assert low <= r[0] * y[0] + r[1] * y[1]


# -- the work pool --------------------------------------------------------------------
def test_an_in_process_pool_gives_the_serial_answer(tmp_path: Path) -> None:
    g, params = _identity()
    p = prop(BAND)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    serial = verify_instance((g, params), p, certificate=a)
    with WorkPool(1) as pool:
        pooled = verify_instance((g, params), p, certificate=b, pool=pool)
    assert serial.status == pooled.status == "holds"
    assert a.read_text() == b.read_text()


@pytest.mark.slow
def test_a_process_pool_gives_the_serial_verdict(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    net = mlp(7)
    g = as_graph(net, net.params, (1, 2))
    xs, ys = grid_values(net, 21)
    p = prop(header(2, 2) + f"(assert (<= Y_0 {float(min(y[0] for y in ys)) - 0.05}))")
    serial = verify_instance((g, net.params), p, timeout=120)
    cert = tmp_path / "c.json"
    with WorkPool(2) as pool:
        pooled = verify_instance((g, net.params), p, timeout=120, pool=pool, certificate=cert)
    assert serial.status == pooled.status
    if pooled.status == "holds":
        assert check_tree_certificate(cert, (g, net.params), p).ok


# -- smooth activations: rigorous intervals ------------------------------------------
def test_tanh_counterexamples_are_confirmed_by_intervals() -> None:
    """tanh is not rational: the output enclosure (mpmath intervals) must lie wholly in
    the unsafe region. tanh(x) >= 0.7 is reached on [0, 1] (tanh 1 = 0.7616); >= 0.77 is
    not, and no point may be reported for it."""
    net = nn.build(nn.linear(1, 1) >> nn.tanh(), seed=0)
    net = net.with_state(params={"0.weight": tensor([[1.0]]), "0.bias": tensor([0.0])})
    g = as_graph(net, net.params, (1, 1))
    reach = prop(header(1, 1, "0", "1") + "(assert (>= Y_0 0.7))")
    v = verify_instance((g, net.params), reach, timeout=30)
    assert v.status == "violated" and v.counterexample is not None
    assert "interval" in v.detail
    x = float(v.counterexample[0][0])
    assert np.tanh(x) >= 0.7 + 1e-12  # binary64 tanh is within 1e-15 here
    beyond = prop(header(1, 1, "0", "1") + "(assert (>= Y_0 0.77))")
    assert verify_instance((g, net.params), beyond, timeout=30).status == "holds"
