"""Bad input gets a typed error naming the layer (by its path in the model) and the value:
at construction (ValueError), at composition and at run time (ShapeError)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.spec import nn
from torchlean.spec.errors import FieldMismatchError, ShapeError

BAD_CONSTRUCTION: list[tuple[Callable[[], Any], str]] = [
    (
        lambda: nn.linear(0, 8),
        r"linear\(in_features=0, out_features=8\): in_features must be a positive int, got 0",
    ),
    (lambda: nn.linear(2, -1), r"linear\(in_features=2, out_features=-1\): out_features must be"),
    (lambda: nn.linear(2.0, 3), r"in_features must be a positive int, got 2\.0"),
    (lambda: nn.linear(True, 3), r"in_features must be a positive int, got True"),
    (lambda: nn.linear(2, 3, bias=1), r"bias must be a bool"),
    (lambda: nn.dropout(1.0), r"dropout\(p=1\.0\): p must be in \[0, 1\), got 1\.0"),
    (lambda: nn.dropout(-0.1), r"dropout\(p=-0\.1\): p must be in \[0, 1\)"),
    (lambda: nn.dropout(float("nan")), r"dropout\(p=nan\): p must be finite"),
    (lambda: nn.dropout("0.5"), r"p must be a real number"),
    (lambda: nn.layer_norm(0), r"layer_norm\(n=0, eps=1e-05\): n must be a positive int"),
    (lambda: nn.layer_norm(4, eps=0.0), r"layer_norm\(n=4, eps=0\.0\): eps must be positive"),
    (lambda: nn.batch_norm(-3), r"batch_norm\(n=-3, .*\): n must be a positive int"),
    (lambda: nn.batch_norm(3, momentum=1.5), r"momentum must be in \[0, 1\], got 1\.5"),
    (lambda: nn.batch_norm(3, eps=-1e-5), r"eps must be positive"),
    (lambda: nn.leaky_relu(float("inf")), r"leaky_relu\(negative_slope=inf\): negative_slope"),
    (lambda: nn.softmax(axis=1.5), r"softmax\(axis=1\.5\): axis must be an int"),
    (lambda: nn.reshape(2, 0), r"reshape\(2, 0\): dim 1 must be a positive int, got 0"),
    (lambda: nn.reshape(-1, 4), r"dim 0 must be a positive int, got -1"),
    (lambda: nn.reshape(), r"reshape\(\): needs at least one dim"),
    (lambda: nn.sequential(), r"sequential: needs at least one layer"),
    (lambda: nn.huber(tl.tensor([1.0]), tl.tensor([1.0]), delta=0), r"delta must be positive"),
]


@pytest.mark.parametrize(("make", "message"), BAD_CONSTRUCTION)
def test_bad_hyperparameters(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_non_layers_are_type_errors() -> None:
    with pytest.raises(TypeError, match=r"sequential: argument 1 is not a layer"):
        nn.sequential(nn.linear(2, 2), "relu")
    with pytest.raises(TypeError, match=r"residual: block must be a layer"):
        nn.residual(3)
    with pytest.raises(TypeError, match=r"not a layer"):
        nn.linear(2, 2) >> np.eye(2)


def test_composition_checks_known_widths() -> None:
    with pytest.raises(
        ShapeError,
        match=r"sequential: layer 2 \(linear 7->1\) expects inputs \(\.\.\., 7\) but layer 1 "
        r"\(relu\) gives \(\.\.\., 8\)",
    ):
        nn.sequential(nn.linear(2, 8), nn.relu(), nn.linear(7, 1))
    hidden = 8
    with pytest.raises(ShapeError, match=r"layer 1 \(linear 9->1\) expects inputs \(\.\.\., 9\)"):
        nn.linear(2, hidden) >> nn.linear(hidden + 1, 1)
    with pytest.raises(ShapeError, match=r"residual: the block \(linear 8->4\) maps"):
        nn.residual(nn.linear(8, 4))
    with pytest.raises(ShapeError, match=r"layer 1 \(layer_norm 4\) expects inputs"):
        nn.reshape(2, 3) >> nn.layer_norm(4)


def run(model: Any, x: Any, **kw: Any) -> Any:
    net = nn.build(model)
    return net.apply(net.params, tl.tensor(x), **kw)


RUNTIME: list[tuple[Any, Any, str]] = [
    (nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 1), np.ones((4, 7)),
     r"layer 0 \(linear 2->8\): expected input \(\.\.\., 2\), got \(4, 7\)"),
    (nn.flatten() >> nn.linear(6, 1), np.ones((4, 2, 2)),
     r"layer 1 \(linear 6->1\): expected input \(\.\.\., 6\), got \(4, 4\)"),
    (nn.linear(3, 3), np.float64(1.0),
     r"the model \(linear 3->3\): expected input \(\.\.\., 3\), got \(\)"),
    (nn.sequential(nn.relu(), nn.residual(nn.layer_norm(5))), np.ones((2, 4)),
     r"layer 1\.block \(layer_norm 5\): expected input \(\.\.\., 5\), got \(2, 4\)"),
    (nn.batch_norm(3), np.ones((2, 2, 3)),
     r"the model \(batch_norm 3\): expected input \(batch, 3\), got \(2, 2, 3\)"),
    (nn.flatten(), np.ones(5), r"expected input \(batch, \.\.\.\) of rank >= 2, got \(5,\)"),
    (nn.reshape(2, 3), np.ones((4, 5)),
     r"the model \(reshape \(2, 3\)\): cannot reshape an input \(4, 5\) to \(batch, 2, 3\)"),
    (nn.linear(2, 2) >> nn.softmax(axis=2), np.ones((3, 2)),
     r"layer 1 \(softmax axis=2\): axis 2 is out of range for an input of shape \(3, 2\)"),
]


@pytest.mark.parametrize(("model", "x", "message"), RUNTIME)
def test_runtime_shape_errors_name_the_layer(model: Any, x: Any, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        run(model, x)


def test_batch_norm_train_needs_two_rows() -> None:
    with pytest.raises(ShapeError, match=r"train mode needs a batch of at least 2"):
        run(nn.batch_norm(3), np.ones((1, 3)), mode="train")


def test_residual_block_that_changes_shape_at_run_time() -> None:
    # A block whose output shape is only known at run time (softmax over the batch is fine,
    # a reshape is not) is caught when it runs.
    with pytest.raises(ShapeError, match=r"the model \(residual\): the block maps \(2, 6\) to"):
        run(nn.residual(nn.reshape(3, 2)), np.ones((2, 6)))


def test_parameter_errors_name_the_parameter() -> None:
    net = nn.build(nn.linear(2, 8) >> nn.relu() >> nn.linear(8, 1))
    x = tl.tensor(np.ones((3, 2)))
    bad = dict(net.params)
    bad["2.weight"] = tl.tensor(np.ones((1, 7)))
    with pytest.raises(
        ShapeError,
        match=r"params\['2\.weight'\] of layer 2 \(linear 8->1\) has shape \(1, 7\), expected "
        r"\(1, 8\)",
    ):
        net.apply(bad, x)
    missing = {k: v for k, v in net.params.items() if k != "0.bias"}
    with pytest.raises(ValueError, match=r"params: missing \['0\.bias'\]"):
        net.apply(missing, x)
    with pytest.raises(ValueError, match=r"params: unexpected \['3\.weight'\]"):
        net.apply({**net.params, "3.weight": x}, x)
    with pytest.raises(TypeError, match=r"params\['0\.bias'\] must be a tensor"):
        net.apply({**net.params, "0.bias": np.zeros(8)}, x)
    with pytest.raises(FieldMismatchError, match=r"params\['0\.weight'\] is in field float"):
        net.apply(net.params, tl.tensor(np.ones((3, 2)), dtype="exact"))
    with pytest.raises(TypeError, match=r"the model input must be a tensor"):
        net.apply(net.params, [[1.0, 2.0]])


def test_bad_mode() -> None:
    net = nn.build(nn.linear(2, 2))
    with pytest.raises(ValueError, match=r"mode must be 'train' or 'eval', got 'test'"):
        net.apply(net.params, tl.tensor([1.0, 2.0]), mode="test")
