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

from ..spec.fields import Field, get_field
from ..spec.nn import Mode
from ..spec.tensor import Tensor
from ..spec.value import Value
from . import autograd as ad
from . import checkpoint
from .compiled_backend import CompiledBackend, CompiledUpdate
from .flat import FlatLayout
from .optim import Optimizer, OptState
from .tape import Traced
from .tasks import Task

__all__ = ["Runner", "runner", "Backend", "Device", "GradientBackend", "EagerBackend"]

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


def _check_device(device: str) -> None:
    if device == "cpu":
        return
    if device != "cuda":
        raise ValueError(f"runner: device must be 'cpu' or 'cuda', got {device!r}")
    try:
        import cupy  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "runner: device 'cuda' needs CuPy and a CUDA GPU, but CuPy is not installed "
            "(pip install 'torchlean[cuda]'); use device 'cpu'"
        ) from None
    raise RuntimeError("runner: device 'cuda' is not supported yet; use device 'cpu'")


class Runner:
    """Parameters, buffers, optimizer state, mode and step of one training run."""

    def __init__(
        self,
        task: Task,
        dtype: str | Field = "float32",
        backend: Backend = "eager",
        device: Device = "cpu",
    ) -> None:
        _check_device(device)
        self.field = get_field(dtype)
        self.task = task
        self.model = task.model.to(self.field)
        self.backend_name = backend
        self.device = device
        self.backend = _make_backend(Task(self.model, task.kind), backend)
        self.layout = FlatLayout.of(self.model.params, self.field)
        self.flat = self.layout.flatten(self.model.params)
        self.params: dict[str, Tensor] = self.layout.views(self.flat)
        self.buffers: dict[str, Tensor] = dict(self.model.buffers)
        self.mode: Mode = "train"
        self.step = 0
        self._update = CompiledUpdate()
        self.optimizer: Optimizer | None = None
        self.opt_state: OptState[Any] | None = None

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
    def as_input(self, data: object) -> Tensor:
        """`data` (a Tensor of any field, an array, nested lists) as a tensor of this field."""
        if isinstance(data, Tensor):
            if data.field is self.field:
                return data
            data = data.numpy()
        return Tensor(self.field.asarray(data), self.field)

    def predict(self, x: object) -> Tensor:
        """The model's output for `x` in the current mode (buffers are not changed)."""
        key = self.dropout_key() if self.mode == "train" else None
        return self.backend.predict(self.params, self.buffers, self.as_input(x), self.mode, key)

    def loss(self, x: object, y: object) -> Tensor:
        """The task's loss on (x, y) in the current mode."""
        return self.task_loss(self.predict(x), self.as_input(y))

    def task_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """The task's loss of given predictions."""
        loss = Task(self.model, self.task.kind).loss(pred, y)
        assert isinstance(loss, Tensor)
        return loss

    def loss_and_grads(self, x: object, y: object) -> tuple[Tensor, Grads, dict[str, Tensor]]:
        """(loss, gradients by parameter name, buffers after the pass) in the current mode."""
        key = self.dropout_key() if self.mode == "train" else None
        return self.backend.loss_and_grads(
            self.params, self.buffers, self.as_input(x), self.as_input(y), self.mode, key
        )

    # -- updates ---------------------------------------------------------------------
    def set_optimizer(self, optimizer: Optimizer) -> Runner:
        """Use `optimizer` for `update`, starting from its initial state (the state is kept
        when it is already this optimizer's, e.g. after `load`)."""
        if optimizer == self.optimizer and self.opt_state is not None:
            return self
        self.optimizer = optimizer
        self.opt_state = optimizer.init({"params": self.flat})
        return self

    def update(self, grads: Mapping[str, Tensor]) -> None:
        """Apply one optimizer step with `grads` (named like the parameters)."""
        if self.optimizer is None or self.opt_state is None:
            raise RuntimeError("update: no optimizer; call set_optimizer (or train.stepper)")
        gflat = self.layout.flatten(grads, "grads")  # no work for the compiled backend's
        # One compiled program per update whatever the backend (the same bits as the
        # op-by-op `optimizer.update`, as PyTorch's eager mode uses fused optimizers).
        flat, self.opt_state = self._update.apply(self.optimizer, self.flat, gflat,
                                                  self.opt_state)
        self.set_flat(flat)
        self.step += 1

    def set_flat(self, flat: Tensor) -> None:
        """Replace all parameters by the flat vector `flat` (layout order)."""
        self.flat = flat
        self.params = self.layout.views(flat)

    def set_buffers(self, buffers: Mapping[str, Tensor]) -> None:
        """Replace the buffers (e.g. batch norm running statistics after a train step)."""
        self.buffers = dict(buffers)

    # -- checkpoints -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write parameters, buffers, optimizer state, step and mode to `path` atomically."""
        checkpoint.save(self, path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore the state saved by `save`; a file from another model, field or optimizer,
        or a malformed one, raises DataFormatError and leaves the runner unchanged."""
        checkpoint.load(self, path)

    def __repr__(self) -> str:
        return (
            f"Runner(dtype={self.field}, backend={self.backend_name}, device={self.device}, "
            f"mode={self.mode}, step={self.step}, params={self.layout.size})"
        )


def runner(
    task: Task,
    dtype: str | Field = "float32",
    backend: Backend = "eager",
    device: Device = "cpu",
) -> Runner:
    """A runner for `task` in field `dtype`, evaluated by `backend` on `device`."""
    return Runner(task, dtype, backend, device)
