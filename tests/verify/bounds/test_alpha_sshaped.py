"""alpha-CROWN for S-shaped activations (tanh, sigmoid, erf): optimised tangent points.

Soundness is checked without tolerance: every line `tangent_lines` returns is checked
valid over its whole interval at 60 significant digits (on each piece of known
curvature, f minus a line has its extremum where f' equals the slope, found in closed
form, or at the piece's ends), and network bounds must contain an mpmath interval
evaluation (120 bits) of the network at sampled points and the box corners.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean import nn
from torchlean.verify import bounds
from torchlean.verify.bounds.alpha_crown import (
    _lines_bound_and_grad,
    _Relu,
    _Tangents,
    activation_chain,
    optimize_lines,
)
from torchlean.verify.bounds.functions import SMOOTH
from torchlean.verify.bounds.relaxations import tangent_family, tangent_lines

Arr = np.ndarray[Any, Any]
S_OPS = ("tanh", "sigmoid", "erf")
_ACT = {"tanh": nn.tanh, "sigmoid": nn.sigmoid, "relu": nn.relu}


# -- f, and where f' = a, at high precision --------------------------------------------
_F = {"tanh": mpmath.tanh, "sigmoid": lambda z: 1 / (1 + mpmath.exp(-z)), "erf": mpmath.erf,
      "exp": mpmath.exp, "expm1": mpmath.expm1,
      "softplus": lambda z: mpmath.log(1 + mpmath.exp(z)), "square": lambda z: z * z,
      "log": mpmath.log, "log1p": mpmath.log1p, "sqrt": mpmath.sqrt}
# where each function is defined: the lowest lower end drawn
_FROM = {"log": 1e-3, "sqrt": 1e-3, "log1p": -0.999}


def _where_slope(name: str, a: Any) -> list[Any]:
    """Every real z with f'(z) = a (closed forms)."""
    if name == "tanh":
        z = mpmath.atanh(mpmath.sqrt(1 - a)) if 0 < a < 1 else (0 if a == 1 else None)
        return [] if z is None else [z, -z]
    if name == "sigmoid":
        if not 0 < a <= mpmath.mpf(1) / 4:
            return []
        s = (1 + mpmath.sqrt(1 - 4 * a)) / 2
        z = mpmath.log(s / (1 - s)) if s < 1 else None
        return [] if z is None else [z, -z]
    if name == "erf":
        peak = 2 / mpmath.sqrt(mpmath.pi)
        z = mpmath.sqrt(mpmath.log(peak / a)) if 0 < a <= peak else None
        return [] if z is None else [z, -z]
    if name == "square":
        return [a / 2]
    if a <= 0:
        return []
    if name in ("exp", "expm1"):
        return [mpmath.log(a)]
    if name == "softplus":
        return [mpmath.log(a / (1 - a))] if a < 1 else []
    return [{"log": 1 / a, "log1p": 1 / a - 1, "sqrt": 1 / (4 * a * a)}[name]]


def _extremes(name: str, lo: float, hi: float, a: float, b: float) -> tuple[Any, Any]:
    """min and max over [lo, hi] of the smooth f(z) - (a z + b), at 60 digits: at the
    ends or where its derivative f'(z) - a vanishes."""
    with mpmath.workdps(60):
        cands = [mpmath.mpf(lo), mpmath.mpf(hi)]
        cands += [z for z in _where_slope(name, mpmath.mpf(a)) if lo <= z <= hi]
        vals = [_F[name](z) - (mpmath.mpf(a) * z + mpmath.mpf(b)) for z in cands]
        return min(vals), max(vals)


finite = st.floats(-8.0, 8.0, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(_F)), st.floats(0.0, 1.0), st.floats(0.0, 10.0), finite,
       finite)
