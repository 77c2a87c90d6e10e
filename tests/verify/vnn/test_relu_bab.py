"""ReLU-splitting branch and bound: CROWN with split constraints is sound on the
subdomain's points, relu-split certificates are re-checked exactly (and tampered ones
rejected), and the engine proves a toy property root CROWN cannot."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from exact_nets import chain_forward, relu_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from vnnlib_text import header, prop

from torchlean.spec.errors import ShapeError
from torchlean.verify import bounds
from torchlean.verify.bounds.alpha_crown import relu_chain
from torchlean.verify.vnn.batched import BatchedModel
from torchlean.verify.vnn.engine import verify_instance
from torchlean.verify.vnn.relu_bab import split_choice
from torchlean.verify.vnn.tree_certificate import check_tree_certificate

Arr = np.ndarray[Any, Any]




def _pre_activations(graph: Any, params: Any, x: Arr) -> tuple[Arr, Arr]:
    """Every ReLU's pre-activation (N, W) concatenated, and the outputs (N, m), in
    binary64 from the graph's own affine segments."""
    return chain_forward(relu_chain(graph, params), x)


# -- CROWN with splits ------------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), widths=st.sampled_from([(3, 6, 1), (4, 5, 5, 2),
                                                           (2, 8, 6, 3)]),
       radius=st.floats(0.2, 1.5), beta_iterations=st.sampled_from([0, 5]),
       tune=st.booleans())
def test_crown_with_splits_bounds_every_point_of_the_subdomain(
        seed: int, widths: tuple[int, ...], radius: float, beta_iterations: int,
        tune: bool) -> None:
    graph, params = relu_mlp(widths, seed % 1000)
    m = BatchedModel(graph, params)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1, 1, widths[0])
    lo, hi = centre - radius, centre + radius
    width = sum(w for _, w in m.relu_nodes())
    signs = rng.integers(-1, 2, size=(6, width)).astype(np.int8)
    signs[rng.random((6, width)) < 0.6] = 0  # mostly free neurons: points remain
    C = rng.normal(size=(2, widths[-1]))
    # tuned slopes start from random ones (a parent's, say): any in [0, 1] must do
    start = rng.random((6, 2, width))
    low, zl, zu, _, betas, _, slopes = m.bound_splits(lo, hi, C, signs, beta_iterations,
                                                      alphas=start, tune_alphas=tune)
    assert np.all(betas >= 0) and np.all(betas[np.broadcast_to(signs[:, None] == 0,
                                                               betas.shape)] == 0)
    assert (slopes is not None) == (tune and beta_iterations > 0)
    if slopes is not None:  # on the 2^-16 grid in [0, 1]
        assert np.all((slopes >= 0) & (slopes <= 1))
        assert np.array_equal(slopes * 2**16, np.floor(slopes * 2**16))
    x = rng.uniform(lo, hi, size=(4000, widths[0]))
    x[:8] = np.where(rng.random((8, widths[0])) < 0.5, lo, hi)  # some corners too
    z, y = _pre_activations(graph, params, x)
    vals = y @ C.T
    for i in range(signs.shape[0]):
        inside = np.all((signs[i] == 0) | (signs[i] * z >= 0), axis=1)
        if np.isposinf(low[i]).all():  # claimed empty: no point may meet the signs
            assert not inside.any()
            continue
        # the bounds are outward rounded (sound over the reals); the points' values are
        # binary64 evaluations, off the real values by a few ulps (~1e-15 relative), so
        # a tight bound may sit that far above a computed value: 2^-40 of the magnitude
        # covers that evaluation error, and nothing a wrong bound would hide
        tol = 2.0**-40 * (1.0 + np.abs(vals[inside]).max(initial=0.0))
        assert np.all(vals[inside] >= low[i] - tol)
        ztol = 2.0**-40 * (1.0 + np.abs(z[inside]).max(initial=0.0))
        assert np.all(z[inside] >= zl[i] - ztol) and np.all(z[inside] <= zu[i] + ztol)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_any_nonnegative_betas_keep_the_bounds_sound(seed: int, scale: float) -> None:
    graph, params = relu_mlp((4, 6, 5, 2), seed % 1000)
    batch = 4
    wide = BatchedModel(graph, params).graph_for(batch)  # 4 subdomains of one box
    relus = [n.id for n in wide.nodes if n.op == "relu"]
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(3, 2))
    lo = np.broadcast_to(rng.uniform(-1, 0, 4), (batch, 4))
    hi = lo + 1.0
    splits = {r: rng.integers(-1, 2, size=(batch, 6 if k == 0 else 5))
              for k, r in enumerate(relus)}

    def betas(intervals: Any) -> dict[int, Arr]:
        assert set(intervals) == set(relus)
        return {r: scale * rng.random((batch, 6) + wide.nodes[r].shape[1:])
                for r in relus}

    b, _ = bounds.crown_with_layers(wide, params, lo, hi, C=C, relu_splits=splits,
                                    relu_betas=betas)
    x = rng.uniform(lo[0], hi[0], size=(4000, 4))
    z, y = _pre_activations(graph, params, x)
    signs = np.concatenate([splits[r] for r in relus], axis=1)
    vals = y @ C.T
    for i in range(batch):
        inside = np.all((signs[i] == 0) | (signs[i] * z >= 0), axis=1)
        tol = 2.0**-40 * (1.0 + np.abs(vals).max())  # binary64 evaluation (see above)
        assert np.all(vals[inside] >= b.lower[i] - tol)
        assert np.all(vals[inside] <= b.upper[i] + tol)


