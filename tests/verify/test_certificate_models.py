"""Certificates beyond ReLU MLPs: the CNN example, a max-pooling CNN, a residual net,
tanh / sigmoid / gelu / silu MLPs and an exp / softplus / log graph are certified,
accepted and true at sampled points, and tampered certificates are rejected with the
reason. Also the checker's rule table covers the op table, and every relaxation line it
derives is valid."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.runtime.graph import Graph, interpret, trace
from torchlean.spec import functional as F
from torchlean.spec import nn
from torchlean.spec.fields import get_field
from torchlean.spec.ops import OPS
from torchlean.verify import bounds
from torchlean.verify.bounds import certificate as cert
from torchlean.verify.bounds.certificate_rules import (
    RULES,
    Linear,
    PairRelaxation,
    Relaxation,
    lines_range,
)

INTERVAL = get_field("interval")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(relative: str) -> ModuleType:
    """The example at examples/<relative>, imported fresh."""
    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _predicted(model: Any, params: Any, x: Any) -> int:
    g = bounds.as_graph(model, params, (1, *np.shape(x)))
    y = interpret(g, {**params, "x": tl.tensor(np.asarray(x)[None])})["out"]
    return int(np.asarray(y.numpy(), dtype=np.float64).argmax())


def _graph_exp_log() -> tuple[Graph, dict[str, Any]]:
    def fn(p: Any, x: Any) -> Any:
        h = F.softplus(F.matmul(x, p["w1"]))
        h = F.log(h + 1.0) + F.exp(h * 0.5)
        return F.matmul(h, p["w2"])

    rng = np.random.default_rng(5)
    params = {"w1": rng.normal(size=(4, 6)), "w2": rng.normal(size=(6, 3))}
    g = trace(fn, {"x": (1, 4)}, {k: v.shape for k, v in params.items()}, "float")
    return g, {k: tl.tensor(v) for k, v in params.items()}


def _graph_product() -> tuple[Graph, dict[str, Any]]:
    def fn(p: Any, x: Any) -> Any:    # a product of two input-dependent values
        h = F.matmul(x, p["w1"]) * F.tanh(F.matmul(x, p["w2"]))
        return F.matmul(F.relu(h), p["w3"])

    rng = np.random.default_rng(6)
    params = {"w1": rng.normal(size=(4, 5)), "w2": rng.normal(size=(4, 5)),
              "w3": rng.normal(size=(5, 3))}
    g = trace(fn, {"x": (1, 4)}, {k: v.shape for k, v in params.items()}, "float")
    return g, {k: tl.tensor(v) for k, v in params.items()}


def _mlp(act: Any, seed: int) -> nn.Built:
    return nn.build(nn.flatten() >> nn.linear(16, 8) >> act() >> nn.linear(8, 6) >> act()
                    >> nn.linear(6, 3), seed=seed)


def _residual() -> nn.Built:
    block = nn.linear(8, 8) >> nn.relu() >> nn.linear(8, 8)
    return nn.build(nn.flatten() >> nn.linear(16, 8) >> nn.relu() >> nn.residual(block)
                    >> nn.relu() >> nn.linear(8, 3), seed=4)


def _cnn() -> nn.Built:
    return nn.build(load_example("models/cnn_bands.py").make_model(), seed=0)


def _cnn_maxpool() -> nn.Built:
    return nn.build(nn.conv2d(1, 3, 3, padding=1) >> nn.relu() >> nn.max_pool2d(2)
                    >> nn.flatten() >> nn.linear(12, 3), seed=6)


X16 = np.random.default_rng(0).uniform(size=(1, 4, 4))
MODELS = {
    "cnn": lambda: (_cnn(), None, X16),
    "cnn-maxpool": lambda: (_cnn_maxpool(), None, X16),
    "residual": lambda: (_residual(), None, X16),
    "tanh": lambda: (_mlp(nn.tanh, 3), None, X16),
    "sigmoid": lambda: (_mlp(nn.sigmoid, 3), None, X16),
    "gelu-silu": lambda: (nn.build(nn.flatten() >> nn.linear(16, 5) >> nn.gelu()
                                   >> nn.linear(5, 4) >> nn.silu() >> nn.linear(4, 3), seed=9),
                          None, X16),
    "exp-softplus-log": lambda: (*_graph_exp_log(), np.array([0.3, -0.2, 0.5, 0.1])),
    "product": lambda: (*_graph_product(), np.array([0.3, -0.2, 0.5, 0.1])),
}


def _model(name: str) -> tuple[Any, dict[str, Any], Any]:
    model, params, x = MODELS[name]()
    return model, dict(model.params) if params is None else params, x


def _claims_hold_at(g: Graph, params: dict[str, Any], doc: dict[str, Any], x: Any,
                    label: int) -> None:
    """Every claimed interval meets the interval-arithmetic value of its node at x, and
    every margin bound is below the margin there (a violation disproves the claim)."""
    nodes = [c["node"] for c in doc["claims"]]
    probe = dataclasses.replace(g, outputs=tuple((f"n{z}", z) for z in nodes)
                                + tuple(g.outputs))
    leaves = {**{k: np.asarray(v.numpy()) for k, v in params.items()},
              "x": INTERVAL.asarray(x[None])}
    vals = interpret(probe, leaves, field=INTERVAL)
    for c in doc["claims"]:
        v = np.asarray(vals[f"n{c['node']}"].numpy()).reshape(-1)
        for lo, hi, e in zip(c["lower"], c["upper"], v, strict=True):
            assert Fraction(lo) <= Fraction(*_ends(e)[1]) and Fraction(*_ends(e)[0]) <= \
                Fraction(hi), (c["node"], lo, hi, e)
    y = np.asarray(vals["out"].numpy()).reshape(-1)
    others = [j for j in range(len(y)) if j != label]
    for j, m in zip(others, doc["margin_lower"], strict=True):
        diff = y[label] - y[j]
        assert Fraction(m) <= Fraction(*_ends(diff)[1]), (j, m, diff)


def _ends(e: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    from mpmath.libmp import to_rational
    a, b = e._mpi_
    return to_rational(a), to_rational(b)


@pytest.mark.parametrize("method", ["crown", "ibp"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_certified_accepted_and_true_at_samples(tmp_path: Path, name: str,
                                                method: str) -> None:
    model, params, x = _model(name)
    label = _predicted(model, params, x)
    path = tmp_path / "c.json"
    c = cert.certify_robustness(model, params, x, "1/200", label, method, path=path)
    r = cert.check_certificate(path, model, params, x=x, eps="1/200", label=label)
    assert r.accepted, r.reason
    assert r.certified == c.certified
    if method == "crown":
        assert c.certified, (name, c.margin_lower)   # a small ball around a sample
    g = bounds.as_graph(model, params, (1, *np.shape(x)))
    doc = json.loads(path.read_text())
    rng = np.random.default_rng(1)
    xq = np.vectorize(Fraction, otypes=[object])(np.asarray(x))
    for k in range(6):   # exact points of the box: corners, then random ones
        steps = rng.choice([-200, 200], size=np.shape(x)) if k < 3 else rng.integers(
            -200, 201, size=np.shape(x))
        point = xq + np.vectorize(lambda s: Fraction(int(s), 200 * 200), otypes=[object])(steps)
        _claims_hold_at(g, params, doc, point, label)


def _tamper(tmp_path: Path, name: str, edit: Any) -> cert.CheckResult:
    model, params, x = _model(name)
    label = _predicted(model, params, x)
    path = tmp_path / "c.json"
    cert.certify_robustness(model, params, x, "1/200", label, path=path)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return cert.check_certificate(path, model, params, x=x, eps="1/200", label=label)


def _collapse_last_claim(doc: dict[str, Any]) -> None:
    # the widest item: its value varies over the box, so a zero-width claim is false
    c = doc["claims"][-1]
    widths = [Fraction(u) - Fraction(lo) for lo, u in zip(c["lower"], c["upper"], strict=True)]
    j = widths.index(max(widths))
    c["upper"][j] = c["lower"][j]


def _raise_margin(doc: dict[str, Any]) -> None:
    q = Fraction(doc["margin_lower"][0]) + 10
    doc["margin_lower"][0] = f"{q.numerator}/{q.denominator}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tampered_certificates_are_rejected(tmp_path: Path, name: str) -> None:
    r = _tamper(tmp_path, name, _collapse_last_claim)
    assert not r.accepted and "does not contain the exact enclosure" in r.reason, r.reason
    r = _tamper(tmp_path, name, _raise_margin)
    assert not r.accepted and "margin_lower[0]: claimed" in r.reason, r.reason
    r = _tamper(tmp_path, name, lambda d: d["box"]["upper"].__setitem__(0, "1"))
    assert not r.accepted and "L-inf ball" in r.reason, r.reason


def test_cnn_example_certifies_its_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    example = load_example("models/cnn_bands.py")
    example.main(["--steps", "120", "--certify", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert out.count("certified True at eps 1/100") == 6, out
    assert len(list((tmp_path / "cli").glob("cert-*.json"))) == 6
    with pytest.raises(SystemExit):
        example.main(["--steps", "1", "--certify"])
    # the same through the example's functions, then a tampered CNN certificate
    task = example.task(0)
    runner = tl.train.runner(task)
    tl.train.fit_dataset(task, runner, tl.train.steps(120, tl.optim.adam(0.05), log_every=0),
                         tl.data.samples.bands())
    results = example.certify(runner, str(tmp_path))
    assert all(r.accepted and r.certified for r in results)
    net = example.trained_model(runner)
    path = tmp_path / "cert-0.json"
    doc = json.loads(path.read_text())
    doc["claims"][0]["lower"][5] = doc["claims"][0]["upper"][5]   # one conv output
    path.write_text(json.dumps(doc))
    r = cert.check_certificate(path, net, net.params)
    assert not r.accepted and "item 5" in r.reason and "does not contain" in r.reason, r.reason


def test_rule_table_covers_the_op_table() -> None:
    assert RULES.missing() == []
    assert "sqrt" in RULES.unsupported


_SMOOTH = [t for t, r in RULES.rules.items() if isinstance(r, Relaxation)]


@settings(max_examples=40, deadline=None)
@given(tag=st.sampled_from(_SMOOTH),
       ends=st.lists(st.floats(-6, 6, allow_nan=False), min_size=2, max_size=2),
       slope=st.sampled_from([0.0, 0.01, 0.5, 2.0]),
       ts=st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_relaxation_lines_are_valid(tag: str, ends: list[float], slope: float,
                                    ts: list[float]) -> None:
    lo, hi = sorted(Fraction(v) for v in ends)
    rule = RULES.rules[tag]
    assert isinstance(rule, Relaxation)
    if rule.domain is not None:   # moved into the domain: [d + 1/64, d + 12 + 1/64]
        lo, hi = (rule.domain + Fraction(1, 64) + 6 + v for v in (lo, hi))
    at = {"negative_slope": slope} if tag == "leaky_relu" else {}
    one = np.array([lo], dtype=object), np.array([hi], dtype=object)
    lines = rule.lines(*one, at)
    a_l, b_l, a_u, b_u = (v[0] for v in lines)
    rng = lines_range(*one, lines) if rule.range is None else rule.range(*one, at)
    r_lo, r_hi = (v[0] for v in rng)
    for t in [0.0, 1.0, *ts]:
        z = lo + (hi - lo) * Fraction(t)
        fz = OPS[tag].forward(INTERVAL, (INTERVAL.asarray([z]),), at)[0]
        (p, q), (r, s) = _ends(fz)
        f_lo, f_hi = Fraction(p, q), Fraction(r, s)
        # a proven violation: the line is above every possible value of f(z), or below
        assert a_l * z + b_l <= f_hi and f_lo <= a_u * z + b_u, (tag, lo, hi, z)
        assert r_lo <= f_hi and f_lo <= r_hi
    # not vacuous: on a short interval the lines are close to f
    if hi - lo < Fraction(1, 100) and tag != "leaky_relu":
        mid = (lo + hi) / 2
        assert (a_u - a_l) * mid + b_u - b_l < Fraction(1, 10)


_BOUND = st.integers(-50, 50).map(lambda k: Fraction(k, 8))


@settings(max_examples=60, deadline=None)
@given(tag=st.sampled_from(["maximum", "minimum", "mul"]),
       a=st.lists(_BOUND, min_size=2, max_size=2), b=st.lists(_BOUND, min_size=2, max_size=2),
       ts=st.lists(st.tuples(st.fractions(0, 1), st.fractions(0, 1)), min_size=1, max_size=6))
def test_pair_lines_are_valid(tag: str, a: list[Fraction], b: list[Fraction],
                              ts: list[tuple[Fraction, Fraction]]) -> None:
    (la, ua), (lb, ub) = sorted(a), sorted(b)
    rule = RULES.rules[tag]
    if isinstance(rule, Linear):      # mul of two input-dependent values
        rule = rule.both
    assert isinstance(rule, PairRelaxation)
    ends = [np.array([v], dtype=object) for v in (la, ua, lb, ub)]
    ca_l, cb_l, d_l, ca_u, cb_u, d_u = (v[0] for v in rule.lines(*ends))
    r_lo, r_hi = (v[0] for v in rule.range(*ends))
    pick = {"maximum": max, "minimum": min, "mul": lambda p, q: p * q}[tag]
    corners = [(Fraction(0), Fraction(0)), (Fraction(1), Fraction(1)),
               (Fraction(0), Fraction(1)), (Fraction(1), Fraction(0))]
    for s, t in corners + ts:
        x, y = la + (ua - la) * s, lb + (ub - lb) * t
        v = pick(x, y)   # exact: the lines must hold with no tolerance
        assert ca_l * x + cb_l * y + d_l <= v <= ca_u * x + cb_u * y + d_u
        assert r_lo <= v <= r_hi