def test_every_tangent_line_is_valid_over_its_interval(name: str, at: float, width: float,
                                                       d_l: float, d_u: float) -> None:
    start = _FROM.get(name, -8.0)
    lo = start + at * (8.0 - start)
    hi = lo + width
    f = SMOOTH[name]
    lo_a, hi_a = np.array([[lo]]), np.array([[hi]])
    a_l, b_l, a_u, b_u = (v[0, 0, 0] for v in tangent_lines(
        f, lo_a, hi_a, np.array([[[d_l]]]), np.array([[[d_u]]])))
    assert _extremes(name, lo, hi, a_l, b_l)[0] >= 0  # f >= lower line
    assert _extremes(name, lo, hi, a_u, b_u)[1] <= 0  # f <= upper line


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(_F)), st.floats(0.0, 1.0), st.floats(1e-3, 10.0))
def test_lines_at_the_ends_of_the_family_ranges_stay_tight(name: str, at: float,
                                                           width: float) -> None:
    # at a range's end the tangent still touches f (within rounding): the ranges are
    # not needlessly narrow, and the rigorous intercept loses only ulps there
    start = _FROM.get(name, -8.0)
    lo = start + at * (8.0 - start)
    hi = lo + width
    f = SMOOTH[name]
    fam = tangent_family(f, np.array([[lo]]), np.array([[hi]]))
    scale = max(1.0, abs(float(f.value(np.array(hi)))), abs(float(f.value(np.array(lo)))))
    for side, (ends, opt) in enumerate((((fam.lo_l, fam.hi_l, fam.init_l), fam.opt_l),
                                        ((fam.lo_u, fam.hi_u, fam.init_u), fam.opt_u))):
        if not opt[0, 0]:
            continue
        for d in ends:
            pts = (d[:, None], fam.init_u[:, None]) if side == 0 else \
                (fam.init_l[:, None], d[:, None])
            a_l, b_l, a_u, b_u = (v[0, 0, 0] for v in tangent_lines(
                f, np.array([[lo]]), np.array([[hi]]), *pts, fam))
            gap = _extremes(name, lo, hi, a_l, b_l)[0] if side == 0 else \
                -_extremes(name, lo, hi, a_u, b_u)[1]
            # 1e-12 relative to f's size: dozens of float64 roundings, far below a
            # relaxation's gap
            assert gap <= 1e-12 * scale


def _net(ops: tuple[str, ...], widths: tuple[int, ...], seed: int) -> Any:
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        layers.append(nn.linear(a, b))
        if i < len(ops):
            layers.append(_ACT[ops[i]]())
    return nn.build(nn.sequential(*layers), seed=seed)


def _interval_outputs(net: Any, ops: tuple[str, ...], xs: Arr) -> list[list[Any]]:
    """mpmath interval enclosures (120 bits) of the network's outputs at each point."""
    names = sorted({k.split(".")[0] for k in net.params}, key=int)
    ws = [net.params[f"{n}.weight"].numpy() for n in names]
    bs = [net.params[f"{n}.bias"].numpy() for n in names]
    iv = mpmath.iv
    out = []
    with mpmath.workprec(120):
        iv.prec = 120
        for x in xs:
            h = [iv.mpf(float(v)) for v in x]
            for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
                h = [sum((iv.mpf(float(w[i, j])) * h[j] for j in range(len(h))),
                         iv.mpf(float(b[i]))) for i in range(w.shape[0])]
                if k < len(ops):
                    op = ops[k]
                    if op == "tanh":  # 1 - 2 / (exp(2 v) + 1), v once: rigorous
                        h = [1 - 2 / (iv.exp(2 * v) + 1) for v in h]
                    elif op == "sigmoid":
                        h = [1 / (1 + iv.exp(-v)) for v in h]
                    else:
                        h = [iv.mpf([max(v.a, 0), max(v.b, 0)]) for v in h]
            out.append(h)
    return out


