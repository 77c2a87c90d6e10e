"""alpha-CROWN in the verdict engine: the exact chain bound with given slopes (sound, and
refusing bad slopes), a `holds` proved by alpha-CROWN at the root with its slopes in the
certificate (format /2), and tampered slopes rejected by the checker."""

from __future__ import annotations

import base64
import json
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
from torchlean.verify.bounds import as_graph, crown
from torchlean.verify.vnn.batched import BatchedModel
from torchlean.verify.vnn.engine import verify_instance
from torchlean.verify.vnn.exact_chain import GRID, ChainSlopes, exact_chain
from torchlean.verify.vnn.relu_bab import SLOPE_BITS
from torchlean.verify.vnn.tree_certificate import FORMAT_SLOPES, check_tree_certificate

F = Fraction
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def deep(seed: int, hidden: int = 12) -> Any:
    return nn.build(nn.linear(2, hidden) >> nn.relu() >> nn.linear(hidden, hidden) >> nn.relu()
                    >> nn.linear(hidden, hidden) >> nn.relu() >> nn.linear(hidden, 2), seed=seed)


def _random_chain_slopes(rng: Any, widths: tuple[int, ...], rows: int, e: int) -> ChainSlopes:
    final = tuple((rng.integers(0, (1 << e) + 1, size=(rows, w)), e) for w in widths)
    inner = tuple(None if k == 0 else tuple(
        (rng.integers(0, (1 << e) + 1, size=(2 * widths[k], widths[i])), e) for i in range(k))
        for k in range(len(widths)))
    return ChainSlopes(final, inner)


# -- the exact chain bound with slopes --------------------------------------------------
@settings(max_examples=10, deadline=None, phases=NO_SHRINK)
@given(st.integers(0, 10**6), st.floats(-1, 0.5), st.floats(-1, 0.5), st.floats(0.05, 0.8),
       st.integers(0, GRID))
def test_the_exact_bound_with_any_slopes_is_below_every_exact_output(
        seed: int, a: float, b: float, w: float, e: int) -> None:
    """Sound for random slopes in [0, 1] (any exponent up to GRID): below c . y at every
    point of an exact grid of the box, no tolerance."""
    net = deep(seed % 50, 6)
    chain = exact_chain(as_graph(net, net.params, (1, 2)), net.params)
    lo, hi = (F(a), F(b)), (F(a) + F(w), F(b) + F(w))
    rows = [[F(1), F(0)], [F(1, 3), F(-2, 7)]]
    slopes = _random_chain_slopes(np.random.default_rng(seed), chain.layer_widths(), 2, e)
    bound = chain.lower_bound(lo, hi, rows, slopes)
    for i in range(5):
        for j in range(5):
            x = (lo[0] + (hi[0] - lo[0]) * i / 4, lo[1] + (hi[1] - lo[1]) * j / 4)
            y = exact_forward(net, x)
            for r, low in zip(rows, bound, strict=True):
                assert low <= r[0] * y[0] + r[1] * y[1]


def test_the_exact_bound_follows_the_float_bound_with_the_same_slopes() -> None:
    net = deep(3)
    g = as_graph(net, net.params, (1, 2))
    m = BatchedModel(g, net.params)
    lo, hi = np.array([[-0.6, 0.1]]), np.array([[0.4, 0.9]])
    C = np.array([[1.0, 0.0], [1.0, -1.0]])
    got = m.alpha_bound(lo, hi, C)
    assert got is not None
    low, slopes = got
    chain = exact_chain(g, net.params)
    box = [F(v) for v in lo[0]], [F(v) for v in hi[0]]
    rows = [[F(v) for v in r] for r in C]
    exact = chain.lower_bound(*box, rows, m.chain_slopes(slopes, (0, 1)))
    plain = chain.lower_bound(*box, rows)
    sound = crown(g, net.params, lo, hi, C=C, relu_slopes=slopes).lower[0]
    for e, f in zip(exact, sound, strict=True):
        # the same relaxation in exact arithmetic: it differs from the float pass only by
        # rounding (1e-9 covers float64 outward rounding and the 2^-48 grid of the
        # exact pre-activation bounds, over O(10) values)
        assert float(e) == pytest.approx(f, abs=1e-9)
    assert any(float(e) > float(p) + 1e-3 for e, p in zip(exact, plain, strict=True))


