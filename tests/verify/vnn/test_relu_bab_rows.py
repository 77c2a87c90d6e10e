"""ReLU splitting on large nets: subdomains bound only the rows their root leaves open
(the same bounds on those rows as bounding every row), the float chain the beta search
reads is probed in batches (the same map as probing one basis vector at a time), and a
property with a root-refuted disjunct still holds with a certificate that checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exact_nets import relu_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from vnnlib_text import header, prop

from torchlean import nn
from torchlean.verify.bounds import as_graph
from torchlean.verify.bounds.alpha_crown import SparseMap, relu_chain
from torchlean.verify.vnn.bab import Problem
from torchlean.verify.vnn.batched import BatchedModel
from torchlean.verify.vnn.engine import open_rows, verify_instance
from torchlean.verify.vnn.tree_certificate import check_tree_certificate

Arr = np.ndarray[Any, Any]




def _dense(w: Any) -> Arr:
    if isinstance(w, SparseMap):
        out = np.zeros(w.shape)
        out[w.rows, w.cols] = w.values
        return out
    return np.asarray(w)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), beta_iterations=st.sampled_from([0, 3]),
       picked=st.sampled_from([(0,), (2,), (1, 2), (0, 1, 2)]), tune=st.booleans())
def test_bounding_some_rows_gives_those_rows_the_bounds_of_bounding_all(
        seed: int, beta_iterations: int, picked: tuple[int, ...], tune: bool) -> None:
    """... with the slopes tuned with the betas too (`tune_alphas`), row by row."""
    graph, params = relu_mlp((4, 6, 5, 3), seed % 1000)
    m = BatchedModel(graph, params)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0, 4)
    hi = lo + 1.0
    C = rng.normal(size=(3, 3))
    signs = rng.integers(-1, 2, size=(4, 11)).astype(np.int8)
    signs[:, rng.random(11) < 0.6] = 0
    every = m.bound_splits(lo, hi, C, signs, beta_iterations, tune_alphas=tune)
    some = m.bound_splits(lo, hi, C, signs, beta_iterations, None, picked, tune_alphas=tune)
    tuned = tune and beta_iterations > 0
    assert (some[6] is None) == (every[6] is None) == (not tuned)
    rows = list(picked)
    others = [r for r in range(3) if r not in picked]
    # rows are bounded independently (the beta search too): the same numbers, up to
    # summation order in the products of a smaller C (1e-9 relative)
    assert np.allclose(some[0][:, rows], every[0][:, rows], rtol=1e-9, atol=1e-12)
    assert np.all(np.isneginf(some[0][:, others]))
    for a, b in zip(some[1:3], every[1:3], strict=True):  # intervals: the same
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12)
    for got, want in zip(some[3:], every[3:], strict=True):
        if got is None or want is None:
            continue
        assert np.allclose(got[:, rows], want[:, rows], rtol=1e-9, atol=1e-12)
        assert not np.any(got[:, others])


def test_rows_outside_c_are_refused() -> None:
    graph, params = relu_mlp((3, 4, 2), 0)
    m = BatchedModel(graph, params)
    with pytest.raises(ValueError, match="rows"):
        m.bound_splits(np.zeros(3), np.ones(3), np.eye(2), np.zeros((1, 4), np.int8),
                       0, None, (2,))


def test_the_chain_probed_in_batches_is_the_chain_probed_one_vector_at_a_time() -> None:
    net = nn.build(nn.conv2d(1, 3, 2) >> nn.relu() >> nn.flatten() >> nn.linear(27, 4)
                   >> nn.relu() >> nn.linear(4, 2), seed=3)
    graph = as_graph(net, net.params, (1, 1, 4, 4))
    m = BatchedModel(graph, net.params, max_batch=16)
    got = m.chain()
    assert m.chain() is got  # made once
    want = relu_chain(graph, net.params)
    assert len(got.weights) == len(want.weights) == 3
    for a, b in zip(got.weights, want.weights, strict=True):
        assert np.allclose(_dense(a), _dense(b), rtol=1e-12, atol=0)
    for a, b in zip(got.biases, want.biases, strict=True):
        assert np.allclose(a, b, rtol=1e-12, atol=0)


def test_open_rows_are_the_rows_of_unrefuted_conjunctions() -> None:
    p = Problem(np.zeros(1), np.ones(1), ((0, 1), (2,), (3,)), np.zeros(4))
    assert open_rows(np.array([-1.0, 0.5, -1.0, 0.0]), p) == (2, 3)  # 0 is not above 0
    assert open_rows(np.array([-1.0, -0.5, 1.0, 2.0]), p) == (0, 1)
    assert open_rows(np.array([1.0, -0.5, 1.0, 2.0]), p) == ()


def test_a_root_refuted_disjunct_leaves_the_split_search_and_the_certificate_sound(
        tmp_path: Path) -> None:
    # the toy of test_relu_bab (root CROWN cannot prove Y_0 > 0.08), with a second
    # disjunct the root refutes: the subdomains bound only the first one's row
    net_graph, params = relu_mlp((20, 10, 10, 1), 1)
    p = prop(header(20, 1, "-0.5", "0.5")
             + "(assert (or (and (<= Y_0 0.08)) (and (>= Y_0 1000))))")
    cert = tmp_path / "toy.json"
    v = verify_instance((net_graph, params), p, timeout=60, certificate=cert)
    assert v.status == "holds", v.detail
    assert "ReLU splitting" in v.detail
    res = check_tree_certificate(cert, (net_graph, params), p)
    assert res.ok, res.reason


def test_nets_over_the_beta_limit_split_without_betas(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchlean.verify.vnn import engine

    monkeypatch.setattr(engine, "BETA_MAX_RELUS", 10)  # the toy has 20 ReLUs
    graph, params = relu_mlp((20, 10, 10, 1), 1)
    p = prop(header(20, 1, "-0.5", "0.5") + "(assert (<= Y_0 0.08))")
    cert = tmp_path / "toy.json"
    v = verify_instance((graph, params), p, timeout=60, certificate=cert)
    assert v.status == "holds", v.detail
    doc = json.loads(cert.read_text())
    assert doc["cases"][0]["kind"] == "relu-splits" and not doc["cases"][0]["betas"]
    res = check_tree_certificate(cert, (graph, params), p)
    assert res.ok, res.reason