def _check_contains(b: Any, net: Any, ops: tuple[str, ...], lo: Arr, hi: Arr,
                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    for r in range(lo.shape[0]):
        corners = [np.where(np.array(m, bool), hi[r], lo[r])
                   for m in itertools.islice(itertools.product((0, 1), repeat=lo.shape[1]), 4)]
        pts = np.array(corners + list(rng.uniform(lo[r], hi[r], size=(4, lo.shape[1]))))
        for y in _interval_outputs(net, ops, pts):
            for i, v in enumerate(y):
                assert b.lower[r, i] <= v.a and v.b <= b.upper[r, i]


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([("tanh", "tanh"), ("sigmoid", "sigmoid"),
                                                ("tanh", "relu"), ("relu", "sigmoid")]),
       st.floats(0.05, 0.8))
def test_alpha_bounds_contain_interval_evaluations_and_are_never_looser_than_crown(
        seed: int, ops: tuple[str, ...], eps: float) -> None:
    net = _net(ops, (3, 8, 8, 2), seed)
    x = np.random.default_rng(seed).uniform(-1, 1, size=(2, 3))
    lo, hi = x - eps, x + eps
    a = bounds.alpha_crown(net, net.params, lo, hi, iterations=8)
    assert a.method == "alpha-crown"
    _check_contains(a, net, ops, lo, hi, seed)
    c = bounds.crown(net, net.params, lo, hi)
    # intersected with plain CROWN: never looser, exactly (tolerance 0)
    assert np.all(a.lower >= c.lower) and np.all(a.upper <= c.upper)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([("tanh", "tanh"), ("sigmoid", "tanh"),
                                                ("tanh", "relu"), ("relu", "sigmoid")]),
       st.floats(0.01, 2.0))
def test_alpha_bounds_contain_interval_evaluations_big_run(
        seed: int, ops: tuple[str, ...], eps: float) -> None:
    net = _net(ops, (3, 10, 10, 3), seed)
    x = np.random.default_rng(seed).uniform(-2, 2, size=(3, 3))
    lo, hi = x - eps, x + eps
    a = bounds.alpha_crown(net, net.params, lo, hi)
    _check_contains(a, net, ops, lo, hi, seed)
    c = bounds.crown(net, net.params, lo, hi)
    assert np.all(a.lower >= c.lower) and np.all(a.upper <= c.upper)


def _erf_enclosure(v: Any) -> Any:
    # erf rises; mpmath's erf at 120 bits is within a few 1e-36 of the real value, so
    # widening each end by 1e-30 encloses it
    return mpmath.iv.mpf([mpmath.erf(v.a) - 1e-30, mpmath.erf(v.b) + 1e-30])


_ENCLOSE: dict[str, Callable[[Any], Any]] = {
    "erf": _erf_enclosure, "exp": lambda v: mpmath.iv.exp(v),
    "softplus": lambda v: mpmath.iv.log(1 + mpmath.iv.exp(v)), "square": lambda v: v**2}


@pytest.mark.parametrize("op", sorted(_ENCLOSE))
def test_other_tangent_family_activations_get_sound_alpha_bounds(op: str) -> None:
    g_net = nn.build(nn.sequential(nn.linear(2, 6), nn.tanh(), nn.linear(6, 2)), seed=3)
    graph = bounds.as_graph(g_net, g_net.params, (2, 2))
    # swap the tanh node for `op`: the chain, the family and the sound pass take any
    # activation with a tangent family
    nodes = tuple(n if n.op != "tanh" else type(n)(n.id, op, n.args, n.attrs, n.shape)
                  for n in graph.nodes)
    graph = type(graph)(graph.field, nodes, graph.outputs)
    lo, hi = np.array([[-0.5, 0.2], [0.1, -0.9]]), np.array([[0.4, 0.9], [0.6, -0.1]])
    a = bounds.alpha_crown(graph, g_net.params, lo, hi, iterations=8)
    c = bounds.crown(graph, g_net.params, lo, hi)
    assert a.method == "alpha-crown"
    assert np.all(a.lower >= c.lower) and np.all(a.upper <= c.upper)
    w = [g_net.params[k].numpy() for k in ("0.weight", "0.bias", "2.weight", "2.bias")]
    rng = np.random.default_rng(0)
    with mpmath.workprec(120):
        iv = mpmath.iv
        iv.prec = 120
        for r in range(2):
            for x in rng.uniform(lo[r], hi[r], size=(6, 2)):
                h = [iv.mpf(float(w[1][i])) + sum(iv.mpf(float(w[0][i, j])) * iv.mpf(
                    float(x[j])) for j in range(2)) for i in range(6)]
                h = [_ENCLOSE[op](v) for v in h]
                for i in range(2):
                    y = iv.mpf(float(w[3][i])) + sum(iv.mpf(float(w[2][i, j])) * h[j]
                                                     for j in range(6))
                    assert a.lower[r, i] <= y.a and y.b <= a.upper[r, i]


