"""verify.worst_order: the adversarial executions are what they claim (a left fold of a
permutation; a point of the box), they stay within the proven bounds, they err more than
random sampling does, and bad input is refused."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime.graph import trace
from torchlean.spec import nn
from torchlean.verify.rounding import error_bound, error_bound_at, observed_error
from torchlean.verify.rounding.worst_order import (
    DenseLayer,
    adversarial_forward,
    adversarial_input,
    greedy_fold,
)

f32 = np.float32


def _net(sizes: list[int], seed: int) -> tuple[object, dict[str, np.ndarray], list[DenseLayer]]:
    layers: list[object] = []
    for i in range(len(sizes) - 1):
        layers += [nn.linear(sizes[i], sizes[i + 1])] + ([nn.relu()] if i < len(sizes) - 2
                                                         else [])
    net = nn.build(nn.sequential(*layers), seed=seed, dtype="ieee32exec")
    params = {k: v.numpy().astype(f32) for k, v in net.params.items()}  # type: ignore[attr-defined]
    dense = [DenseLayer(params[f"{2 * i}.weight"], params[f"{2 * i}.bias"], i < len(sizes) - 2)
             for i in range(len(sizes) - 1)]
    return net, params, dense


def _graph(net: object, n: int) -> object:
    return trace(lambda p, x: net.forward(p, x)[0], {"x": (n,)},  # type: ignore[attr-defined]
                 {k: v.shape for k, v in net.params.items()},  # type: ignore[attr-defined]
                 field="ieee32exec")


def _exact(dense: list[DenseLayer], x: np.ndarray) -> list[Fraction]:
    h = [Fraction(float(v)) for v in x]
    for layer in dense:
        z = [sum((Fraction(float(w)) * v for w, v in zip(row, h, strict=True)), Fraction(0))
             + Fraction(float(b)) for row, b in zip(layer.weight, layer.bias, strict=True)]
        h = [max(v, Fraction(0)) for v in z] if layer.relu else z
    return h


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 5), st.integers(1, 40), st.integers(0, 10**6))
def test_greedy_fold_is_a_left_fold_of_a_permutation(m, n, seed):
    rng = np.random.default_rng(seed)
    terms = (rng.normal(size=(m, n)) * 2.0 ** rng.integers(-30, 30, size=(m, n))).astype(f32)
    direction = rng.choice([-1.0, 1.0], size=m)
    sums, order = greedy_fold(terms, direction)
    for i in range(m):
        assert sorted(order[i]) == list(range(n))
        replay = np.cumsum(terms[i, order[i]], dtype=f32)[-1]  # cumsum is a left fold
        assert replay.tobytes() == sums[i].tobytes()


@settings(deadline=None, max_examples=25)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=3), st.integers(0, 10**6),
       st.sampled_from([2.0**-20, 0.01, 1.0]))
def test_adversarial_executions_stay_within_the_bounds(sizes, seed, radius):
    net, params, dense = _net(sizes, seed)
    c = np.random.default_rng(seed).normal(size=sizes[0]).astype(f32)
    lo, hi = (c - f32(radius)).astype(f32), (c + f32(radius)).astype(f32)
    box32 = next(iter(error_bound(net, params, (lo, hi), attribute=False).bounds.values()))
    graph = _graph(net, sizes[0])
    for k in range(sizes[-1]):
        for sign in (1, -1):
            # ieee32exec: the executor's own error at the adversarial point of the box
            xa = adversarial_input(dense, lo, hi, k, sign, candidates=8)
            assert np.all((lo <= xa) & (xa <= hi))
            obs = next(iter(observed_error(graph, params, [{"x": xa.astype(np.float64)}])
                            .values()))
            assert np.all(obs <= box32)  # no tolerance: exact error vs proven bound
            # any order: the greedy-order execution at the centre
            any_rep = error_bound_at(net, params, c, "float32_any_order", attribute=False)
            bound = next(iter(any_rep.bounds.values()))
            out = adversarial_forward(dense, c, k, sign)
            exact = _exact(dense, c)
            for j in range(sizes[-1]):
                assert abs(Fraction(float(out[j])) - exact[j]) <= Fraction(float(bound[j]))


def test_adversaries_err_more_than_random_sampling():
    # They bite: on a fixed net, the steered executions beat 50 random points / BLAS order.
    sizes = [48, 24, 1]
    net, params, dense = _net(sizes, 3)
    rng = np.random.default_rng(3)
    c = rng.random(sizes[0]).astype(f32)
    lo, hi = (c - f32(0.01)).astype(f32), (c + f32(0.01)).astype(f32)
    graph = _graph(net, sizes[0])
    pts = [{"x": (lo + (hi - lo) * rng.random(sizes[0])).astype(f32).astype(np.float64)}
           for _ in range(50)]
    random_worst = float(next(iter(observed_error(graph, params, pts).values()))[0])
    steered = max(float(next(iter(observed_error(
        graph, params, [{"x": adversarial_input(dense, lo, hi, 0, s).astype(np.float64)}])
        .values()))[0]) for s in (1, -1))
    assert steered > 2 * random_worst, (steered, random_worst)
    exact = float(_exact(dense, c)[0])
    h = c
    for layer in dense:  # NumPy's own order
        h = layer.weight @ h + layer.bias
        h = np.maximum(h, f32(0)) if layer.relu else h
    native = abs(float(h[0]) - exact)
    greedy = max(abs(float(adversarial_forward(dense, c, 0, s)[0]) - exact) for s in (1, -1))
    assert greedy > 2 * native, (greedy, native)


def test_bad_input_is_refused():
    _, _, dense = _net([3, 2], 0)
    lo, hi = np.zeros(3, f32), np.ones(3, f32)
    with pytest.raises(ValueError, match="terms"):
        greedy_fold(np.zeros((2, 3), f32), np.ones(3))
    with pytest.raises(ValueError, match="sign"):
        adversarial_forward(dense, lo, 0, 0)
    with pytest.raises(ValueError, match="output 2"):
        adversarial_forward(dense, lo, 2, 1)
    with pytest.raises(ValueError, match="lo <= hi"):
        adversarial_input(dense, hi, lo, 0, 1)
    with pytest.raises(ValueError, match="candidates"):
        adversarial_input(dense, lo, hi, 0, 1, candidates=2)
    with pytest.raises(ValueError, match="the point has 4 coordinates, layer 0 takes 3"):
        adversarial_forward(dense, np.zeros(4, f32), 0, 1)
    with pytest.raises(ValueError, match="the point has 2 coordinates"):
        adversarial_input(dense, lo[:2], hi[:2], 0, 1)
    unchained = [dense[0], DenseLayer(np.zeros((2, 3), f32), np.zeros(2, f32), False)]
    with pytest.raises(ValueError, match="layer 1 takes 3 inputs but layer 0 gives 2"):
        adversarial_forward(unchained, lo, 0, 1)
    with pytest.raises(ValueError, match=r"weight \(2, 3\) and bias \(3,\)"):
        DenseLayer(np.zeros((2, 3), f32), np.zeros(3, f32), False)