def test_bad_betas_are_refused() -> None:
    graph, params = relu_mlp((3, 6, 1), 5)
    relu = next(n.id for n in graph.nodes if n.op == "relu")
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    splits = {relu: np.ones((1, 6))}
    with pytest.raises(ValueError, match="need relu_splits"):
        bounds.crown_with_layers(graph, params, lo, hi,
                                 relu_betas=lambda _: {relu: np.zeros((1, 2, 6))})
    with pytest.raises(ValueError, match="negative"):
        bounds.crown_with_layers(graph, params, lo, hi, relu_splits=splits,
                                 relu_betas=lambda _: {relu: -np.ones((1, 2, 6))})
    with pytest.raises(ShapeError, match="multipliers of shape"):
        bounds.crown_with_layers(graph, params, lo, hi, relu_splits=splits,
                                 relu_betas=lambda _: {relu: np.ones((1, 1, 6))})


def test_bad_known_intervals_are_refused() -> None:
    graph, params = relu_mlp((3, 6, 1), 5)
    relu = next(n.id for n in graph.nodes if n.op == "relu")
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    splits = {relu: np.zeros((1, 6))}
    z = np.zeros((1, 6))
    with pytest.raises(ValueError, match="go with relu_splits"):
        bounds.crown_with_layers(graph, params, lo, hi, relu_intervals={relu: (z, z)})
    with pytest.raises(ValueError, match="lower > upper"):
        bounds.crown_with_layers(graph, params, lo, hi, relu_splits=splits,
                                 relu_intervals={relu: (z + 1, z)})
    with pytest.raises(ShapeError, match="intervals of shape"):
        bounds.crown_with_layers(graph, params, lo, hi, relu_splits=splits,
                                 relu_intervals={relu: (z[:, :5], z[:, :5])})


