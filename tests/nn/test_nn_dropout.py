"""Dropout: reproducible masks from an explicit key, inverted scaling, eval identity, and
the constant hook a runtime uses to feed masks into a compiled graph."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.value import Value

X = tl.tensor(np.ones((64, 32)))


def train(net: Any, key: int, x: Any = X) -> np.ndarray[Any, Any]:
    return np.asarray(net.apply(net.params, x, mode="train", key=key).numpy())


@settings(deadline=None, max_examples=20)
@given(st.integers(0, 2**63 - 1), st.sampled_from([0.1, 0.5, 0.9]))
def test_same_key_same_mask_and_inverted_scale(key: int, p: float) -> None:
    net = nn.build(nn.dropout(p))
    a, b = train(net, key), train(net, key)
    assert np.array_equal(a, b)
    scale = 1 / (1 - p)
    assert set(np.unique(a)) <= {0.0, scale}
    assert np.array_equal(a != 0, nn.dropout_mask(key, "", X.shape, p))


def test_keys_layers_and_shapes_give_independent_masks() -> None:
    net = nn.build(nn.dropout(0.5))
    assert not np.array_equal(train(net, 1), train(net, 2))
    two = nn.build(nn.dropout(0.5) >> nn.dropout(0.5))
    m0 = nn.dropout_mask(3, "0", (64, 32), 0.5)
    m1 = nn.dropout_mask(3, "1", (64, 32), 0.5)
    assert not np.array_equal(m0, m1)
    assert np.array_equal(train(two, 3), np.where(m0 & m1, 4.0, 0.0))


def test_keep_rate_is_one_minus_p() -> None:
    # 2048 Bernoulli(1 - p) draws: the kept fraction has standard deviation
    # sqrt(p (1 - p) / 2048) < 0.011; six of them bound a false failure below 1e-8.
    for p in (0.1, 0.3, 0.5, 0.8):
        kept = nn.dropout_mask(42, "2", (64, 32), p).mean()
        assert abs(kept - (1 - p)) < 6 * math.sqrt(p * (1 - p) / 2048)


def test_mask_is_pinned() -> None:
    # The mask is a pure function of (key, path, shape, p) on every machine; these bits
    # were produced by this implementation.
    got = nn.dropout_mask(7, "2", (3, 4), 0.5).astype(int).tolist()
    assert got == [[1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def test_eval_mode_and_p_zero_are_the_identity() -> None:
    net = nn.build(nn.linear(32, 32) >> nn.dropout(0.5))
    y = net.apply(net.params, X)  # eval: no key needed
    assert np.array_equal(y.numpy(), (X.numpy() @ net.params["0.weight"].numpy().T
                                      + net.params["0.bias"].numpy()))
    zero = nn.build(nn.dropout(0.0))
    assert np.array_equal(zero.apply(zero.params, X, mode="train").numpy(), X.numpy())


def test_train_mode_without_key_names_the_layer() -> None:
    net = nn.build(nn.linear(32, 4) >> nn.relu() >> nn.residual(nn.dropout(0.2)))
    want = r"layer 2\.block \(dropout p=0\.2\): train mode needs a key"
    with pytest.raises(ValueError, match=want):
        net.apply(net.params, X, mode="train")


@pytest.mark.parametrize("key", [-1, 1.0, True, "3"])
def test_bad_keys(key: object) -> None:
    net = nn.build(nn.dropout(0.5))
    with pytest.raises(ValueError, match="key must be a non-negative int"):
        net.apply(net.params, X, mode="train", key=key)


def test_constant_hook_receives_the_mask_by_name() -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []

    def hook(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
        seen.append((name, array.shape))
        return nn.host_constant(like, name, array)

    net = nn.build(nn.linear(32, 8) >> nn.dropout(0.5) >> nn.residual(nn.dropout(0.25)))
    out, _ = net.forward(dict(net.params), X, mode="train", key=5, constant=hook)
    assert seen == [("1.mask", (64, 8)), ("2.block.mask", (64, 8))]
    assert out.shape == (64, 8)
