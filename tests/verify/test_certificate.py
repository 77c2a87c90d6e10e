"""Robustness certificates: produced, re-checked exactly, tampering rejected, end to end."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean import data
from torchlean.spec import nn
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


def _nudge(doc: dict[str, Any]) -> None:
    q = Fraction(doc["layers"][1]["upper"][2]) - Fraction(1, 10**6)
    doc["layers"][1]["upper"][2] = f"{q.numerator}/{q.denominator}"


def _raise_margin(doc: dict[str, Any]) -> None:
    doc["margin_lower"][0] = "1000"


def _widen_box(doc: dict[str, Any]) -> None:
    doc["box"]["upper"][3] = "2"


TAMPER = {
    "nudged layer bound": (_nudge, "layers\\[1\\]\\[2\\]"),
    "claimed margin too high": (_raise_margin, "margin_lower\\[0\\]"),
    "box widened": (_widen_box, "does not contain"),
    "malformed number": (lambda d: d["layers"][0]["lower"].__setitem__(0, "0.5"), "rational"),
    "zero denominator": (lambda d: d["box"]["lower"].__setitem__(0, "1/0"), "zero denominator"),
    "missing field": (lambda d: d.pop("layers"), "missing field 'layers'"),
    "wrong list length": (lambda d: d["layers"][0]["upper"].pop(), "list of 8"),
    "fingerprint": (lambda d: d.__setitem__("fingerprint", "0" * 64), "fingerprint"),
    "certified flag": (lambda d: d.__setitem__("certified", False), "certified"),
    "not an object": (lambda d: d["layers"].__setitem__(0, 3), "expected an object"),
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


def test_unsupported_op_is_rejected(tmp_path: Path) -> None:
    net = nn.build(nn.linear(3, 4) >> nn.tanh() >> nn.linear(4, 2), seed=0)
    path = tmp_path / "c.json"
    cert.certify_robustness(net, net.params, np.zeros(3), "1/100", 0, path=path)
    r = cert.check_certificate(path, net, net.params)
    assert not r.accepted and "tanh" in r.reason


def test_missing_file_and_garbage(tmp_path: Path) -> None:
    net = _net()
    assert not cert.check_certificate(tmp_path / "none.json", net, net.params).accepted
    (tmp_path / "g.json").write_text("{not json")
    assert not cert.check_certificate(tmp_path / "g.json", net, net.params).accepted


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
