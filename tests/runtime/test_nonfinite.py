"""A fit stops at the first NaN or infinite loss or gradient, names the step and the op,
keeps the last finite state, and never saves a non-finite one over a good checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime.data.dataset import TensorDataset
from torchlean.runtime.nonfinite import NonFiniteError
from torchlean.runtime.runner import Backend

GRID = np.linspace(-1, 1, 4)
X = np.array([[a, b] for a in GRID for b in GRID])
Y = X[:, :1] ** 2 + X[:, 1:] ** 2


def task() -> Any:
    net = tl.nn.sequential(tl.nn.linear(2, 8), tl.nn.tanh(), tl.nn.linear(8, 1))
    return tl.train.regression(tl.nn.build(net, seed=0))


def data(x: np.ndarray[Any, Any] = X, dtype: str = "float32") -> TensorDataset:
    return TensorDataset(tl.tensor(x, dtype), tl.tensor(Y, dtype))


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_a_nan_in_the_data_stops_the_fit_naming_the_step_and_the_op(backend: Backend) -> None:
    x = X.copy()
    x[5, 1] = np.nan  # in the second batch of 4
    t = task()
    r = tl.train.runner(t, dtype="float32", backend=backend)
    cfg = tl.train.steps(10, tl.optim.adam(0.01), 0, batch_size=4)
    with pytest.raises(NonFiniteError) as info:
        tl.train.fit_dataset(t, r, cfg, data(x))
    e = info.value
    assert e.step == r.step  # the failing step; the runner did not apply it
    assert f"training step {e.step}" in str(e) and "NaN" in str(e)
    assert "inputs hold NaN" in e.cause
    assert np.isfinite(r.flat.numpy()).all()


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_divergence_stops_before_the_state_turns_nonfinite(
    backend: Backend, tmp_path: Path
) -> None:
    t = task()
    r = tl.train.runner(t, dtype="float32", backend=backend)
    r.save(tmp_path / "ck.json")
    good = (tmp_path / "ck.json").read_bytes()
    with pytest.raises(NonFiniteError) as info:
        tl.train.fit_dataset(t, r, tl.train.steps(50, tl.optim.sgd(1e30), 0), data())
    # the op is named: an op of the forward pass or a tape node of the backward pass
    assert "op '" in info.value.cause or "tape node" in info.value.cause, info.value.cause
    assert np.isfinite(r.flat.numpy()).all()
    r.save(tmp_path / "ck.json")  # the kept state is finite, so saving it is allowed
    assert (tmp_path / "ck.json").read_bytes() != good


def test_the_first_op_producing_infinity_from_finite_inputs_is_named() -> None:
    # a finite prediction near 1e24 whose square (in the loss) overflows float32
    t = tl.train.regression(tl.nn.build(tl.nn.sequential(tl.nn.linear(1, 1)), seed=0))
    r = tl.train.runner(t, dtype="float32")
    loop = tl.train.stepper(t, r, tl.optim.sgd(0.1))
    with pytest.raises(NonFiniteError) as info:
        tl.train.step(loop, (np.array([[1e25]]), np.array([[0.0]])))
    assert "the loss is not finite" in str(info.value)
    assert info.value.cause.startswith("op '") and info.value.cause.endswith(
        "produced infinity from finite inputs"), info.value.cause
    assert r.step == 0


def test_opting_out_trains_on_through_nan() -> None:
    x = X.copy()
    x[0, 0] = np.nan
    t = task()
    r = tl.train.runner(t, dtype="float32")
    cfg = tl.train.steps(3, tl.optim.sgd(0.1), 0, stop_on_nonfinite=False)
    report = tl.train.fit_dataset(t, r, cfg, data(x))
    assert report.steps == 3 and all(np.isnan(v) for v in report.losses)
    with pytest.raises(NonFiniteError):
        r.save("never-written.json")
    assert not Path("never-written.json").exists()


def test_a_finite_fit_is_unchanged_by_the_check() -> None:
    """The check reads, never changes: ieee32exec bits equal a run without it."""
    def run(stop: bool) -> bytes:
        t = task()
        r = tl.train.runner(t, dtype="ieee32exec")
        cfg = tl.train.steps(20, tl.optim.adam(0.03), 0, batch_size=4, stop_on_nonfinite=stop)
        tl.train.fit_dataset(t, r, cfg, data(dtype="ieee32exec"))
        return r.flat.numpy().tobytes()

    assert run(True) == run(False)


def test_loader_fits_stop_too() -> None:
    from torchlean.runtime.data.loader import batch_loader

    x = X.copy()
    x[7, 0] = np.inf
    t = task()
    r = tl.train.runner(t, dtype="float")
    loader = batch_loader(data(x, "float"), batch_size=16, seed=0)
    with pytest.raises(NonFiniteError, match="inputs hold infinity"):
        tl.train.fit_loader(t, r, tl.train.epochs(2, tl.optim.sgd(0.1), 0), loader)


def test_exact_training_is_never_stopped() -> None:
    from fractions import Fraction

    t = tl.train.regression(tl.nn.build(tl.nn.sequential(tl.nn.linear(2, 1)), seed=0))
    r = tl.train.runner(t, dtype="exact")
    report = tl.train.fit_dataset(t, r, tl.train.steps(2, tl.optim.sgd(Fraction(1, 8)), 0),
                                  data(dtype="exact"))
    assert report.steps == 2


def test_a_nan_born_in_the_backward_pass_is_named_by_the_tapes_nan_check() -> None:
    """sqrt(p * p) at p = 0 is finite forward; its gradient is inf * 0 = NaN, which the
    tape's nan="raise" check pins to the node whose VJP produced it."""
    from torchlean.runtime.nonfinite import explain_step
    from torchlean.spec import functional as F

    built = tl.nn.build(tl.nn.sequential(tl.nn.linear(1, 1)), seed=0)
    zero = {k: tl.tensor(np.zeros(v.shape)) for k, v in built.params.items()}
    model = built.with_state(params=zero)
    cause = explain_step(model, lambda out, y: F.sum(F.sqrt(out * out)), model.params,
                         model.buffers, tl.tensor([[1.0]]), tl.tensor([[0.0]]), "train", None)
    assert cause.startswith("NaN in the gradient flowing out of tape node #"), cause
    assert "(sqrt" in cause or "(mul" in cause, cause