def test_bad_slopes_are_refused_by_the_exact_chain() -> None:
    net = deep(1, 4)
    chain = exact_chain(as_graph(net, net.params, (1, 2)), net.params)
    box = (F(-1), F(-1)), (F(1), F(1))
    rows = [[F(1), F(0)]]
    good = _random_chain_slopes(np.random.default_rng(0), chain.layer_widths(), 1, 4)
    chain.lower_bound(*box, rows, good)
    over = np.array(good.final[0][0])
    over[0, 0] = 17  # 17 * 2^-4 > 1
    cases = {
        "outside \\[0, 1\\]": ChainSlopes(((over, 4),) + good.final[1:], good.inner),
        "shape": ChainSlopes(good.final, (None, ((np.zeros((4, 4), int), 4),), good.inner[2])),
        "exponent": ChainSlopes(((good.final[0][0], GRID + 1),) + good.final[1:], good.inner),
        "earlier ReLUs": ChainSlopes(good.final, (None, None, good.inner[2][:1])),
        "ReLU layers": ChainSlopes(good.final[:2], good.inner),
        "not integers": ChainSlopes(((good.final[0][0] / 2, 4),) + good.final[1:], good.inner),
    }
    for why, bad in cases.items():
        with pytest.raises(ValueError, match=why):
            chain.lower_bound(*box, rows, bad)


# -- the engine: a holds proved by alpha-CROWN at the root ------------------------------
def _alpha_instance() -> tuple[Any, Any, float, float, float]:
    """A net and a threshold d with CROWN's root bound of Y_0 < d < alpha-CROWN's."""
    for seed in range(30):
        net = deep(seed)
        g = as_graph(net, net.params, (1, 2))
        m = BatchedModel(g, net.params)
        lo, hi, C = -np.ones((1, 2)), np.ones((1, 2)), np.array([[1.0, 0.0]])
        plain = float(crown(g, net.params, lo, hi, C=C).lower[0, 0])
        got = m.alpha_bound(lo, hi, C)
        assert got is not None
        alpha = float(got[0][0, 0])
        if alpha - plain > 0.05:
            return net, g, plain, alpha, round(alpha - 0.1 * (alpha - plain), 6)
    raise AssertionError("no net where alpha-CROWN gains")


@pytest.fixture(scope="module")
def alpha_cert(tmp_path_factory: Any) -> tuple[Path, Any, Any, dict[str, Any]]:
    net, g, plain, alpha, d = _alpha_instance()
    assert plain < d < alpha
    p = prop(header(2, 2) + f"(assert (<= Y_0 {d:.6f}))")
    cert = tmp_path_factory.mktemp("alpha") / "cert.json"
    # max_split_inputs=1: two inputs count as too many to split, as 784 pixels do
    v = verify_instance((g, net.params), p, timeout=120, certificate=cert,
                        max_split_inputs=1)
    assert v.status == "holds", v.detail
    assert "alpha-crown" in v.detail
    # ground truth: no grid point is unsafe (exact outputs)
    grid = np.linspace(-1, 1, 21)
    assert all(exact_forward(net, (F(float(a)), F(float(b))))[0] > F(d)
               for a in grid for b in grid)
    return cert, (g, net.params), p, json.loads(cert.read_text())


@pytest.fixture
def fresh(alpha_cert: Any) -> tuple[Path, Any, Any, dict[str, Any]]:
    """The module's certificate, its document re-read (each test tampers with its own)."""
    cert, model, p, _ = alpha_cert
    return cert, model, p, json.loads(cert.read_text())


