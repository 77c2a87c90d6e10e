"""Robustness certificates: produced, re-checked exactly, tampering rejected, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean import data
from torchlean.spec import nn
from torchlean.spec.errors import UnsupportedOperation
from torchlean.verify import bounds
from torchlean.verify.bounds import certificate as cert


def _net() -> nn.Built:
    model = (nn.flatten() >> nn.linear(16, 8) >> nn.relu() >> nn.linear(8, 6)
             >> nn.leaky_relu(0.1) >> nn.linear(6, 2))
    return nn.build(model, seed=1)


X = np.random.default_rng(0).uniform(size=(1, 4, 4))


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize("eps", ["1/1000", "1/20"])
def test_produced_certificates_are_accepted(tmp_path: Path, method: str, eps: str) -> None:
    net = _net()
    c = cert.certify_robustness(net, net.params, X, eps, 0, method, path=tmp_path / "c.json")
    r = cert.check_certificate(tmp_path / "c.json", net, net.params)
    assert r.accepted, r.reason
    assert ("robust" in r.reason) and (c.certified == ("not certified" not in r.reason))


def _tampered(tmp_path: Path, edit: Any) -> cert.CheckResult:
    net = _net()
    path = tmp_path / "c.json"
    cert.certify_robustness(net, net.params, X, "1/1000", 0, "crown", path=path)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return cert.check_certificate(path, net, net.params)


def _collapse(doc: dict[str, Any]) -> None:
    # a zero-width claim where the value varies over the box cannot contain it
    doc["claims"][1]["upper"][2] = doc["claims"][1]["lower"][2]


def _raise_margin(doc: dict[str, Any]) -> None:
    doc["margin_lower"][0] = "1000"


def _widen_box(doc: dict[str, Any]) -> None:
    doc["box"]["upper"][3] = "2"


def _negate_spec(doc: dict[str, Any]) -> None:
    doc["spec"][0] = [t[1:] if t.startswith("-") else "-" + t for t in doc["spec"][0]]


TAMPER = {
    "collapsed claim": (_collapse, "claim for node %[0-9]+, item 2"),
    "claimed margin too high": (_raise_margin, "margin_lower\\[0\\]"),
    "box widened": (_widen_box, "does not contain"),
    "malformed number": (lambda d: d["claims"][0]["lower"].__setitem__(0, "0.5"), "rational"),
    "zero denominator": (lambda d: d["box"]["lower"].__setitem__(0, "1/0"), "zero denominator"),
    "missing field": (lambda d: d.pop("claims"), "missing field 'claims'"),
    "unknown field": (lambda d: d.__setitem__("slopes", []), "unknown field 'slopes'"),
    "unknown nested field": (lambda d: d["claims"][0].__setitem__("op", "relu"),
                             "unknown field 'op'"),
    "wrong list length": (lambda d: d["claims"][0]["upper"].pop(), "lower has 8 numbers"),
    "fingerprint": (lambda d: d.__setitem__("fingerprint", "0" * 64), "fingerprint"),
    "certified flag": (lambda d: d.__setitem__("certified", False), "certified"),
    "certified as a string": (lambda d: d.__setitem__("certified", "true"), "true or false"),
    "not an object": (lambda d: d["claims"].__setitem__(0, 3), "expected an object"),
    "spec claims another property": (_negate_spec, "spec: not the margin rows"),
    "label as a bool": (lambda d: d.__setitem__("label", True), "label: expected an integer"),
    "label changed": (lambda d: d.__setitem__("label", 1), "spec: not the margin rows"),
    "claim for another node": (lambda d: d["claims"][0].__setitem__("node", 0), "claims:"),
    "claim dropped": (lambda d: d["claims"].pop(), "claims:"),
    "old version": (lambda d: d.__setitem__("version", 1), "reads version 2"),
    "unknown method": (lambda d: d.__setitem__("method", "magic"), "method"),
    "huge number": (lambda d: d["box"]["lower"].__setitem__(0, "9" * 500), "at most 400"),
}


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_tampered_certificates_are_rejected(tmp_path: Path, name: str) -> None:
    edit, reason = TAMPER[name]
    r = _tampered(tmp_path, edit)
    assert not r.accepted
    assert re.search(reason, r.reason), r.reason


def test_different_weight_is_rejected(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "c.json"
    cert.certify_robustness(net, net.params, X, "1/100", 0, path=path)
    params = dict(net.params)
    w = params["3.weight"].numpy().copy()
    w[0, 0] = np.nextafter(w[0, 0], 1.0)  # one ulp
    params["3.weight"] = tl.tensor(w)
    r = cert.check_certificate(path, net, params)
    assert not r.accepted and "fingerprint" in r.reason


def test_unsupported_op_is_refused_and_rejected_naming_it(tmp_path: Path) -> None:
    net = nn.build(nn.linear(3, 4) >> nn.softmax() >> nn.linear(4, 2), seed=0)
    with pytest.raises(UnsupportedOperation, match="softmax"):
        cert.certify_robustness(net, net.params, np.zeros(3), "1/100", 0)
    # a certificate made for the tanh net, checked against the softmax net: the op is named
    other = nn.build(nn.linear(3, 4) >> nn.tanh() >> nn.linear(4, 2), seed=0)
    path = tmp_path / "c.json"
    cert.certify_robustness(other, other.params, np.zeros(3), "1/100", 0, path=path)
    doc = json.loads(path.read_text())
    g = bounds.as_graph(net, net.params, (1, 3))
    doc["fingerprint"] = cert.model_fingerprint(g, net.params)
    path.write_text(json.dumps(doc))
    r = cert.check_certificate(path, net, net.params)
    assert not r.accepted and "softmax" in r.reason and "certificate" in r.reason, r.reason


def test_expected_box_and_label(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "c.json"
    cert.certify_robustness(net, net.params, X, "1/1000", 0, path=path)
    assert cert.check_certificate(path, net, net.params, x=X, eps="1/1000", label=0).certified
    r = cert.check_certificate(path, net, net.params, x=X, eps="1/100", label=0)
    assert not r.accepted and "L-inf ball" in r.reason
    r = cert.check_certificate(path, net, net.params, x=X + 1e-3, eps="1/1000", label=0)
    assert not r.accepted and "L-inf ball" in r.reason
    r = cert.check_certificate(path, net, net.params, x=X, eps="1/1000", label=1)
    assert not r.accepted and "for class 0, expected 1" in r.reason
    with pytest.raises(ValueError, match="both x and eps"):
        cert.check_certificate(path, net, net.params, x=X)


def _text_rejected(tmp_path: Path, text: str | bytes) -> str:
    net = _net()
    path = tmp_path / "t.json"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    r = cert.check_certificate(path, net, net.params)
    assert not r.accepted
    return r.reason


def test_missing_file_and_garbage(tmp_path: Path) -> None:
    net = _net()
    r = cert.check_certificate(tmp_path / "none.json", net, net.params)
    assert not r.accepted and "cannot read" in r.reason
    assert "not valid JSON" in _text_rejected(tmp_path, "{not json")
    assert "not UTF-8" in _text_rejected(tmp_path, b'{"a": "\xff"}')


def _valid_text(tmp_path: Path) -> str:
    net = _net()
    path = tmp_path / "c.json"
    cert.certify_robustness(net, net.params, X, "1/1000", 0, path=path)
    return path.read_text()


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    text = _valid_text(tmp_path)
    # the last copy would win in json.loads, the first in another reader: refuse both
    dup = text.replace('"label": 0', '"label": 0, "label": 1', 1)
    assert "the key 'label' appears twice" in _text_rejected(tmp_path, dup)
    nested = text.replace('"lower": [', '"upper": [], "lower": [', 1)
    assert "appears twice" in _text_rejected(tmp_path, nested)


def test_deep_nesting_is_rejected_without_recursion(tmp_path: Path) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    assert "nesting deeper than" in _text_rejected(tmp_path, deep)
    # brackets inside strings are not nesting
    text = _valid_text(tmp_path).replace('"crown"', '"' + "[" * 100 + '"')
    assert "method" in _text_rejected(tmp_path, text)


def test_nan_huge_int_and_size_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    text = _valid_text(tmp_path)
    assert "bare NaN is not allowed" in _text_rejected(tmp_path, text.replace(
        '"label": 0', '"label": NaN', 1))
    assert "5000 digits" in _text_rejected(tmp_path, text.replace(
        '"label": 0', '"label": ' + "1" * 5000, 1))
    # a long integer the JSON reader admits is still no class of the model
    big = _text_rejected(tmp_path, text.replace('"label": 0', '"label": ' + "1" * 60, 1))
    assert "label" in big
    monkeypatch.setattr(cert, "MAX_BYTES", 100)
    assert "exceed the limit of 100" in _text_rejected(tmp_path, text)


def test_bands_end_to_end_certified_accuracy() -> None:
    model = nn.flatten() >> nn.linear(16, 8) >> nn.relu() >> nn.linear(8, 2)
    task = tl.train.classification(nn.build(model, seed=0))
    runner = tl.train.runner(task)
    ds = data.samples.bands()
    tl.train.fit_dataset(task, runner, tl.train.steps(60, tl.optim.adam(0.05), log_every=0), ds)
    images, labels = ds.batch(range(len(ds)))
    # the runner trains in float32; its values are read exactly as binary64 numbers
    trained = {k: tl.tensor(v.numpy().astype(np.float64)) for k, v in runner.params.items()}
    net = nn.build(model, seed=0).with_state(params=trained)
    acc = {}
    for eps in ("0", "1/100", "1/10", "1/2"):
        ok = 0
        for img, lab in zip(images.numpy().astype(np.float64), labels.numpy(), strict=True):
            c = cert.certify_robustness(net, net.params, img, eps, int(lab))
            ok += c.certified
        acc[eps] = ok / labels.shape[0]
    print("certified accuracy by eps:", acc)
    assert acc["0"] == 1.0  # the trained model classifies all six training images
    assert acc["0"] >= acc["1/100"] >= acc["1/10"] >= acc["1/2"]
    assert acc["1/2"] < 1.0  # a radius-1/2 box around a 0/1 image covers both classes