def test_splits_tighten_the_split_neuron_and_never_drop_points() -> None:
    graph, params = relu_mlp((3, 6, 1), 5)
    m = BatchedModel(graph, params)
    lo, hi = -np.ones(3), np.ones(3)
    root, zl, zu, _, _, _, _ = m.bound_splits(lo, hi, np.eye(1),
                                              np.zeros((1, 6), np.int8))
    j = int(np.flatnonzero((zl[0] < 0) & (zu[0] > 0))[0])
    signs = np.zeros((2, 6), np.int8)
    signs[0, j], signs[1, j] = 1, -1
    _, zl2, zu2, _, _, _, _ = m.bound_splits(lo, hi, np.eye(1), signs)
    assert zl2[0, j] == 0.0 and zu2[0, j] == zu[0, j]
    assert zu2[1, j] == 0.0 and zl2[1, j] == zl[0, j]


def test_bad_splits_are_refused() -> None:
    graph, params = relu_mlp((3, 6, 1), 5)
    relu = next(n.id for n in graph.nodes if n.op == "relu")
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    with pytest.raises(ValueError, match="not a relu node"):
        bounds.crown(graph, params, lo, hi, relu_splits={0: np.zeros((1, 6))})
    with pytest.raises(ShapeError, match="needs signs of shape"):
        bounds.crown(graph, params, lo, hi, relu_splits={relu: np.zeros((1, 5))})
    with pytest.raises(ValueError, match="outside -1, 0, 1"):
        bounds.crown(graph, params, lo, hi, relu_splits={relu: np.full((1, 6), 2)})


def test_split_choice_prefers_the_largest_intercept_loss() -> None:
    signs = np.zeros(3, np.int8)
    zl, zu = np.array([-1.0, -2.0, 1.0]), np.array([1.0, 2.0, 2.0])
    coeff = np.array([[-1.0, -1.0, -5.0]])
    assert split_choice(signs, zl, zu, coeff, [0]) == 1  # 1 * 1 < 1 * 2; neuron 2 stable
    signs[1] = 1
    assert split_choice(signs, zl, zu, coeff, [0]) == 0
    signs[0] = -1
    assert split_choice(signs, zl, zu, coeff, [0]) == -1


# -- the engine and the certificates ----------------------------------------------------
# 20 inputs in [-0.5, 0.5], a 2x10 ReLU net (seed 1): root CROWN bounds Y_0 below by
# about -0.198, sampled points reach 0.267; "Y_0 <= 0.08" is refuted only by splitting
TOY_WIDTHS = (20, 10, 10, 1)


def _toy_prop(d: float) -> Any:
    return prop(header(20, 1, "-0.5", "0.5") + f"(assert (<= Y_0 {d}))")


@pytest.fixture(scope="module")
def toy_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any, Any]:
    graph, params = relu_mlp(TOY_WIDTHS, 1)
    p = _toy_prop(0.08)
    m = BatchedModel(graph, params)
    root = m.bound(-0.5 * np.ones((1, 20)), 0.5 * np.ones((1, 20)), np.eye(1))[0]
    assert root[0, 0] < 0.08  # root CROWN alone cannot prove it
    cert = tmp_path_factory.mktemp("relubab") / "toy.json"
    v = verify_instance((graph, params), p, timeout=60, certificate=cert)
    assert v.status == "holds", v.detail
    assert "ReLU splitting" in v.detail
    return cert, (graph, params), p, json.loads(cert.read_text())