def test_alpha_tightens_a_tanh_net() -> None:
    net = _net(("tanh", "tanh", "tanh"), (5, 30, 30, 30, 5), 0)
    x = np.random.default_rng(0).uniform(-1, 1, size=(10, 5))
    lo, hi = x - 0.05, x + 0.05
    a = bounds.alpha_crown(net, net.params, lo, hi)
    c = bounds.crown(net, net.params, lo, hi)
    # CROWN's tanh lines at fixed tangent points are not optimal for every spec row:
    # the optimised ones narrow the mean width (by about 1.5% on this net)
    assert float(np.mean(a.width)) < 0.995 * float(np.mean(c.width))


def _setup(ops: tuple[str, ...], seed: int) -> tuple[Any, ...]:
    net = _net(ops, (4, 10, 10, 3), seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 4))
    lo, hi = x - 0.3, x + 0.3
    spec = np.broadcast_to(np.eye(3), (3, 3, 3)).copy()
    _, pre = bounds.crown_with_layers(net, net.params, lo, hi, C=spec)
    g = bounds.as_graph(net, net.params, (3, 4))
    chain = activation_chain(g, net.params)
    flat = [tuple(v.reshape(3, -1) for v in pre[g.nodes[r].args[0]]) for r in chain.relus]
    layers = [_Relu(a, b, np.float64) if op == "relu"
              else _Tangents(op, tangent_family(SMOOTH[op], a, b), np.float64)
              for op, (a, b) in zip(ops, flat, strict=True)]
    return net, chain, lo, hi, spec, flat, layers


@pytest.mark.parametrize("ops", [("tanh", "tanh"), ("sigmoid", "relu")])
def test_float_chain_bound_is_crown_at_plain_crowns_lines(ops: tuple[str, ...]) -> None:
    net, chain, lo, hi, spec, _, layers = _setup(ops, 1)
    params = [layer.init(3) for layer in layers]
    value, _ = _lines_bound_and_grad(chain, layers, params, spec, 0.5 * (lo + hi),
                                     0.5 * (hi - lo))
    sound = bounds.crown(net, net.params, lo, hi, C=spec).lower
    # the same lines up to the float model of f (1e-15) and the sound pass's outward
    # rounding: equal within 1e-9 relative to the O(1) magnitudes involved
    np.testing.assert_allclose(value, sound, atol=1e-9)


def test_gradient_matches_central_differences() -> None:
    _, chain, lo, hi, spec, _, layers = _setup(("tanh", "sigmoid"), 4)
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    params = [layer.init(3) for layer in layers]
    _, grads = _lines_bound_and_grad(chain, layers, params, spec, mid, rad)
    checked = 0
    for k, layer in enumerate(layers):
        assert isinstance(layer, _Tangents)
        for side, mask in enumerate((layer.opt_l, layer.opt_u)):
            where = np.argwhere(np.broadcast_to(mask, params[k][side].shape))
            for b, r, n in where[:6]:
                if grads[k][side][b, r, n] == 0:
                    continue
                h = 1e-6
                vals = []
                for sign in (1, -1):
                    p = [[q.copy() for q in ps] for ps in params]
                    p[k][side][b, r, n] += sign * h
                    vals.append(_lines_bound_and_grad(chain, layers, p, spec, mid, rad)[0])
                fd = (vals[0][b, r] - vals[1][b, r]) / (2 * h)
                # smooth in d away from kinks of |.|: central differences agree to
                # O(h^2) plus rounding (1e-10 / 1e-6), 1e-5 is ample
                assert fd == pytest.approx(grads[k][side][b, r, n], abs=1e-5)
                checked += 1
    assert checked > 0


