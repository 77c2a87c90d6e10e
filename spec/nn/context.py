"""The evaluation context of a forward pass: train/eval mode, the dropout key, and the hook
that turns a host array (a dropout mask) into a value of the running kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import numpy as np

from ..tensor import Tensor
from ..value import Value
from .draws import check_seed

__all__ = ["Mode", "Context", "ConstantHook", "host_constant", "check_mode"]

Mode = Literal["train", "eval"]

# (like, name, array) -> a Value that ops can combine with `like`. `name` is the layer path
# plus what the array is ("3.mask"), so a compiled runtime can make it a graph input.
ConstantHook = Callable[[Value, str, np.ndarray[Any, Any]], Value]


def host_constant(like: Value, name: str, array: np.ndarray[Any, Any]) -> Value:
    """`array` as a concrete spec Tensor in `like`'s field, on the device of the concrete
    tensor under `like` (one host-to-device copy when that is not the host).

    Concrete tensors use it directly and tape values lift it as a constant; a runtime
    whose values have no concrete tensor under them (a compiled graph) passes its own hook.
    """
    field = like.field
    data = field.asarray(array)
    anchor = _concrete(like)
    if anchor is not None and not isinstance(anchor.data, (np.ndarray, np.generic)) \
            and hasattr(anchor.data, "__array_namespace__"):
        data = anchor.data.__array_namespace__().asarray(data, device=anchor.data.device)
    return Tensor(data, field)


def _concrete(value: Value) -> Tensor | None:
    """The concrete tensor a value wraps: itself, or the primal of a tape value (tapes
    nest), or None for symbolic values."""
    while not isinstance(value, Tensor):
        primal = getattr(value, "primal", None)
        if not isinstance(primal, Value):
            return None
        value = primal
    return value


def check_mode(mode: object) -> Mode:
    """`mode` if it is "train" or "eval", else ValueError."""
    if mode not in get_args(Mode):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    return cast(Mode, mode)


@dataclass(frozen=True, slots=True)
class Context:
    """How to run a forward pass.

    `mode` is "train" (dropout active, batch norm uses and updates batch statistics) or
    "eval"; `key` seeds dropout masks (required in train mode when a dropout has p > 0);
    `constant` turns host arrays into values (see `host_constant`).
    """

    mode: Mode = "eval"
    key: int | None = None
    constant: ConstantHook = host_constant

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.key is not None:
            check_seed(self.key, "key")