def test_the_toy_holds_with_a_certificate_that_checks(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    case = doc["cases"][0]
    assert case["kind"] == "relu-splits" and len(case["splits"]) >= 2
    assert case["betas"]  # beta multipliers are in use, and checked below
    res = check_tree_certificate(cert, model, p)
    assert res.ok, res.reason
    assert res.leaves == len(case["refuted"])


def test_the_toy_is_violated_above_the_sampled_values() -> None:
    graph, params = relu_mlp(TOY_WIDTHS, 1)
    v = verify_instance((graph, params), _toy_prop(0.3), timeout=60)
    assert v.status == "violated"


def _rejected(cert: Path, doc: dict[str, Any], model: Any, p: Any) -> str:
    out = cert.with_name("tampered.json")
    out.write_text(json.dumps(doc))
    res = check_tree_certificate(out, model, p)
    assert not res.ok
    return res.reason


def test_a_dropped_refutation_is_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    node, _ = bad["cases"][0]["refuted"].pop()
    case = bad["cases"][0]
    case["betas"] = [b for b in case["betas"] if b[0] != node]
    case["slopes"] = [e for e in case.get("slopes", []) if e[0] != node]
    assert "unrefuted" in _rejected(cert, bad, model, p)


def test_a_dropped_split_is_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    bad["cases"][0]["splits"].pop(0)  # the root's split: its children are no nodes
    assert "not an unsplit node" in _rejected(cert, bad, model, p)


def test_swapped_children_are_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    reasons = []
    for k in range(len(doc["cases"][0]["splits"])):
        bad = copy.deepcopy(doc)
        s = bad["cases"][0]["splits"][k]
        s[3], s[4] = s[4], s[3]  # each child now claims the other's sign
        out = cert.with_name("swapped.json")
        out.write_text(json.dumps(bad))
        res = check_tree_certificate(out, model, p)
        if not res.ok:
            reasons.append(res.reason)
    # a swap is harmless only where both signs are refuted anyway; here most are not
    assert len(reasons) >= len(doc["cases"][0]["splits"]) // 2
    assert all("does not exceed" in r for r in reasons)


def test_a_row_of_another_conjunction_is_rejected(toy_cert: Any, tmp_path: Path) -> None:
    graph, params = toy_cert[1]
    # two conjunctions: Y_0 <= 0.08, and Y_0 <= 0.08 again: row 1 belongs to the second
    p = prop(header(20, 1, "-0.5", "0.5") + "(assert (or (and (<= Y_0 0.08)) "
             "(and (<= Y_0 0.08))))")
    cert = tmp_path / "two.json"
    assert verify_instance((graph, params), p, timeout=60, certificate=cert).status == "holds"
    doc = json.loads(cert.read_text())
    assert check_tree_certificate(cert, (graph, params), p).ok
    bad = copy.deepcopy(doc)
    node, rows = bad["cases"][0]["refuted"][0]
    rows[0] = 1
    bad["cases"][0]["betas"] = [b for b in bad["cases"][0]["betas"] if b[0] != node]
    assert "one of its rows" in _rejected(cert, bad, (graph, params), p)


def test_out_of_range_and_repeated_splits_are_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    bad["cases"][0]["splits"][0][2] = 10  # neuron 10 of a 10-neuron layer
    assert "out of range" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    first = bad["cases"][0]["splits"][0]
    child = first[3]
    fresh = 10**6
    bad["cases"][0]["splits"].append([child, first[1], first[2], fresh, fresh + 1])
    # splitting again a neuron split above (the child may already be split: either way)
    assert _rejected(cert, bad, model, p)


def test_tampered_betas_are_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    bad["cases"][0]["betas"][0][4] = "-1/2"
    assert "multiplier >= 0" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    bad["cases"][0]["betas"][0][4] = "1/3"  # not dyadic
    assert "multiplier >= 0" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    beta = bad["cases"][0]["betas"][0]
    beta[3] = next(j for j in range(10) if all(
        s[1:3] != [beta[2], j] for s in bad["cases"][0]["splits"]))  # a neuron never split
    assert "split neuron of that node" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    for beta in bad["cases"][0]["betas"]:
        beta[4] = "1000000/1"  # valid multipliers, but far from useful ones
    assert "does not exceed" in _rejected(cert, bad, model, p)


def test_linear_layers_read_off_the_ops_equal_the_probed_maps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from torchlean.verify.vnn import exact_chain as ec

    graph, params = relu_mlp((7, 5, 4, 3), 11)
    reader, fast = ec._read_affine, []

    def counted(seg: Any, ps: Any) -> Any:
        got = reader(seg, ps)
        fast.append(got is not None)
        return got

    monkeypatch.setattr(ec, "_read_affine", counted)
    read = ec.exact_chain(graph, params)
    assert fast == [True, True, True]  # every layer read off its ops
    monkeypatch.setattr(ec, "_read_affine", lambda seg, ps: None)
    probed = ec.exact_chain(graph, params)
    for (wa, ea), (wb, eb) in zip(read.weights + read.biases, probed.weights + probed.biases,
                                  strict=True):
        assert ea == eb and wa.shape == wb.shape and bool(np.all(wa == wb))


def test_relu_bab_tries_the_relaxed_minimisers_as_counterexamples() -> None:
    import time

    from torchlean.verify.vnn.bab import Problem
    from torchlean.verify.vnn.relu_bab import relu_branch_and_bound

    graph, params = relu_mlp(TOY_WIDTHS, 1)
    m = BatchedModel(graph, params)
    lo, hi = -0.5 * np.ones(20), 0.5 * np.ones(20)
    C = np.eye(1)
    # unsafe: Y_0 <= 0.28, which sampled points reach (Y_0 down to about 0.267)
    problem = Problem(lo, hi, ((0,),), np.array([0.28]))
    tried: list[Arr] = []

    def confirm(x: Arr) -> bool:
        tried.append(x)
        return bool(m.evaluate(x[None])[0, 0] <= 0.28)

    res = relu_branch_and_bound(
        problem, lambda s, known, alphas, live: m.bound_splits(lo, hi, C, s, 5, known), 20,
        deadline=time.monotonic() + 30, evaluate=lambda x: m.evaluate(x) @ C.T,
        confirm=confirm, layers=[10, 10])
    assert res.status == "violated" and res.counterexample is not None
    x = res.counterexample
    assert np.all(lo <= x) and np.all(x <= hi) and m.evaluate(x[None])[0, 0] <= 0.28
    assert any(np.array_equal(x, t) for t in tried)  # only a confirmed point is returned


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_children_reusing_the_parents_intervals_bound_as_if_recomputed(seed: int) -> None:
    graph, params = relu_mlp((4, 6, 5, 5, 2), seed % 1000)
    m = BatchedModel(graph, params)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0, 4)
    hi = lo + 1.0
    C = rng.normal(size=(2, 2))
    parent = np.zeros((1, 16), np.int8)
    _, zl, zu, _, _, _, _ = m.bound_splits(lo, hi, C, parent)
    free = np.flatnonzero((zl[0] < 0) & (zu[0] > 0))
    if free.size == 0:
        return
    j = int(rng.choice(free))
    children = np.repeat(parent, 2, axis=0)
    children[0, j], children[1, j] = 1, -1
    depth = np.full(2, 1 if j < 6 else 2 if j < 11 else 3)
    known = (np.repeat(zl, 2, axis=0), np.repeat(zu, 2, axis=0), depth)
    got = m.bound_splits(lo, hi, C, children, 3, known)
    again = m.bound_splits(lo, hi, C, children, 3)
    # the same computation on the same numbers, up to summation order in the products
    for a, b in zip(got[:3], again[:3], strict=True):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12) or np.array_equal(a, b)


