"""Devices: `ArrayDevice`, runners whose state lives on a device, and the host-transfer guard.

The device is array-api-strict's pretend "device1": the CPU stand-in for a GPU. It goes
through the same runner code as CuPy (`ArrayDevice.holds`, `to_device`, the non-NumPy
`calls` lowering) and refuses to mix devices as CuPy does. array-api-strict computes with
NumPy underneath, so on it every result must equal the NumPy CPU run bit for bit; on CuPy
the comparison needs a tolerance (tests/runtime/test_cuda.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import torchlean as tl
from torchlean.runtime import devices
from torchlean.runtime.data.dataset import TensorDataset
from torchlean.runtime.data.loader import batch_loader
from torchlean.runtime.devices import ArrayDevice, DeviceError, HostTransferError
from torchlean.runtime.runner import Runner, runner

xp = pytest.importorskip("array_api_strict")
CPU_DEVICE = xp.asarray(0.0).device  # array-api-strict's host device

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 4))
Y = RNG.standard_normal((12, 3))
LABELS = np.arange(12) % 3


@pytest.fixture(scope="module")
def dev() -> ArrayDevice:
    return devices.strict_device("device1")


def mlp(norm: bool = True) -> Any:
    layers = [tl.nn.linear(4, 8)]
    if norm:  # a buffer (running statistics) updated by every train step
        layers.append(tl.nn.batch_norm(8))
    return tl.nn.sequential(*layers, tl.nn.relu(), tl.nn.linear(8, 3))


def make(device: str | ArrayDevice, backend: str = "eager", dtype: str = "float",
         kind: str = "regression", norm: bool = True) -> tuple[Any, Runner]:
    built = tl.nn.build(mlp(norm), seed=0)
    task = (tl.train.regression(built) if kind == "regression"
            else tl.train.classification(built))
    r = runner(task, dtype, backend, device)  # type: ignore[arg-type]
    r.set_optimizer(tl.optim.adam(0.01))
    return task, r


def on_device(dev: ArrayDevice, r: Runner) -> bool:
    state = [r.flat, *r.params.values(), *r.buffers.values()]
    if r.opt_state is not None:
        state += [t for bufs in r.opt_state.buffers.values() for t in bufs.values()]
    return all(dev.holds(t.data) for t in state)


# -- ArrayDevice ----------------------------------------------------------------------------
@settings(deadline=None, max_examples=25)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                  elements=st.floats(allow_nan=False)))
def test_to_device_and_back_is_the_identity(a: np.ndarray[Any, Any]) -> None:
    dev = devices.strict_device()
    moved = dev.to_device(a)
    assert dev.holds(moved) and not dev.holds(a)
    back = dev.to_host(moved)
    assert type(back) is np.ndarray and back.dtype == a.dtype
    assert np.array_equal(back, a)


def test_cpu_device_holds_numpy_and_moves_nothing() -> None:
    cpu = devices.cpu()
    a = np.arange(3.0)
    assert cpu.is_host and cpu.holds(a) and cpu.to_device(a) is a and cpu.to_host(a) is a
    assert not cpu.holds(xp.asarray(a))


def test_resolve(dev: ArrayDevice) -> None:
    assert devices.resolve("cpu") is devices.cpu()
    assert devices.resolve(dev) is dev
    with pytest.raises(ValueError, match="must be 'cpu' or 'cuda', got 'tpu'"):
        devices.resolve("tpu")


def test_other_devices_arrays_are_refused(dev: ArrayDevice) -> None:
    other = xp.asarray(np.ones(2), device=xp.Device("device2"))
    assert not dev.holds(other)
    with pytest.raises(DeviceError, match="expected an array on array-api-strict:device1"):
        dev.to_host(other)


def test_cuda_without_cupy_says_what_is_missing() -> None:
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed: this test is for machines without it")
    except ImportError:
        pass
    with pytest.raises(DeviceError, match="CuPy is not installed"):
        devices.cuda()
    with pytest.raises(DeviceError, match="runner: device 'cuda' needs CuPy"):
        make("cuda")


# -- the guard ---------------------------------------------------------------------------
def test_guard_bites_on_every_conversion(dev: ArrayDevice) -> None:
    a = dev.to_device(np.array([1.5, 2.0]))
    s = a[0]
    conversions = {
        "float": lambda: float(s), "int": lambda: int(s), "bool": lambda: bool(s),
        "complex": lambda: complex(s), "np.asarray": lambda: np.asarray(a),
        "np.from_dlpack": lambda: np.from_dlpack(a), "to_host": lambda: dev.to_host(a),
        "to_device(CPU)": lambda: a.to_device(CPU_DEVICE),
        "field.to_numpy": lambda: tl.tensor(np.zeros(1)).field.to_numpy(a),
    }
    with devices.no_host_transfers(dev):
        for name, convert in conversions.items():
            with pytest.raises(HostTransferError, match="inside no_host_transfers"):
                convert()
                pytest.fail(f"{name} was not refused")
        # what stays allowed: device compute, host-to-device moves, other devices' arrays
        assert dev.holds(a * 2 + dev.to_device(np.ones(2)))
        assert float(xp.asarray(2.0)) == 2.0  # an array on the host device
        assert a.to_device(xp.Device("device2")).device == xp.Device("device2")
        assert float(np.float64(3.0)) == 3.0


def test_guard_restores_everything_on_exit(dev: ArrayDevice) -> None:
    cls = type(dev.to_device(np.zeros(1)))
    names = ("__array__", "__buffer__", "__dlpack__", "__float__", "__int__", "__bool__",
             "__index__", "__complex__", "to_device")
    before = {n: vars(cls).get(n) for n in names}
    with pytest.raises(ZeroDivisionError):  # an error inside the guard still restores
        with devices.no_host_transfers(dev):
            with devices.no_host_transfers(dev):  # nested
                assert vars(cls)["__float__"] is not before["__float__"]
            assert vars(cls)["__float__"] is not before["__float__"]
            raise ZeroDivisionError
    assert {n: vars(cls).get(n) for n in names} == before
    assert float(dev.to_device(np.array(2.5))) == 2.5


def test_guard_is_per_thread(dev: ArrayDevice) -> None:
    a = dev.to_device(np.array(4.0))
    seen: list[object] = []
    inside, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        inside.wait()
        seen.append(float(a))  # not guarded in this thread
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with devices.no_host_transfers(dev):
        inside.set()
        assert done.wait(10)
        with pytest.raises(HostTransferError):
            float(a)
    t.join()
    assert seen == [4.0]


def test_host_device_guard_is_a_no_op() -> None:
    with devices.no_host_transfers(devices.cpu()):
        assert float(np.float64(1.0)) == 1.0


# -- runners on the device ------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_state_lives_on_the_device_and_matches_cpu_bit_for_bit(
    dev: ArrayDevice, backend: str
) -> None:
    _, ref = make("cpu", backend)
    _, r = make(dev, backend)
    assert on_device(dev, r) and r.device == "array-api-strict:device1"
    for k in range(3):
        loss = r.train_step(X, Y)
        assert dev.holds(loss.data) and loss.shape == ()
        assert loss.numpy() == ref.train_step(X, Y).numpy(), k  # same NumPy underneath
    assert on_device(dev, r)
    assert np.array_equal(r.flat.numpy(), ref.flat.numpy())
    for k in r.buffers:
        assert np.array_equal(r.buffers[k].numpy(), ref.buffers[k].numpy())
    r.eval()
    ref.eval()
    pred = r.predict(X)
    assert dev.holds(pred.data) and np.array_equal(pred.numpy(), ref.predict(X).numpy())
    assert dev.holds(r.loss(X, Y).data)


def test_eager_equals_compiled_on_the_device(dev: ArrayDevice) -> None:
    _, eager = make(dev, "eager")
    _, compiled = make(dev, "compiled")
    for _ in range(3):
        assert eager.train_step(X, Y).numpy() == compiled.train_step(X, Y).numpy()
    programs = compiled.backend._programs.values()  # type: ignore[attr-defined]
    graph = next(iter(programs)).compiled
    assert graph.mode_for([dev.to_device(X)]) == "calls"  # the non-NumPy lowering
    assert np.array_equal(eager.flat.numpy(), compiled.flat.numpy())


def test_inputs_already_on_the_device_are_used_in_place(dev: ArrayDevice) -> None:
    _, r = make(dev, norm=False)
    xd = dev.to_device(X)
    assert r.as_input(xd).data is xd  # float64 runner: no cast, no copy
    assert dev.holds(r.as_input(tl.tensor(X)).data)  # a host Tensor is moved
    other = xp.asarray(X, device=xp.Device("device2"))
    with pytest.raises(DeviceError, match="on another device"):
        r.predict(other)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_a_whole_training_step_runs_without_host_transfers(
    dev: ArrayDevice, backend: str
) -> None:
    task, r = make(dev, backend)
    loop = tl.train.stepper(task, r, tl.optim.adam(0.01))
    r.train_step(X, Y)  # compiles on the first call (compiling may read shapes only)
    with devices.no_host_transfers(dev):
        loss = r.train_step(X, Y)  # moves the host batch, differentiates, updates
        with pytest.raises(HostTransferError):
            float(loss.data)  # train.step's one read of the loss happens outside
    assert isinstance(tl.train.step(loop, (X, Y)), float)
    assert on_device(dev, r)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_a_classification_step_runs_without_host_transfers(
    dev: ArrayDevice, backend: str
) -> None:
    _, r = make(dev, backend, kind="classification")
    r.train_step(X, LABELS)
    with devices.no_host_transfers(dev):  # host labels are checked before they move
        r.train_step(X, LABELS)
        r.train_step(X, tl.tensor(LABELS, dtype="float"))
        r.loss(X, list(LABELS))


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_classification_on_the_device_equals_cpu_bit_for_bit(
    dev: ArrayDevice, backend: str
) -> None:
    _, ref = make("cpu", backend, kind="classification")
    _, r = make(dev, backend, kind="classification")
    _, placed = make(dev, backend, kind="classification")  # labels already on the device
    for _ in range(3):
        want = ref.train_step(X, LABELS).numpy()
        assert r.train_step(X, LABELS).numpy() == want
        assert placed.train_step(X, dev.to_device(LABELS.astype(np.float64))).numpy() == want
    assert np.array_equal(r.flat.numpy(), ref.flat.numpy())
    assert np.array_equal(placed.flat.numpy(), ref.flat.numpy())
    assert r.loss(X, LABELS).numpy() == ref.loss(X, LABELS).numpy()


@pytest.mark.parametrize(("labels", "error", "match"), [
    (np.where(LABELS == 2, 3, LABELS), ValueError, "cross_entropy: .*3"),
    (LABELS + 0.5, ValueError, "cross_entropy: .*0.5"),
    (LABELS[:5], tl.ShapeError, r"labels of shape \(12,\).*\(5,\)"),
])
def test_bad_labels_on_the_device_path_fail_as_on_the_cpu(
    dev: ArrayDevice, labels: np.ndarray[Any, Any], error: type[Exception], match: str
) -> None:
    _, ref = make("cpu", kind="classification")
    _, r = make(dev, kind="classification")
    before = r.flat.numpy().copy()
    with pytest.raises(error, match=match) as on_cpu:
        ref.train_step(X, labels)
    with pytest.raises(error, match=match) as on_dev:
        r.train_step(X, labels)
    assert str(on_dev.value) == str(on_cpu.value)
    assert np.array_equal(r.flat.numpy(), before) and r.step == 0  # nothing written


def test_fit_loops_on_the_device_equal_cpu(dev: ArrayDevice) -> None:
    ds = TensorDataset(tl.tensor(X), tl.tensor(Y))
    reports = []
    for device in ("cpu", dev):
        task, r = make(device, "compiled")
        cfg = tl.train.steps(4, optimizer=tl.optim.adam(0.01), log_every=0, batch_size=5)
        a = tl.train.fit_dataset(task, r, cfg, ds)
        loader = batch_loader(ds, batch_size=4, seed=1)
        b = tl.train.fit_loader(task, r, tl.train.epochs(2, tl.optim.sgd(0.1), log_every=0),
                                loader)
        assert on_device(dev, r) or device == "cpu"
        reports.append((a.losses, a.loss_after, b.losses, b.loss_after))
    assert reports[0] == reports[1]


def test_checkpoint_round_trip_stays_on_the_device(dev: ArrayDevice, tmp_path: Path) -> None:
    _, r = make(dev)
    r.train_step(X, Y)
    r.save(tmp_path / "ck.json")
    _, back = make(dev)
    back.load(tmp_path / "ck.json")
    assert on_device(dev, back) and back.step == r.step
    assert np.array_equal(back.flat.numpy(), r.flat.numpy())
    assert back.train_step(X, Y).numpy() == r.train_step(X, Y).numpy()


@pytest.mark.parametrize("dtype", ["ieee32exec", "exact", "interval"])
def test_cpu_only_fields_are_refused_on_a_device(dev: ArrayDevice, dtype: str) -> None:
    with pytest.raises(DeviceError, match=f"field '{dtype}' runs on the CPU only"):
        make(dev, dtype=dtype)


def test_float32_runs_on_the_device(dev: ArrayDevice) -> None:
    _, r = make(dev, dtype="float32")
    _, ref = make("cpu", dtype="float32")
    assert r.train_step(X, Y).numpy() == ref.train_step(X, Y).numpy()
    assert r.flat.data.dtype == xp.float32 and on_device(dev, r)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_dropout_masks_are_made_on_the_device(dev: ArrayDevice, backend: str) -> None:
    # A train-mode dropout mask is drawn on the host and copied to the device each step
    # (host to device only), in both backends; the run equals the CPU run bit for bit.
    def dropout_runner(device: str | ArrayDevice) -> Runner:
        model = tl.nn.sequential(tl.nn.linear(4, 8), tl.nn.relu(), tl.nn.dropout(0.5),
                                 tl.nn.linear(8, 3))
        r = runner(tl.train.regression(tl.nn.build(model, seed=0)), "float", backend,
                   device)  # type: ignore[arg-type]
        r.set_optimizer(tl.optim.adam(0.01))
        return r

    on_dev, on_cpu = dropout_runner(dev), dropout_runner("cpu")
    for r in (on_dev, on_cpu):
        r.train_step(X, Y)
    with devices.no_host_transfers(dev):
        on_dev.train_step(X, Y)
    on_cpu.train_step(X, Y)
    assert on_device(dev, on_dev)
    assert dev.to_host(on_dev.flat.data).tobytes() == on_cpu.flat.numpy().tobytes()
