"""The runner: everything a training loop needs, in one explicit object.

A runner owns the parameters and buffers (converted to the chosen field), the optimizer
and its state, the train/eval mode flag and the step count; it predicts, computes losses
and gradients in either mode through a backend (eager tape or compiled graph), and
applies updates. It is the one mutable object of a training run, and it says so: every
method that changes it is named for what it changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import numpy as np

from ..spec.fields import Field, NativeFloatField, get_field
from ..spec.nn import Built, Mode, check_input_shape, label_targets
from ..spec.tensor import Tensor
from ..spec.value import Value
from . import autograd as ad
from . import checkpoint
from .compiled_backend import CompiledBackend, CompiledUpdate
from .devices import ArrayDevice, DeviceError, resolve
from .flat import FlatLayout
from .nonfinite import NonFiniteError, all_finite, explain_step
from .optim import Optimizer, OptState
from .runner_state import RunnerState, SavedOptimizer, fingerprint
from .tape import Traced
from .tasks import Task, TaskKind

__all__ = [
    "Runner", "runner", "Backend", "Device", "GradientBackend", "EagerBackend", "RunnerState",
]

Backend = Literal["eager", "compiled"]
Device = Literal["cpu", "cuda"]
Grads = Mapping[str, Tensor]


class GradientBackend(Protocol):
    """How a runner evaluates its task: predictions, losses and gradients."""

    def predict(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        mode: Mode, key: int | None,
    ) -> Tensor: ...

    def loss_and_grads(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        y: Tensor, mode: Mode, key: int | None,
    ) -> tuple[Tensor, Grads, dict[str, Tensor]]: ...


def _concrete(v: Value) -> Tensor:
    while isinstance(v, Traced):
        v = v.primal
    assert isinstance(v, Tensor)
    return v


class EagerBackend:
    """Ops run as called, gradients from the eager tape."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def predict(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        mode: Mode, key: int | None,
    ) -> Tensor:
        out, _ = self.task.model.forward(params, x, buffers=buffers, mode=mode, key=key)
        return out

    def loss_and_grads(
        self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], x: Tensor,
        y: Tensor, mode: Mode, key: int | None,
    ) -> tuple[Tensor, Grads, dict[str, Tensor]]:
        def objective(p: Mapping[str, Value]) -> tuple[Value, dict[str, Value]]:
            out, new_buffers = self.task.model.forward(p, x, buffers=buffers, mode=mode, key=key)
            return self.task.loss(out, y), new_buffers

        (loss, new_buffers), grads = ad.value_and_grad(objective, has_aux=True)(params)
        concrete: Grads = {k: _concrete(g) for k, g in grads.items()}
        return (
            _concrete(loss),
            concrete,
            {k: _concrete(b) for k, b in new_buffers.items()},
        )


def _make_backend(task: Task, backend: str) -> GradientBackend:
    if backend == "eager":
        return EagerBackend(task)
    if backend == "compiled":
        return CompiledBackend(task)
    raise ValueError(f"runner: backend must be 'eager' or 'compiled', got {backend!r}")


def _on_host(data: object) -> bool:
    """Whether `data` (a Tensor, an array, nested lists) is held by the host."""
    a = data.data if isinstance(data, Tensor) else data
    return isinstance(a, (np.ndarray, np.generic)) or not hasattr(a, "__array_namespace__")


def _foreign(dev: ArrayDevice, data: object) -> DeviceError:
    """The error for an array of another device handed to a runner on `dev`."""
    return DeviceError(f"runner on {dev.name}: got an array of type {type(data).__name__} on "
                       "another device; move it to the host or to this device first")