# -- alpha slopes in ReLU splitting -----------------------------------------------------
def _slope_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """The first ReLU layer's final slope array of the first node with slopes."""
    case = doc["cases"][0]
    assert doc["format"] == "torchlean-vnn-tree/2" and case["slopes"]
    arr: dict[str, Any] = case["slopes"][0][1]["final"][0]
    return arr


def _encode(ints: Arr) -> str:
    import base64

    return base64.b64encode(np.asarray(ints, "<u4").tobytes()).decode("ascii")


def test_the_toy_certificate_carries_grid_slopes_for_refuting_nodes(toy_cert: Any) -> None:
    _, _, _, doc = toy_cert
    case = doc["cases"][0]
    named = {node: [r for r in rows if r >= 0] for node, rows in case["refuted"]}
    for node, slopes in case["slopes"]:
        assert node in named
        for k, arr in enumerate(slopes["final"]):
            assert arr["exponent"] == 16 and arr["shape"] == [len(named[node]), 10], k
        assert slopes["inner"] == [None, None]


def test_slopes_outside_the_unit_interval_are_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    arr = _slope_entry(bad)
    ints = np.zeros(arr["shape"], np.int64)
    ints[0, 0] = (1 << 16) + 1  # 1 + 2^-16
    arr["uint32"] = _encode(ints)
    assert "outside [0, 1]" in _rejected(cert, bad, model, p)


