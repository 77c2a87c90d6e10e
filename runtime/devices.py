"""Where a runner's arrays live: `ArrayDevice`, and the guard against host transfers.

An `ArrayDevice` names an array namespace and one device of it, and moves arrays between
it and the host (NumPy). Three kinds exist:

- `cpu()`: NumPy in host memory (moves are no-ops);
- `cuda(index)`: CuPy on a CUDA GPU (CuPy is imported only here, when asked for);
- `strict_device(name)`: array-api-strict arrays on one of its pretend devices
  ("device1"), the CPU stand-in for a GPU: it exercises the same non-NumPy code path, and
  it refuses to mix devices just as CuPy refuses to mix host and GPU arrays.

`no_host_transfers(device)` is a context manager under which every device-to-host
conversion of that device's arrays (float(x), x.item(), np.asarray(x), x.get(), ...)
raises `HostTransferError`: a test runs a training step under it to show that nothing
silently falls back to NumPy.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from ..spec.errors import TorchLeanError

__all__ = [
    "ArrayDevice", "DeviceError", "HostTransferError", "cpu", "cuda", "strict_device",
    "resolve", "no_host_transfers",
]

Kind = Literal["numpy", "cupy", "array_api_strict"]


class DeviceError(TorchLeanError, RuntimeError):
    """A device that is not available, or a field or array that a device cannot hold."""


class HostTransferError(DeviceError):
    """A device-to-host transfer attempted inside `no_host_transfers`."""


@dataclass(frozen=True, eq=False)
class ArrayDevice:
    """One device of one array namespace: `name` for messages, `xp` the namespace,
    `device` its device object (None for the host), `kind` which library it is."""

    name: str
    xp: Any
    device: Any
    kind: Kind

    @property
    def is_host(self) -> bool:
        """True when arrays on this device are NumPy arrays in host memory."""
        return self.kind == "numpy"

    def holds(self, a: object) -> bool:
        """True when `a` is an array of this namespace on this device."""
        if self.kind == "numpy":
            return isinstance(a, (np.ndarray, np.generic))
        if not isinstance(a, self._array_type):
            return False
        return self.kind == "cupy" or bool(getattr(a, "device", None) == self.device)

    @cached_property
    def _array_type(self) -> type:
        if self.kind == "cupy":
            cls: type = self.xp.ndarray
            return cls
        strict: type = importlib.import_module("array_api_strict._array_object").Array
        return strict

    def to_device(self, a: object) -> Any:
        """The host array `a` (NumPy, or anything np.asarray takes) as an array on this
        device (one host-to-device copy)."""
        host = np.asarray(a)
        if self.kind == "numpy":
            return host
        if self.kind == "cupy":
            with self.device:
                return self.xp.asarray(host)
        return self.xp.asarray(host, device=self.device)

    def to_host(self, a: Any) -> np.ndarray[Any, Any]:
        """The array `a` of this device as a NumPy array (one device-to-host copy)."""
        if self.kind == "numpy":
            return np.asarray(a)
        if not self.holds(a):
            raise DeviceError(f"to_host: expected an array on {self.name}, got "
                              f"{type(a).__name__}")
        if self.kind == "cupy":
            return np.asarray(a.get())
        return np.from_dlpack(a).copy()

    def __repr__(self) -> str:
        return f"ArrayDevice({self.name})"


_CPU = ArrayDevice("cpu", np, None, "numpy")


def cpu() -> ArrayDevice:
    """The host: NumPy arrays."""
    return _CPU


def cuda(index: int = 0) -> ArrayDevice:
    """CUDA GPU `index` through CuPy; DeviceError saying what is missing (CuPy, or a GPU)
    when it is not available."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        raise DeviceError(
            "device 'cuda' needs CuPy and a CUDA GPU, but CuPy is not installed "
            "(pip install 'torchlean[cuda]'); use device 'cpu'"
        ) from None
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        reason = f"cupy.cuda.runtime.getDeviceCount() is {count}"
    except Exception as e:  # CUDARuntimeError when the driver or runtime is missing
        count, reason = 0, f"cupy.cuda.runtime.getDeviceCount() failed: {e}"
    if count == 0:
        raise DeviceError(
            f"device 'cuda' needs a CUDA GPU, but CuPy found none ({reason}); use device 'cpu'"
        )
    if not 0 <= index < count:
        raise DeviceError(f"device 'cuda:{index}': only {count} CUDA device(s) found")
    return ArrayDevice(f"cuda:{index}" if index else "cuda", cupy, cupy.cuda.Device(index),
                       "cupy")


def strict_device(name: str = "device1") -> ArrayDevice:
    """array-api-strict's pretend device `name`: the CPU stand-in for a GPU in tests."""
    try:
        xp = importlib.import_module("array_api_strict")
    except ImportError:
        raise DeviceError("the stand-in device needs array-api-strict, which is not "
                          "installed (pip install array-api-strict)") from None
    return ArrayDevice(f"array-api-strict:{name}", xp, xp.Device(name), "array_api_strict")


