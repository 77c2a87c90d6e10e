"""Losses against NumPy references (binary64), their reductions, gradients on the tape,
and their shape errors.

Tolerance: references evaluate the same formulas in binary64, possibly summing in another
order; rtol = atol = 1e-12 covers that with room to spare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import torchlean as tl
from torchlean.runtime import autograd as ad
from torchlean.spec import nn
from torchlean.spec.errors import ShapeError

TOL = {"rtol": 1e-12, "atol": 1e-12}
NP = np.ndarray[Any, Any]
pairs = st.tuples(st.integers(1, 4), st.integers(1, 5)).flatmap(
    lambda s: st.tuples(*[hnp.arrays(np.float64, s, elements=st.floats(-30, 30)) for _ in "ab"])
)


def log_softmax(a: NP) -> NP:
    m = a.max(-1, keepdims=True)
    return np.asarray(a - m - np.log(np.exp(a - m).sum(-1, keepdims=True)))


@settings(deadline=None, max_examples=40)
@given(pairs, st.sampled_from([0.5, 1.0, 2.0]))
def test_regression_losses(ab: tuple[NP, NP], delta: float) -> None:
    a, b = ab
    p, t = tl.tensor(a), tl.tensor(b)
    d = a - b
    np.testing.assert_allclose(nn.mse(p, t).item(), (d**2).mean(), **TOL)
    np.testing.assert_allclose(nn.mse(p, t, reduction="sum").item(), (d**2).sum(), **TOL)
    np.testing.assert_allclose(nn.mae(p, t).item(), np.abs(d).mean(), **TOL)
    quad = np.abs(d) <= delta
    hub = np.where(quad, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    np.testing.assert_allclose(nn.huber(p, t, delta=delta).item(), hub.mean(), **TOL)
    np.testing.assert_allclose(
        nn.huber(p, t, delta=delta, reduction="sum").item(), hub.sum(), **TOL
    )


@settings(deadline=None, max_examples=40)
@given(pairs)
def test_bce_with_logits(ab: tuple[NP, NP]) -> None:
    x, raw = ab
    y = (raw > 0).astype(np.float64)
    ref = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    got = nn.bce_with_logits(tl.tensor(x), tl.tensor(y)).item()
    np.testing.assert_allclose(got, ref.mean(), **TOL)


def test_bce_is_stable_for_large_logits() -> None:
    x = tl.tensor([[1000.0], [-1000.0]])
    y = tl.tensor([[0.0], [1.0]])
    assert nn.bce_with_logits(x, y).item() == 1000.0  # log(1 + e^1000) without overflow


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 5), st.integers(2, 6), st.data())
def test_cross_entropies(rows: int, classes: int, data: st.DataObject) -> None:
    logits = data.draw(hnp.arrays(np.float64, (rows, classes), elements=st.floats(-20, 20)))
    labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=rows,
                                         max_size=rows)))
    nll = -log_softmax(logits)[np.arange(rows), labels]
    ce = nn.cross_entropy(tl.tensor(logits), tl.tensor(labels))
    np.testing.assert_allclose(ce.item(), nll.mean(), **TOL)
    total = nn.cross_entropy(tl.tensor(logits), tl.tensor(labels), reduction="sum")
    np.testing.assert_allclose(total.item(), nll.sum(), **TOL)
    one_hot = np.eye(classes)[labels]
    oh = nn.one_hot_cross_entropy(tl.tensor(logits), tl.tensor(one_hot))
    np.testing.assert_allclose(oh.item(), nll.mean(), **TOL)
    # Soft targets: -sum(q * log_softmax) per example.
    q = np.full((rows, classes), 1 / classes)
    soft = nn.one_hot_cross_entropy(tl.tensor(logits), tl.tensor(q)).item()
    np.testing.assert_allclose(soft, -(q * log_softmax(logits)).sum(-1).mean(), **TOL)


def test_single_example_cross_entropy() -> None:
    got = nn.cross_entropy(tl.tensor([0.0, 0.0, 0.0, 0.0]), tl.tensor(2)).item()
    np.testing.assert_allclose(got, np.log(4), **TOL)


def test_losses_differentiate_on_the_tape() -> None:
    a = np.array([[0.5, -1.0], [2.0, 3.0]])
    b = np.array([[1.0, 1.0], [0.0, 3.5]])
    g = ad.grad(lambda p: nn.mse(p, tl.tensor(b)))(tl.tensor(a))
    np.testing.assert_allclose(g.numpy(), 2 * (a - b) / a.size, **TOL)
    labels = np.array([1, 0])
    g = ad.grad(lambda z: nn.cross_entropy(z, tl.tensor(labels)))(tl.tensor(a))
    soft = np.exp(log_softmax(a))
    np.testing.assert_allclose(g.numpy(), (soft - np.eye(2)[labels]) / 2, **TOL)
    y = (b > 0.5).astype(np.float64)
    g = ad.grad(lambda z: nn.bce_with_logits(z, tl.tensor(y)))(tl.tensor(a))
    np.testing.assert_allclose(g.numpy(), (1 / (1 + np.exp(-a)) - y) / a.size, **TOL)


def test_shape_mismatches_name_the_loss_and_both_shapes() -> None:
    p, t = tl.tensor(np.ones((4, 1))), tl.tensor(np.ones((4, 2)))
    for loss, what in ((nn.mse, "prediction"), (nn.mae, "prediction"),
                       (nn.bce_with_logits, "logits")):
        name = loss.__name__
        want = rf"{name}: {what} shape \(4, 1\) and .* \(4, 2\) differ"
        with pytest.raises(ShapeError, match=want):
            loss(p, t)
    with pytest.raises(ShapeError, match=r"huber: prediction shape \(4, 1\) and target shape"):
        nn.huber(p, t)
    with pytest.raises(ShapeError, match=r"one_hot_cross_entropy: logits shape \(4, 1\)"):
        nn.one_hot_cross_entropy(p, t)
    with pytest.raises(
        ShapeError,
        match=r"cross_entropy: logits shape \(4, 2\) needs labels of shape \(4,\) \(one per "
        r"example\), got labels shape \(4, 1\)",
    ):
        nn.cross_entropy(t, p)


def test_bad_labels_and_reductions() -> None:
    logits = tl.tensor(np.zeros((2, 3)))
    with pytest.raises(
        ValueError, match=r"cross_entropy: one_hot: label .*3\.0.* at flat index 1 is not an"
    ):
        nn.cross_entropy(logits, tl.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"label .*0\.5"):
        nn.cross_entropy(logits, tl.tensor([0.5, 1]))
    with pytest.raises(ValueError, match=r"mse: reduction must be 'mean' or 'sum', got 'none'"):
        nn.mse(logits, logits, reduction="none")
    with pytest.raises(TypeError, match=r"mse: target must be a tensor"):
        nn.mse(logits, np.zeros((2, 3)))
