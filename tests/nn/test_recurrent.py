"""gru_cell, lstm_cell, gru and lstm agree with PyTorch's GRUCell/LSTMCell/GRU/LSTM
(forward and backward, float64), pass gradcheck, and refuse `exact` naming the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torchlean as tl
from torchlean.spec import functional as F
from torchlean.spec import nn
from torchlean.spec.errors import ShapeError, UnsupportedOperation
from torchlean.verify import gradcheck

torch = pytest.importorskip("torch", reason="PyTorch is needed for the reference layers")

# Both sides compute in binary64 with the same gate formulas but different summation
# orders (and h' = n - z n + z h here vs (1 - z) n + z h there): differences are a few
# ulps of O(1) values, far below 1e-10; a wrong gate order or formula gives O(0.1).
TOL = 1e-10

sizes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))


def _grads(net: nn.Built[Any, Any], x: np.ndarray[Any, Any], cot: np.ndarray[Any, Any]
           ) -> tuple[Any, dict[str, Any], Any]:
    """Our output, and the gradients of sum(out * cot) for params and input."""
    c = tl.tensor(cot)

    def objective(p: dict[str, Any], xv: Any) -> Any:
        return F.sum(net.forward(p, xv)[0] * c)

    gp, gx = tl.autograd.grad(objective, argnums=(0, 1))(dict(net.params), tl.tensor(x))
    return net(tl.tensor(x)).numpy().astype(float), gp, gx.numpy().astype(float)


def _torch_grads(mod: Any, names: dict[str, str], net: nn.Built[Any, Any],
                 run: Any, x: np.ndarray[Any, Any], cot: np.ndarray[Any, Any]
                 ) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]],
                            np.ndarray[Any, Any]]:
    """Copy our parameters into `mod` (ours -> torch names), run, backprop sum(out * cot)."""
    mod = mod.double()
    with torch.no_grad():
        for ours, theirs in names.items():
            getattr(mod, theirs).copy_(torch.from_numpy(net.params[ours].numpy().astype(float)))
    xt = torch.from_numpy(x).requires_grad_(True)
    out = run(mod, xt)
    (out * torch.from_numpy(cot)).sum().backward()
    grads = {ours: getattr(mod, theirs).grad.numpy() for ours, theirs in names.items()}
    assert xt.grad is not None
    return out.detach().numpy(), grads, xt.grad.numpy()


def _compare(ours: tuple[Any, dict[str, Any], Any], theirs: tuple[Any, Any, Any]) -> None:
    np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=TOL)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=0, atol=TOL)
    for name, g in theirs[1].items():
        np.testing.assert_allclose(ours[1][name].numpy().astype(float), g, rtol=0, atol=TOL,
                                   err_msg=name)


CELL_NAMES = {k: k for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
SEQ_NAMES = {k + "_l0": k + "_l0" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


@settings(deadline=None, max_examples=8)
@given(sizes, st.integers(0, 2**16))
def test_gru_cell_matches_torch(dims: tuple[int, int, int, int], seed: int) -> None:
    batch, i, h, _ = dims
    rng = np.random.default_rng(seed)
    net = nn.build(nn.gru_cell(i, h), seed=seed, dtype="float")
    x, cot = rng.normal(size=(batch, i + h)), rng.normal(size=(batch, h))
    ours = _grads(net, x, cot)
    theirs = _torch_grads(torch.nn.GRUCell(i, h), CELL_NAMES, net,
                          lambda m, xt: m(xt[:, :i], xt[:, i:]), x, cot)
    _compare(ours, theirs)


@settings(deadline=None, max_examples=8)
@given(sizes, st.integers(0, 2**16))
def test_lstm_cell_matches_torch(dims: tuple[int, int, int, int], seed: int) -> None:
    batch, i, h, _ = dims
    rng = np.random.default_rng(seed)
    net = nn.build(nn.lstm_cell(i, h), seed=seed, dtype="float")
    x, cot = rng.normal(size=(batch, i + 2 * h)), rng.normal(size=(batch, 2 * h))

    def run(m: Any, xt: Any) -> Any:
        hn, cn = m(xt[:, :i], (xt[:, i:i + h], xt[:, i + h:]))
        return torch.cat([hn, cn], dim=-1)

    _compare(_grads(net, x, cot), _torch_grads(torch.nn.LSTMCell(i, h), CELL_NAMES, net, run,
                                               x, cot))


@settings(deadline=None, max_examples=6)
@given(sizes, st.integers(0, 2**16))
def test_gru_matches_torch(dims: tuple[int, int, int, int], seed: int) -> None:
    batch, i, h, steps = dims
    rng = np.random.default_rng(seed)
    net = nn.build(nn.gru(i, h), seed=seed, dtype="float")
    x, cot = rng.normal(size=(batch, steps, i)), rng.normal(size=(batch, steps, h))
    theirs = _torch_grads(torch.nn.GRU(i, h, batch_first=True), SEQ_NAMES, net,
                          lambda m, xt: m(xt)[0], x, cot)
    _compare(_grads(net, x, cot), theirs)


@settings(deadline=None, max_examples=6)
@given(sizes, st.integers(0, 2**16))
def test_lstm_matches_torch(dims: tuple[int, int, int, int], seed: int) -> None:
    batch, i, h, steps = dims
    rng = np.random.default_rng(seed)
    net = nn.build(nn.lstm(i, h), seed=seed, dtype="float")
    x, cot = rng.normal(size=(batch, steps, i)), rng.normal(size=(batch, steps, h))
    theirs = _torch_grads(torch.nn.LSTM(i, h, batch_first=True), SEQ_NAMES, net,
                          lambda m, xt: m(xt)[0], x, cot)
    _compare(_grads(net, x, cot), theirs)


def test_parameter_names_shapes_and_init_bound() -> None:
    net = nn.build(nn.lstm(3, 5), seed=1)
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"weight_ih_l0": (20, 3), "weight_hh_l0": (20, 5),
                      "bias_ih_l0": (20,), "bias_hh_l0": (20,)}
    bound = 1 / np.sqrt(5)  # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
    values = np.concatenate([v.numpy().astype(float).ravel() for v in net.params.values()])
    assert np.all(np.abs(values) <= bound) and np.max(np.abs(values)) > bound / 2
    assert set(nn.build(nn.gru_cell(2, 4), seed=0).params) == set(CELL_NAMES)


@pytest.mark.parametrize("layer", [nn.gru(2, 3), nn.lstm(2, 3)])
def test_gradcheck_central(layer: Any) -> None:
    net = nn.build(layer, seed=3, dtype="float")
    x = tl.tensor(np.random.default_rng(0).normal(size=(2, 3, 2)))

    def loss(p: dict[str, Any], xv: Any) -> Any:
        return F.sum(F.square(net.forward(p, xv)[0]))

    report = gradcheck(loss, (dict(net.params), x), argnums=(0, 1), method="central")
    assert report.passed, report


@pytest.mark.parametrize("layer", [nn.gru(2, 3), nn.lstm_cell(2, 3)])
def test_exact_field_is_refused_naming_the_layer(layer: Any) -> None:
    net = nn.build(nn.sequential(layer), seed=0, dtype="exact")
    width = 2 if isinstance(layer, nn.GRU) else 8
    shape = (1, 2, width) if isinstance(layer, nn.GRU) else (1, width)
    with pytest.raises(UnsupportedOperation, match=r"layer 0 \((gru|lstm_cell) 2->3\)"):
        net(tl.tensor(np.ones(shape), dtype="exact"))


def test_shape_errors_name_the_layer() -> None:
    with pytest.raises(ShapeError, match=r"gru 2->3.*\(batch, time, 2\)"):
        nn.build(nn.gru(2, 3), seed=0)(tl.tensor(np.ones((1, 4, 5))))
    with pytest.raises(ShapeError, match=r"gru_cell 2->3"):
        nn.build(nn.gru_cell(2, 3), seed=0)(tl.tensor(np.ones((1, 4))))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        nn.lstm(2, 0)