def _tampered(path: Path, doc: dict[str, Any]) -> Path:
    out = path.with_name("tampered.json")
    out.write_text(json.dumps(doc))
    return out


def _array(doc: dict[str, Any], where: str = "final", i: int = 0) -> dict[str, Any]:
    slopes = doc["cases"][0]["leaves"][0][2]
    got: dict[str, Any] = (slopes["final"][i] if where == "final"
                           else slopes["inner"][-1][i])
    return got


def _ints(arr: dict[str, Any]) -> Any:
    return np.frombuffer(base64.b64decode(arr["uint32"]), "<u4").astype(np.int64).copy()


def _put(arr: dict[str, Any], ints: Any) -> None:
    arr["uint32"] = base64.b64encode(np.asarray(ints, "<u4").tobytes()).decode()


def test_an_alpha_certificate_is_accepted(fresh: Any) -> None:
    cert, model, p, doc = fresh
    assert doc["format"] == FORMAT_SLOPES
    assert _array(doc)["exponent"] == SLOPE_BITS
    res = check_tree_certificate(cert, model, p)
    assert res.ok, res.reason


def test_the_slopes_are_needed(fresh: Any) -> None:
    cert, model, p, doc = fresh
    doc["cases"][0]["leaves"][0].pop()  # CROWN's adaptive slopes do not refute the row
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "does not exceed" in res.reason


def test_a_slope_above_one_is_rejected(fresh: Any) -> None:
    cert, model, p, doc = fresh
    for where in ("final", "inner"):
        d = json.loads(json.dumps(doc))
        arr = _array(d, where)
        ints = _ints(arr)
        ints[0] = (1 << SLOPE_BITS) + 1
        _put(arr, ints)
        res = check_tree_certificate(_tampered(cert, d), model, p)
        assert not res.ok and "outside [0, 1]" in res.reason


def test_a_wrong_slope_shape_is_rejected(fresh: Any) -> None:
    cert, model, p, doc = fresh
    for where in ("final", "inner"):
        d = json.loads(json.dumps(doc))
        arr = _array(d, where)
        rows, cols = arr["shape"]
        arr["shape"] = [rows, cols - 1]
        _put(arr, _ints(arr)[: rows * (cols - 1)])
        res = check_tree_certificate(_tampered(cert, d), model, p)
        assert not res.ok and "shape" in res.reason
    d = json.loads(json.dumps(doc))
    _array(d)["shape"] = [1, 3]  # the data no longer fits the shape it claims
    res = check_tree_certificate(_tampered(cert, d), model, p)
    assert not res.ok and "bytes of slopes" in res.reason


def test_changed_slopes_that_no_longer_prove_are_rejected(fresh: Any) -> None:
    cert, model, p, doc = fresh
    slopes = doc["cases"][0]["leaves"][0][2]
    for arr in [*slopes["final"], *(a for per in slopes["inner"] if per for a in per)]:
        _put(arr, np.zeros_like(_ints(arr)))  # every lower line flat: valid but loose
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "does not exceed" in res.reason


def test_slopes_in_a_format_1_file_are_rejected(fresh: Any) -> None:
    cert, model, p, doc = fresh
    doc["format"] = "torchlean-vnn-tree/1"
    res = check_tree_certificate(_tampered(cert, doc), model, p)
    assert not res.ok and "list of 2" in res.reason


def test_alpha_is_not_tried_where_the_exact_checker_cannot_follow() -> None:
    net = nn.build(nn.linear(2, 4097) >> nn.relu() >> nn.linear(4097, 1), seed=0)
    m = BatchedModel(as_graph(net, net.params, (1, 2)), net.params)
    assert m.alpha_bound(-np.ones((1, 2)), np.ones((1, 2)), np.ones((1, 1))) is None
