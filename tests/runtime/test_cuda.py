"""GPU tests: runners on a CUDA device through CuPy (skipped without CuPy or a GPU).

The same API as the stand-in tests (tests/runtime/test_devices.py), with `device="cuda"`.
Run them alone with `pytest -m cuda tests/runtime/test_cuda.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime import devices
from torchlean.runtime.devices import ArrayDevice, DeviceError, HostTransferError
from torchlean.runtime.runner import Runner, runner


def _cuda() -> ArrayDevice | None:
    try:
        return devices.cuda()
    except DeviceError:  # CuPy missing, or no CUDA device
        return None


CUDA = _cuda()
pytestmark = [pytest.mark.cupy,
              pytest.mark.skipif(CUDA is None, reason="CuPy/CUDA not available")]

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 16))
Y = RNG.standard_normal((32, 4))
STEPS = 5


def make(device: str, backend: str = "eager", dtype: str = "float") -> Runner:
    model = tl.nn.sequential(tl.nn.linear(16, 32), tl.nn.batch_norm(32), tl.nn.relu(),
                             tl.nn.linear(32, 4))
    r = runner(tl.train.regression(tl.nn.build(model, seed=0)), dtype, backend,
               device)  # type: ignore[arg-type]
    r.set_optimizer(tl.optim.adam(0.01))
    return r


def on_gpu(r: Runner) -> bool:
    assert CUDA is not None
    state: list[Any] = [r.flat, *r.buffers.values()]
    assert r.opt_state is not None
    state += [t for bufs in r.opt_state.buffers.values() for t in bufs.values()]
    return all(CUDA.holds(t.data) for t in state)


def run(r: Runner) -> tuple[list[float], np.ndarray[Any, Any]]:
    losses = [float(r.train_step(X, Y).numpy()) for _ in range(STEPS)]
    return losses, r.flat.numpy()


@pytest.mark.parametrize("dtype", ["float", "float32"])
def test_eager_equals_compiled_on_cupy(dtype: str) -> None:
    # The compiled backend on CuPy runs each op's forward rule, in eager's order: the same
    # kernels on the same data, so the same bits (cuBLAS and CuPy reductions are
    # deterministic for a fixed shape on one device).
    eager, compiled = make("cuda", "eager", dtype), make("cuda", "compiled", dtype)
    a, b = run(eager), run(compiled)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert on_gpu(eager) and on_gpu(compiled)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_cupy_equals_numpy_within_float64_tolerance(backend: str) -> None:
    # float64 on both; they differ only in summation order (cuBLAS blocking and CUB
    # reductions vs NumPy's pairwise sums and OpenBLAS), a few ulps per op. Over 5 Adam
    # steps of this 16-32-4 net that stays far below 1e-9 relative (an Adam update is
    # lr * m / (sqrt(v) + eps): no cancellation amplifies it while |g| >> eps).
    gpu, cpu = run(make("cuda", backend)), run(make("cpu", backend))
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-9, atol=0)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", ["ieee32exec", "exact", "interval"])
def test_cpu_only_fields_are_refused_on_cuda(dtype: str) -> None:
    # ieee32exec's bit-exact binary32 kernels exist on NumPy only: refused, never run with
    # a silently different semantics.
    with pytest.raises(DeviceError, match=f"field '{dtype}' runs on the CPU only"):
        make("cuda", dtype=dtype)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_a_training_step_makes_no_host_transfers(backend: str) -> None:
    assert CUDA is not None
    r = make("cuda", backend)
    r.train_step(X, Y)  # compiles on the first call
    with devices.no_host_transfers(CUDA):
        loss = r.train_step(X, Y)
        with pytest.raises(HostTransferError):
            float(loss.data)  # the guard bites on CuPy too
    assert on_gpu(r) and np.isfinite(float(loss.numpy()))


def test_predict_and_loss_stay_on_the_gpu() -> None:
    assert CUDA is not None
    r = make("cuda").eval()
    assert CUDA.holds(r.predict(X).data) and CUDA.holds(r.loss(X, Y).data)
    assert CUDA.holds(r.as_input(CUDA.to_device(X)).data)