def test_optimised_points_reproduce_the_float_bound_in_the_sound_pass() -> None:
    net, chain, lo, hi, spec, flat, _ = _setup(("tanh", "tanh"), 2)
    both = np.concatenate([spec, -spec], axis=1)
    got = optimize_lines(chain, flat, both, lo, hi, iterations=10)
    g = bounds.as_graph(net, net.params, (3, 4))
    b, _ = bounds.crown_with_layers(net, net.params, lo, hi, C=spec)
    # the sound pass with these tangent points (rows: spec then -spec)
    from torchlean.verify.bounds.api import _final, _intermediate
    from torchlean.verify.bounds.problem import spec_matrix
    bw, _ = _intermediate(g, net.params, lo, hi, True)
    bw.row_points = {r: p for r, p in zip(chain.relus, got, strict=True)}
    tuned = _final(bw, g, spec_matrix(spec, g, 3), "alpha-crown")
    layers = [_Tangents("tanh", tangent_family(SMOOTH["tanh"], a, c), np.float64)
              for a, c in flat]
    for layer in layers:
        layer.init(6)  # the per-row arrays; the parameters are the optimiser's
    params = [[p[0], p[1]] for p in got]
    value, _ = _lines_bound_and_grad(chain, layers, params, both, 0.5 * (lo + hi),
                                     0.5 * (hi - lo))
    # the sound pass with the same lines: equal up to rounding (1e-9), and no looser
    # than plain CROWN's bound by more than that
    np.testing.assert_allclose(tuned.lower, value[:, :3], atol=1e-9)
    np.testing.assert_allclose(tuned.upper, -value[:, 3:], atol=1e-9)
    assert np.all(tuned.lower >= b.lower - 1e-9) and np.all(tuned.upper <= b.upper + 1e-9)


def test_intermediate_optimisation_in_chunks_gives_the_same_points(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the module (the package's `alpha_crown` name is the function)
    ac = importlib.import_module("torchlean.verify.bounds.alpha_crown")
    _, chain, lo, hi, _, flat, _ = _setup(("tanh", "sigmoid"), 6)
    whole = ac.optimize_intermediate(chain, 1, flat[:1], lo, hi, iterations=5)
    monkeypatch.setattr(ac, "_CHUNK", 2 * 10 * 4)  # 4 pairs per chunk, 30 pairs in all
    parts = ac.optimize_intermediate(chain, 1, flat[:1], lo, hi, iterations=5)
    assert whole is not None and parts is not None
    for a, b in zip(whole, parts, strict=True):
        # every pair is its own problem (elementwise Adam, best kept per row): the same
        # floats whichever pairs share a chunk
        np.testing.assert_array_equal(a, b)


def test_slopes_are_returned_for_relu_chains_only() -> None:
    # the verdict engine certifies with the returned slopes alone: a chain whose bound
    # also rests on tangent points returns none (the engine then keeps plain CROWN)
    from torchlean.verify.bounds.api import alpha_crown_with_slopes
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 3))
    for ops, some in ((("relu", "relu"), True), (("tanh", "relu"), False)):
        net = _net(ops, (3, 8, 8, 2), 1)
        res, slopes = alpha_crown_with_slopes(net, net.params, x - 0.5, x + 0.5,
                                              iterations=3)
        assert res.method == "alpha-crown"
        assert bool(slopes) == some