def test_slopes_of_the_wrong_shape_are_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    arr = _slope_entry(bad)
    rows, cols = arr["shape"]
    arr["shape"] = [rows, cols - 1]
    arr["uint32"] = _encode(np.zeros((rows, cols - 1), np.int64))
    assert "shape" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    bad["cases"][0]["slopes"][0][1]["final"].pop()  # one ReLU layer's slopes missing
    assert "bad slopes" in _rejected(cert, bad, model, p)


def test_slopes_on_a_node_that_refutes_nothing_or_in_format_1_are_rejected(
        toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    case = bad["cases"][0]
    refuting = {node for node, _ in case["refuted"]}
    other = next(s[0] for s in case["splits"] if s[0] not in refuting)  # an inner node
    case["slopes"].append([other, case["slopes"][0][1]])
    assert "refutes nothing" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    bad["format"] = "torchlean-vnn-tree/1"
    assert "slopes in a" in _rejected(cert, bad, model, p)


def test_useless_slopes_make_the_bound_fail(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    reasons = []
    for value in (0, 1 << 16):  # every unstable neuron's lower line flat, or the identity
        bad = copy.deepcopy(doc)
        for _, slopes in bad["cases"][0]["slopes"]:
            for arr in slopes["final"]:
                arr["uint32"] = _encode(np.full(arr["shape"], value, np.int64))
        out = cert.with_name("flat.json")
        out.write_text(json.dumps(bad))
        res = check_tree_certificate(out, model, p)
        if not res.ok:
            reasons.append(res.reason)
    # the slopes are used: some node's bound needs the tuned ones
    assert reasons and all("does not exceed" in r for r in reasons)


# -- the root's alpha-CROWN intervals as a floor ----------------------------------------
def test_the_toy_certificate_carries_intermediate_root_slopes(toy_cert: Any) -> None:
    _, _, _, doc = toy_cert
    root = doc["cases"][0]["root_slopes"]
    assert root["final"] == [None, None]
    assert root["inner"][0] is None and root["inner"][1][0]["shape"] == [20, 10]


def test_tampered_root_slopes_are_rejected(toy_cert: Any) -> None:
    cert, model, p, doc = toy_cert
    bad = copy.deepcopy(doc)
    arr = bad["cases"][0]["root_slopes"]["inner"][1][0]
    ints = np.zeros(arr["shape"], np.int64)
    ints[3, 4] = (1 << 16) + 1  # 1 + 2^-16
    arr["uint32"] = _encode(ints)
    assert "bad root slopes" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    arr = bad["cases"][0]["root_slopes"]["inner"][1][0]
    arr["shape"] = [20, 9]
    arr["uint32"] = _encode(np.zeros((20, 9), np.int64))
    assert "bad root slopes" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    root = bad["cases"][0]["root_slopes"]
    root["final"] = [{"exponent": 16, "shape": [1, 10], "uint32": _encode(np.zeros((1, 10)))},
                     None]
    assert "final slopes" in _rejected(cert, bad, model, p)
    bad = copy.deepcopy(doc)
    bad["format"] = "torchlean-vnn-tree/1"
    bad["cases"][0].pop("slopes", None)
    assert "slopes in a" in _rejected(cert, bad, model, p)
