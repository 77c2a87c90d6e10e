"""Fuzzing the certificate checker: mutated certificates (fields deleted or retyped, values
nested, keys duplicated, huge numbers, spec rows, labels, boxes and bounds changed, the
text cut or spliced) always give a CheckResult, never an exception and never a checker
error, and are never accepted when the property they state has changed."""

from __future__ import annotations

import json
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from torchlean.spec import nn
from torchlean.verify.bounds import certificate as cert

EPS = "1/50"
KINDS = ("relu", "tanh", "cnn")
PROPERTY = ("format", "version", "fingerprint", "input_shape", "label", "box", "spec",
            "certified")


@cache
def _base(kind: str) -> tuple[Any, dict[str, Any], Any, int]:
    """(model, certificate document, x, label) of a small certified network."""
    x = np.array([0.25, -0.5, 0.75])
    if kind == "relu":
        net = nn.build(nn.linear(3, 5) >> nn.relu() >> nn.linear(5, 4) >> nn.leaky_relu(0.1)
                       >> nn.linear(4, 3), seed=7)
    elif kind == "tanh":
        net = nn.build(nn.linear(3, 4) >> nn.tanh() >> nn.linear(4, 3) >> nn.sigmoid()
                       >> nn.linear(3, 3), seed=8)
    else:   # convolution (slices, concat, padding), relu, max pooling (maximum)
        net = nn.build(nn.conv2d(1, 2, 3, padding=1) >> nn.relu() >> nn.max_pool2d(2)
                       >> nn.flatten() >> nn.linear(8, 2), seed=9)
        x = np.linspace(0, 1, 16).reshape(1, 4, 4)
    y = net.forward(net.params, __import__("torchlean").tensor(x[None]))[0].numpy()
    label = int(np.asarray(y, dtype=np.float64).argmax())
    c = cert.certify_robustness(net, net.params, x, EPS, label)
    return net, c.doc, x, label


def _paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(v, dict):
        for k, w in v.items():
            out += _paths(w, prefix + (k,))
    elif isinstance(v, list):
        for i, w in enumerate(v[:6]):     # the first items of long lists are enough
            out += _paths(w, prefix + (i,))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    for k in path[:-1]:
        doc = doc[k]
    return doc, path[-1]


LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-10**40, 10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["0", "1", "-1", "1/3", "1/0", "9" * 450, "1" + "0" * 399, "0x1p3",
                     "NaN", "2/4", " 1", "1/-2"]),
)
JSON = st.recursive(LEAF, lambda c: st.lists(c, max_size=3)
                    | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    kind = draw(st.sampled_from(KINDS))
    doc = json.loads(json.dumps(_base(kind)[1]))
    path = draw(st.sampled_from(_paths(doc)))
    parent, key = _at(doc, path)
    action = draw(st.sampled_from(["delete", "replace", "nest", "shift", "duplicate", "cut",
                                   "splice", "label", "spec"]))
    text = None
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = draw(JSON)
    elif action == "nest":
        for _ in range(draw(st.integers(1, 40))):
            parent[key] = [parent[key]]
    elif action == "shift":       # move a number (rational or int) by a random amount
        v = parent[key]
        d = draw(st.fractions(max_denominator=10**6).filter(lambda q: q != 0)
                 | st.sampled_from([Fraction(10**300), Fraction(-1, 10**300)]))
        if isinstance(v, str) and "/" in v or isinstance(v, str) and v.lstrip("-").isdigit():
            q = Fraction(v) + d
            parent[key] = f"{q.numerator}/{q.denominator}"
        elif isinstance(v, int) and not isinstance(v, bool):
            parent[key] = v + int(d) + 1
        else:
            parent[key] = draw(JSON)
    elif action == "label":
        doc["label"] = draw(st.one_of(st.integers(-3, 5), st.booleans(), st.just(1.0)))
    elif action == "spec":
        row = draw(st.integers(0, len(doc["spec"]) - 1))
        col = draw(st.integers(0, len(doc["spec"][row]) - 1))
        doc["spec"][row][col] = draw(st.sampled_from(["0", "1", "-1", "2", "1/2"]))
    text = json.dumps(doc)
    if action == "duplicate":     # repeat a key of the top object with another value
        k = draw(st.sampled_from(sorted(doc)))
        text = text[:-1] + f', "{k}": ' + json.dumps(draw(JSON)) + "}"
    elif action == "cut":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif action == "splice":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(max_size=4)) + text[i:]
    return kind, text, doc


def _check(kind: str, text: str, tmp: Path) -> cert.CheckResult:
    net, _, x, label = _base(kind)
    path = tmp / f"fuzz-{kind}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    r = cert.check_certificate(path, net, net.params, x=x, eps=EPS, label=label)
    assert isinstance(r, cert.CheckResult)
    assert not r.reason.startswith("checker error"), r.reason
    return r


def _fuzz(case: tuple[str, str, dict[str, Any]], tmp: Path) -> None:
    kind, text, _ = case
    r = _check(kind, text, tmp)
    event("accepted" if r.accepted else "rejected: " + r.reason.split(":")[0][:30])
    if r.accepted:
        original = _base(kind)[1]
        doc = json.loads(text)
        for field in PROPERTY:
            assert json.dumps(doc[field]) == json.dumps(original[field]) or (
                field in ("box", "spec") and _same_numbers(doc[field], original[field])), field


def _same_numbers(a: Any, b: Any) -> bool:
    """Equal up to how each rational is written ("2/4" and "1/2")."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_numbers(p, q) for p, q in zip(a, b, strict=True))
    return isinstance(a, str) and isinstance(b, str) and Fraction(a) == Fraction(b)


def test_the_unmutated_certificates_are_accepted(tmp_path: Path) -> None:
    for kind in KINDS:
        r = _check(kind, json.dumps(_base(kind)[1]), tmp_path)
        assert r.accepted and r.certified, r.reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_certificates(tmp_path: Path, case: tuple[str, str, dict[str, Any]]) -> None:
    _fuzz(case, tmp_path)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_certificates_many(tmp_path: Path, case: tuple[str, str, dict[str, Any]]
                                   ) -> None:
    _fuzz(case, tmp_path)
