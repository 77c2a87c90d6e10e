"""Stopping training at the first NaN or infinity, and naming the op that produced it.

A training step whose loss or gradient is not finite is refused before its update, so
the runner keeps the last finite state. `explain_step` then re-runs that step on the
eager tape (whatever backend ran it) and names the first op whose output was not
finite, or the gradient node the tape's `nan="raise"` check stops at when the forward
pass was finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec.errors import TorchLeanError
from ..spec.nn import Built, Mode
from ..spec.tensor import Tensor
from ..spec.value import Value
from . import autograd as ad
from .tape import GradientNaNError, Node, Tape, Traced

__all__ = ["NonFiniteError", "all_finite", "explain_step"]


class NonFiniteError(TorchLeanError, FloatingPointError):
    """A loss or gradient became NaN or infinite during training, or a state holding such
    values was about to be saved. `step` is the runner's step count when it happened (the
    updates done before it); `cause` names the op or tensor found responsible."""

    def __init__(self, step: int, cause: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.cause = cause


def all_finite(xp: Any, *arrays: Any) -> bool:
    """Whether every element of `arrays` (of one array namespace `xp`) is finite; arrays
    of numbers that cannot be NaN or infinite (exact fractions) count as finite."""
    if xp is np:  # the host's fast path (once per training step)
        for a in arrays:
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                return False
        return True
    ok = None
    for a in arrays:
        if not _is_float(xp, getattr(a, "dtype", None)):
            continue
        this = xp.all(xp.isfinite(a))
        ok = this if ok is None else ok & this
    return True if ok is None else bool(ok)


def _is_float(xp: Any, dtype: Any) -> bool:
    if dtype is None:
        return False
    kind = getattr(dtype, "kind", None)  # NumPy and CuPy dtypes
    if kind is not None:
        return bool(kind == "f")
    return bool(xp.isdtype(dtype, "real floating"))  # other Array API namespaces


def _host_nonfinite(v: Value) -> str | None:
    """"NaN" or "infinity" when concrete value `v` holds one (NaN first), else None."""
    while isinstance(v, Traced):
        v = v.primal
    if not isinstance(v, Tensor):
        return None
    a = v.numpy()
    if a.dtype.kind != "f":
        return None
    if np.isnan(a).any():
        return "NaN"
    return "infinity" if np.isinf(a).any() else None


def _first_bad_node(tape: Tape) -> str | None:
    """The first tape node (forward order) whose output is not finite, described."""
    for node in tape:
        bad = _host_nonfinite(node.output)
        if bad is None:
            continue
        if node.op is None:
            return f"parameter {node.name!r} already holds {bad}"
        return _describe(node, bad)
    return None


def _describe(node: Node, bad: str) -> str:
    where = f"op {node.tag!r} (tape node #{node.index}, output shape {node.shape})"
    for k, (parent, value) in enumerate(zip(node.parents, node.inputs, strict=True)):
        got = _host_nonfinite(value)
        if got is not None:
            source = ("a constant: the batch's data or a buffer" if parent is None
                      else f"tape node #{parent}")
            return f"{where} received {got} in its input {k} ({source})"
    return f"{where} produced {bad} from finite inputs"


def explain_step(
    model: Built[Any, Any], loss: Any, params: Mapping[str, Tensor],
    buffers: Mapping[str, Tensor], x: Tensor, y: Tensor, mode: Mode, key: int | None,
) -> str:
    """Why the step (x, y) gives a non-finite loss or gradient, by re-running it eagerly:
    the first op with a non-finite output, else the gradient node the tape's
    `nan="raise"` check names, else the parameters whose gradient is infinite.
    `loss(prediction, y)` is the task's loss."""
    tapes: list[Tape] = []

    def objective(p: Mapping[str, Value]) -> tuple[Value, dict[str, Value]]:
        for v in p.values():
            if isinstance(v, Traced):
                tapes.append(v.tape)
                break
        out, new_buffers = model.forward(p, x, buffers=buffers, mode=mode, key=key)
        return loss(out, y), new_buffers

    for what, data in (("inputs", x), ("targets", y)):
        bad = _host_nonfinite(data)
        if bad is not None:
            a = data.numpy()
            at = np.argwhere(np.isnan(a) if bad == "NaN" else np.isinf(a))[0]
            return f"the batch's {what} hold {bad} (first at index {[int(i) for i in at]})"
    try:
        (_, _), grads = ad.value_and_grad(objective, has_aux=True, nan="raise")(params)
    except GradientNaNError as e:
        found = _first_bad_node(tapes[0]) if tapes else None
        return found if found is not None else str(e)
    found = _first_bad_node(tapes[0]) if tapes else None
    if found is not None:
        return found
    infinite = [k for k, g in grads.items() if _host_nonfinite(g) is not None]
    if infinite:
        return f"the gradient of {', '.join(infinite)} is infinite"
    return ("the eager re-run of the step stayed finite (the compiled program's rounding "
            "differs from the eager one's near the limits)")