def resolve(device: str | ArrayDevice, where: str = "device") -> ArrayDevice:
    """`device` ("cpu", "cuda", "cuda:N" or an ArrayDevice) as an ArrayDevice."""
    if isinstance(device, ArrayDevice):
        return device
    if device == "cpu":
        return cpu()
    if device == "cuda" or (isinstance(device, str) and device.startswith("cuda:")
                            and device[5:].isdigit()):
        try:
            return cuda(int(device[5:]) if ":" in device else 0)
        except DeviceError as e:
            raise DeviceError(f"{where}: {e}") from None
    raise ValueError(f"{where}: device must be 'cpu' or 'cuda', got {device!r}")


# -- the guard ----------------------------------------------------------------------------
# The conversions are patched on the array classes (process-wide, installed while at least
# one guard of that kind is active) but refuse only in the threads that hold a guard for
# the array's device, so other threads keep working.
_LOCK = threading.Lock()
_LOCAL = threading.local()
_USERS: dict[Kind, int] = {}
_SAVED: dict[Kind, list[tuple[Any, str, bool, Any]]] = {}


def _active() -> list[ArrayDevice]:
    active: list[ArrayDevice] | None = getattr(_LOCAL, "devices", None)
    if active is None:
        active = []
        _LOCAL.devices = active
    return active


def _guarded_array(a: object) -> ArrayDevice | None:
    for d in _active():
        if d.holds(a):
            return d
    return None


def _method_guard(label: str, original: Any, refuse: Callable[..., bool]) -> Any:
    def guard(self: Any, *args: Any, **kwargs: Any) -> Any:
        dev = _guarded_array(self)
        if dev is not None and refuse(*args, **kwargs):
            raise HostTransferError(
                f"{label}: a device-to-host transfer of an array on {dev.name} inside "
                "no_host_transfers (the step must keep its arrays on the device)"
            )
        return original(self, *args, **kwargs)
    return guard


def _function_guard(label: str, original: Any) -> Any:
    def guard(*args: Any, **kwargs: Any) -> Any:
        if _active():
            raise HostTransferError(f"{label}: a device-to-host transfer inside "
                                    "no_host_transfers")
        return original(*args, **kwargs)
    return guard


def _always(*args: Any, **kwargs: Any) -> bool:
    return True


def _patches(device: ArrayDevice) -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for every device-to-host conversion of the kind."""
    cls: Any
    names: tuple[str, ...]
    if device.kind == "cupy":
        cls = device.xp.ndarray
        names = ("get", "__array__", "tolist", "item", "__float__", "__int__", "__bool__",
                 "__complex__", "__index__")
        out = [(cls, n, _method_guard(f"cupy.ndarray.{n}", getattr(cls, n), _always))
               for n in names if hasattr(cls, n)]
        return [*out, (device.xp, "asnumpy",
                       _function_guard("cupy.asnumpy", device.xp.asnumpy))]
    if device.kind == "array_api_strict":
        cls = device._array_type
        cpu_device = importlib.import_module("array_api_strict._devices").CPU_DEVICE
        # __buffer__ and __array__ already refuse off-CPU arrays; patched too so the error
        # is ours. __dlpack__ is how np.from_dlpack copies a stand-in array to the host.
        names = ("__array__", "__buffer__", "__dlpack__", "__float__", "__int__", "__bool__",
                 "__index__", "__complex__")
        out = [(cls, n, _method_guard(f"array_api_strict.Array.{n}", getattr(cls, n),
                                      _always)) for n in names if hasattr(cls, n)]

        def to_cpu(target: Any, *args: Any, **kwargs: Any) -> bool:
            return bool(target == cpu_device)

        return [*out, (cls, "to_device", _method_guard(
            "array_api_strict.Array.to_device", cls.to_device, to_cpu))]
    return []


def _install(device: ArrayDevice) -> None:
    with _LOCK:
        users = _USERS.get(device.kind, 0)
        if users == 0:
            saved = []
            for owner, attr, replacement in _patches(device):
                own = attr in vars(owner)
                saved.append((owner, attr, own, vars(owner).get(attr)))
                try:
                    setattr(owner, attr, replacement)
                except (TypeError, AttributeError) as e:
                    _restore(saved[:-1])
                    raise DeviceError(f"no_host_transfers: cannot guard {owner!r}.{attr} "
                                      f"({e})") from None
            _SAVED[device.kind] = saved
        _USERS[device.kind] = users + 1


def _restore(saved: list[tuple[Any, str, bool, Any]]) -> None:
    for owner, attr, own, original in reversed(saved):
        if own:
            setattr(owner, attr, original)
        else:
            delattr(owner, attr)


def _uninstall(device: ArrayDevice) -> None:
    with _LOCK:
        users = _USERS[device.kind] - 1
        _USERS[device.kind] = users
        if users == 0:
            _restore(_SAVED.pop(device.kind))


@contextmanager
def no_host_transfers(device: ArrayDevice) -> Iterator[None]:
    """While active (in this thread), every device-to-host conversion of an array on
    `device` raises HostTransferError; everything is restored on exit. Host-to-device
    moves stay allowed. On the host device (NumPy) there is nothing to guard."""
    if device.is_host:
        yield
        return
    _install(device)
    _active().append(device)
    try:
        yield
    finally:
        _active().remove(device)
        _uninstall(device)