def _resolve_device(device: Device | ArrayDevice, field: Field) -> ArrayDevice:
    """The runner's device, refusing fields whose arrays cannot live there."""
    dev = resolve(device, "runner")
    if not dev.is_host and not isinstance(field, NativeFloatField):
        # ieee32exec's bit-exact binary32 kernels (and the exact and interval fields' object
        # arrays) exist on NumPy only; running them elsewhere would silently change the
        # semantics, so they are refused rather than ported approximately.
        raise DeviceError(
            f"runner: field {field.name!r} runs on the CPU only; device {dev.name!r} takes "
            "the native float fields 'float' and 'float32' (use device 'cpu' for "
            f"{field.name!r})"
        )
    return dev


class Runner:
    """Parameters, buffers, optimizer state, mode and step of one training run.

    On a device other than the CPU (`device="cuda"`, or an `ArrayDevice`), the
    parameters, buffers and optimizer state live on that device; inputs (host arrays,
    Tensors, or arrays already on the device) are moved there once per call, and results
    stay there except where a method says it returns host values. Class labels of a
    classification task that come from the host are checked there and moved as the
    one-hot rows `cross_entropy` would build (`nn.label_targets`), so a step never reads
    labels back from the device; labels already on the device are checked by one read."""

    def __init__(
        self,
        task: Task,
        dtype: str | Field = "float32",
        backend: Backend = "eager",
        device: Device | ArrayDevice = "cpu",
    ) -> None:
        self.field = get_field(dtype)
        self.array_device = _resolve_device(device, self.field)
        self.task = task
        self.model = task.model.to(self.field)
        self.backend_name = backend
        self.device: str = self.array_device.name
        self.backend = _make_backend(Task(self.model, task.kind), backend)
        self._backends: dict[TaskKind, GradientBackend] = {task.kind: self.backend}
        self._output_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.layout = FlatLayout.of(self.model.params, self.field)
        self.flat = self.place(self.layout.flatten(self.model.params))
        self.params: dict[str, Tensor] = self.layout.views(self.flat)
        self.buffers: dict[str, Tensor] = {k: self.place(b) for k, b in self.model.buffers.items()}
        self.mode: Mode = "train"
        self.step = 0
        self._update = CompiledUpdate()
        self.optimizer: Optimizer | None = None
        self.opt_state: OptState[Any] | None = None
        # optimizer state loaded before its optimizer was set: adopted by `set_optimizer`
        # when the optimizer is the saved one, dropped otherwise
        self._saved_optimizer: SavedOptimizer | None = None

    # -- mode ---------------------------------------------------------------------
    def train(self) -> Runner:
        """Switch to train mode (dropout active, batch norm uses and updates batch stats)."""
        self.mode = "train"
        return self

    def eval(self) -> Runner:
        """Switch to eval mode (dropout off, batch norm uses running stats)."""
        self.mode = "eval"
        return self

    def dropout_key(self) -> int:
        """The dropout key of the current step: a pure function of the seed and the step."""
        return (self.model.seed << 32) + self.step

    # -- evaluation ----------------------------------------------------------------
    def place(self, t: Tensor) -> Tensor:
        """`t` (of this runner's field) on the runner's device: itself when already there,
        else moved from the host (arrays of another device are refused, not copied)."""
        dev = self.array_device
        if dev.is_host or dev.holds(t.data):
            return t
        if not isinstance(t.data, (np.ndarray, np.generic)):
            raise _foreign(dev, t.data)
        return Tensor(dev.to_device(t.data), t.field)

    def as_input(self, data: object) -> Tensor:
        """`data` (a Tensor of any field, an array, nested lists) as a tensor of this field
        on the runner's device (moved there once when it comes from the host)."""
        dev = self.array_device
        if isinstance(data, Tensor):
            if data.field is self.field:
                return self.place(data)
            data = data.numpy()
        if not dev.is_host and dev.holds(data):
            # used in place when of this field's dtype, else cast on the device
            same = isinstance(self.field, NativeFloatField) and (
                getattr(data, "dtype", None) == self.field.dtype(dev.xp))
            return Tensor(data if same else self.field.asarray(data), self.field)
        if not dev.is_host and hasattr(data, "__array_namespace__") and not isinstance(
                data, np.ndarray):
            raise _foreign(dev, data)
        return self.place(Tensor(self.field.asarray(data), self.field))

    def predict(self, x: object) -> Tensor:
        """The model's output for `x` in the current mode (buffers are not changed), on the
        runner's device."""
        key = self.dropout_key() if self.mode == "train" else None
        return self.backend.predict(self.params, self.buffers, self.as_input(x), self.mode, key)

    def loss(self, x: object, y: object) -> Tensor:
        """The task's loss on (x, y) in the current mode: a 0-d tensor on the runner's
        device (`float(loss.item())` reads it on the host)."""
        xs = self.as_input(x)
        ys, kind = self._targets(xs, y)
        return self._loss_of(kind, self.predict(xs), ys)

    def task_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """The task's loss of given predictions."""
        return self._loss_of(self.task.kind, pred, y)

    def _loss_of(self, kind: TaskKind, pred: Tensor, y: Tensor) -> Tensor:
        loss = Task(self.model, kind).loss(pred, y)
        assert isinstance(loss, Tensor)
        return loss

    def loss_and_grads(self, x: object, y: object) -> tuple[Tensor, Grads, dict[str, Tensor]]:
        """(loss, gradients by parameter name, buffers after the pass) in the current mode,
        all on the runner's device."""
        key = self.dropout_key() if self.mode == "train" else None
        xs = self.as_input(x)
        ys, kind = self._targets(xs, y)
        return self._backend(kind).loss_and_grads(self.params, self.buffers, xs, ys,
                                                  self.mode, key)

    def _targets(self, x: Tensor, y: object) -> tuple[Tensor, TaskKind]:
        """The targets on the device and the task kind whose loss takes them: host labels
        of a classification task on a device become checked one-hot rows (see Runner)."""
        dev = self.array_device
        if self.task.kind != "classification" or dev.is_host or not _on_host(y):
            return self.as_input(y), self.task.kind
        if isinstance(y, Tensor):
            y = y.data if y.field is self.field else y.numpy()
        labels = Tensor(self.field.asarray(y), self.field)
        shape = self._output_shapes.get(x.shape)
        if shape is None:
            shape = self._output_shapes[x.shape] = check_input_shape(self.model, x.shape)
        return self.place(label_targets(labels, shape)), "classification_one_hot"

    def _backend(self, kind: TaskKind) -> GradientBackend:
        backend = self._backends.get(kind)
        if backend is None:
            backend = self._backends[kind] = _make_backend(Task(self.model, kind),
                                                           self.backend_name)
        return backend

    # -- updates ---------------------------------------------------------------------
    def set_optimizer(self, optimizer: Optimizer) -> Runner:
        """Use `optimizer` for `update`. Its state continues when the runner already uses
        this optimizer, or when `load` read a state saved with an equal one (a resumed
        run); otherwise it starts from the optimizer's initial state."""
        if optimizer == self.optimizer and self.opt_state is not None:
            return self
        saved, self._saved_optimizer = self._saved_optimizer, None
        fresh = optimizer.init({"params": self.flat})
        self.optimizer = optimizer
        self.opt_state = fresh
        if saved is not None and saved.name == repr(optimizer):
            checkpoint.check_optimizer_fits(saved.state, fresh, "saved optimizer state")
            self.opt_state = self._placed(saved.state)
        return self

    def _placed(self, state: OptState[Any]) -> OptState[Any]:
        return OptState(state.step, {slot: {k: self.place(b) for k, b in bufs.items()}
                                     for slot, bufs in state.buffers.items()})

    def update(self, grads: Mapping[str, Tensor]) -> None:
        """Apply one optimizer step with `grads` (named like the parameters; host gradients
        are moved to the runner's device)."""
        if self.optimizer is None or self.opt_state is None:
            raise RuntimeError("update: no optimizer; call set_optimizer (or train.stepper)")
        # no work for the compiled backend's flat gradients
        self._update_flat(self.place(self.layout.flatten(grads, "grads")))

    def _update_flat(self, gflat: Tensor) -> None:
        assert self.optimizer is not None and self.opt_state is not None
        # One compiled program per update whatever the backend (the same bits as the
        # op-by-op `optimizer.update`, as PyTorch's eager mode uses fused optimizers).
        flat, self.opt_state = self._update.apply(self.optimizer, self.flat, gflat,
                                                  self.opt_state)
        self.set_flat(flat)
        self.step += 1

    def train_step(self, x: object, y: object, *, stop_on_nonfinite: bool = False) -> Tensor:
        """One training step on (x, y) in train mode: gradients, the optimizer update and
        the buffers' update. Returns the loss as a 0-d tensor still on the runner's device,
        so the step itself needs no device-to-host transfer (`train.step` reads it).

        With `stop_on_nonfinite`, a loss or gradient holding NaN or infinity raises
        NonFiniteError naming the step and the op that produced it, and the runner keeps
        its state from before the step (one more device-to-host read per step)."""
        self.train()
        if self.optimizer is None or self.opt_state is None:
            raise RuntimeError("update: no optimizer; call set_optimizer (or train.stepper)")
        xs = self.as_input(x)
        loss, grads, buffers = self.loss_and_grads(xs, y)
        gflat = self.place(self.layout.flatten(grads, "grads"))
        if stop_on_nonfinite and not all_finite(self.array_device.xp, loss.data, gflat.data):
            raise self._nonfinite(xs, y, loss)
        self._update_flat(gflat)
        self.set_buffers(buffers)
        return loss

    def _nonfinite(self, x: Tensor, y: object, loss: Tensor) -> NonFiniteError:
        """The error for a step on (x, y) whose loss or gradient is not finite."""
        ys, kind = self._targets(x, y)
        what = "loss" if not all_finite(self.array_device.xp, loss.data) else "gradient"
        cause = explain_step(self.model, Task(self.model, kind).loss, self.params,
                             self.buffers, x, ys, self.mode, self.dropout_key())
        return NonFiniteError(
            self.step, cause,
            f"training step {self.step} (counting from 0): the {what} is not finite: "
            f"{cause}. The runner keeps its state from before this step. To train on "
            "through non-finite values, pass stop_on_nonfinite=False (to train.steps, "
            "train.epochs or train.stepper).")

    def set_flat(self, flat: Tensor) -> None:
        """Replace all parameters by the flat vector `flat` (layout order; moved to the
        runner's device when it comes from the host)."""
        self.flat = self.place(flat)
        self.params = self.layout.views(self.flat)

    def set_buffers(self, buffers: Mapping[str, Tensor]) -> None:
        """Replace the buffers (e.g. batch norm running statistics after a train step)."""
        self.buffers = {k: self.place(b) for k, b in buffers.items()}

    # -- state and checkpoints ----------------------------------------------------------
    def state(self, *, optimizer: bool = True) -> RunnerState:
        """The runner's state as one immutable value: parameters and buffers, step, mode,
        and the optimizer state when one is set and `optimizer` is true. As in a PyTorch
        state_dict, the tensors are the runner's own (on its device), not copies: save the
        state, or use `trained_model()`, to keep the numbers of this moment."""
        saved = None
        if optimizer and self.optimizer is not None and self.opt_state is not None:
            saved = SavedOptimizer(repr(self.optimizer), self.opt_state)
        elif optimizer:
            saved = self._saved_optimizer  # loaded, not yet claimed: kept on a re-save
        return RunnerState(fingerprint(self.model), self.field, dict(self.params),
                           dict(self.buffers), self.step, self.mode, saved)

    def set_state(self, state: RunnerState) -> None:
        """Replace parameters, buffers, step and mode by `state`'s (which must be of this
        model and field: DataFormatError otherwise, with the runner unchanged). Its
        optimizer state is used when the runner's optimizer is the one it was saved
        with, else kept until `set_optimizer` is called with that optimizer."""
        self._set_state(state, "state")

    def _set_state(self, state: RunnerState, where: str) -> None:
        checkpoint.check_fits(state, self.state(optimizer=False), where)
        saved = state.optimizer
        if saved is not None and self.optimizer is not None and saved.name == repr(
                self.optimizer):
            assert self.opt_state is not None
            fresh = self.optimizer.init({"params": self.flat})
            checkpoint.check_optimizer_fits(saved.state, fresh, where)
            opt_state: OptState[Any] | None = self._placed(saved.state)
            saved = None
        else:
            # a runner without this optimizer keeps its own (or none), restarted below
            opt_state = None
        self.set_flat(self.layout.flatten(state.params))
        self.set_buffers(state.buffers)
        self.step = state.step
        self.mode = state.mode
        self._saved_optimizer = saved
        if opt_state is not None:
            self.opt_state = opt_state
        elif self.optimizer is not None:
            self.opt_state = self.optimizer.init({"params": self.flat})

    def trained_model(self) -> Built[Any, Any]:
        """The model with the runner's current parameters and buffers (host tensors of the
        runner's field): what `nn` evaluation, export and verification take."""
        def back(t: Tensor) -> Tensor:  # a host copy: later updates must not show through
            return Tensor(self.field.asarray(t.numpy()), self.field)

        return self.model.with_state(params={k: back(t) for k, t in self.params.items()},
                                     buffers={k: back(t) for k, t in self.buffers.items()})

    def save(self, path: str | os.PathLike[str], *, optimizer: bool = True,
             allow_nonfinite: bool = False) -> None:
        """Write parameters, buffers, step, mode and (unless `optimizer` is false) the
        optimizer state to `path` atomically. A state holding NaN or infinity raises
        NonFiniteError and writes nothing, unless `allow_nonfinite`."""
        checkpoint.save(self.state(optimizer=optimizer), path, allow_nonfinite=allow_nonfinite)

    def load(self, path: str | os.PathLike[str], optimizer: Optimizer | None = None) -> Runner:
        """Restore the parameters, buffers, step and mode saved by `save`, and return the
        runner. A file of another model or field, or a malformed one, raises
        DataFormatError and leaves the runner unchanged.

        The optimizer is optional, as in PyTorch: with `optimizer` given (or one already
        set), training continues with it; its saved state is restored when it is the
        optimizer the file was saved with (a resumed run, bit for bit), and it starts
        fresh otherwise (fine-tuning with another optimizer or learning rate). With no
        optimizer, the saved state waits for `set_optimizer` (as `train.fit_dataset`
        calls) with the saved optimizer."""
        where = os.fspath(path)
        state = checkpoint.read(path)
        checkpoint.check_fits(state, self.state(optimizer=False), where)
        if optimizer is not None and state.optimizer is not None and (
                state.optimizer.name == repr(optimizer)):
            # checked before the optimizer is set, so a bad file changes nothing
            checkpoint.check_optimizer_fits(state.optimizer.state,
                                            optimizer.init({"params": self.flat}), where)
        if optimizer is not None and optimizer != self.optimizer:
            self.optimizer, self.opt_state = optimizer, optimizer.init({"params": self.flat})
        self._set_state(state, where)
        return self

    def __repr__(self) -> str:
        return (
            f"Runner(dtype={self.field}, backend={self.backend_name}, device={self.device}, "
            f"mode={self.mode}, step={self.step}, params={self.layout.size})"
        )


def runner(
    task: Task,
    dtype: str | Field = "float32",
    backend: Backend = "eager",
    device: Device | ArrayDevice = "cpu",
) -> Runner:
    """A runner for `task` in field `dtype`, evaluated by `backend` on `device`: "cpu",
    "cuda" (CuPy; DeviceError when CuPy or a GPU is missing, or for a field other than
    'float' and 'float32'), or an `ArrayDevice` (e.g. `devices.strict_device()`, the
    CPU stand-in for a GPU that the tests use)."""
    return Runner(task, dtype, backend, device)
