"""The functional optimizer interface: `Optimizer`, its explicit `OptState`, and the checks.

An optimizer is an immutable record of hyperparameters with two pure methods:
`init(params) -> state` and `update(params, grads, state) -> (new_params, new_state)`.
Parameters, gradients and state buffers are mappings from names to Values of any kind
(concrete spec tensors, eager tape values, symbolic IR values) and any field; every
update is written with ops on those Values, never on their arrays.

Scalar coefficients (bias corrections, 1 - beta, lr / bias correction, ...) are computed
as PyTorch computes them, in binary64 Python arithmetic, when the parameters live in a
binary floating-point field (`float`, `float32`, `ieee32exec`), then rounded into the
field where they meet a tensor. Over any other field (`exact`, `interval`) they are
computed in the field itself, so exact updates stay exact and interval updates enclose
the real result.

An update is two parts, each public: `coefficients(like, step)`, everything that depends
on the step, and `tensor_update(...)`, the ops on the tensors given those 0-d
coefficients (and whether it is update 1, see `first_update_differs`). `update` checks
its arguments and composes the two; the compiled runner traces `tensor_update` once into
a graph whose inputs include the coefficients, so each optimizer is defined once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

from ...spec import functional as F
from ...spec.errors import ShapeError, UnsupportedOperation
from ...spec.fields import Ieee32ExecField, NativeFloatField
from ...spec.value import Value

__all__ = [
    "Number",
    "Schedule",
    "LearningRate",
    "OptState",
    "Optimizer",
    "ScalarMath",
    "check_real",
    "check_names",
    "require_sqrt",
    "int_power",
]

V = TypeVar("V", bound=Value)
Number: TypeAlias = int | float | Fraction
Schedule: TypeAlias = Callable[[int], Number]
# A learning rate is a number, or a schedule: the lr of the update that follows `step`
# completed updates (see `schedules`).
LearningRate: TypeAlias = Number | Schedule
# A scalar coefficient: a binary64 Python float, or a 0-d Value of the parameters' field.
Scalar: TypeAlias = Any


@dataclass(frozen=True, slots=True)
class OptState(Generic[V]):
    """An optimizer's state: the number of updates done and its per-parameter buffers.

    `buffers[slot][name]` is the buffer `slot` (e.g. "exp_avg") of parameter `name`.
    """

    step: int
    buffers: Mapping[str, Mapping[str, V]]


# -- validation ------------------------------------------------------------------------
def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, Fraction)) and not isinstance(value, bool)


def check_real(
    who: str,
    name: str,
    value: object,
    *,
    low: Number | None = None,
    high: Number | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Require `value` to be a finite real number in the given range, else ValueError
    (TypeError for a non-number) naming `who`, the argument and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise TypeError(f"{who}: {name} must be a real number, got {value!r}")
    x: Number = value
    ok = not isinstance(x, float) or math.isfinite(x)
    if low is not None:
        ok = ok and (x > low if low_open else x >= low)
    if high is not None:
        ok = ok and (x < high if high_open else x <= high)
    if not ok:
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
        raise ValueError(f"{who}: {name} must be a finite number in {lo}, {hi}, got {value!r}")


def check_lr(who: str, lr: object) -> None:
    """Require a non-negative finite number or a callable schedule."""
    if not callable(lr):
        check_real(who, "lr", lr, low=0)


def lr_at(who: str, lr: LearningRate, step: int) -> Number:
    """The learning rate of the update after `step` completed updates, checked."""
    if not callable(lr):
        return lr
    value = lr(step)
    if not _is_number(value) or not (value >= 0) or (  # `not >=` also rejects NaN
        isinstance(value, float) and math.isinf(value)
    ):
        raise ValueError(
            f"{who}: the lr schedule {lr!r} gave {value!r} at step {step}; "
            "a learning rate must be a non-negative finite number"
        )
    return value


def check_names(who: str, params: Mapping[str, V], grads: Mapping[str, V]) -> None:
    """Require `grads` to have exactly the names of `params`, with the same shapes."""
    if params.keys() != grads.keys():
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        raise ValueError(
            f"{who}: grads do not match params: missing grads for {missing}, "
            f"grads for unknown parameters {extra}"
        )
    for name, p in params.items():
        g = grads[name]
        if not isinstance(g, Value) or not isinstance(p, Value):
            what, bad = ("grad of parameter", g) if not isinstance(g, Value) else ("parameter", p)
            raise TypeError(f"{who}: {what} {name!r} is a {type(bad).__name__}, not a tensor")
        if g.shape != p.shape:
            raise ShapeError(
                f"{who}: grad of parameter {name!r} has shape {g.shape}, "
                f"the parameter has shape {p.shape}"
            )


def _check_state(who: str, slots: tuple[str, ...], params: Mapping[str, V], state: object) -> None:
    if not isinstance(state, OptState):
        raise TypeError(f"{who}: state must be an OptState from {who}.init, got {state!r}")
    if tuple(state.buffers) != slots:
        raise ValueError(
            f"{who}: the state has buffers {list(state.buffers)}, this optimizer keeps "
            f"{list(slots)}; was it made by another optimizer's init?"
        )
    for slot, named in state.buffers.items():
        if named.keys() != params.keys():
            missing = sorted(set(params) - set(named))
            extra = sorted(set(named) - set(params))
            raise ValueError(
                f"{who}: state buffer {slot!r} does not match params: missing {missing}, "
                f"unknown {extra}; was the state made by init on these params?"
            )


# -- scalar coefficients -----------------------------------------------------------------
def int_power(x: Scalar, n: int) -> Scalar:
    """x ** n for an integer n >= 1 by repeated squaring: the same roundings on every
    platform (libm's pow may differ by an ulp between platforms)."""
    result: Scalar = None
    base = x
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    return result


class ScalarMath(Generic[V]):
    """Arithmetic on an update's scalar coefficients for parameters like `like`.

    In binary floating-point fields the scalars are Python floats (binary64, as PyTorch
    computes them); elsewhere they are 0-d Values of the field. Python's operators work on
    both; `sqrt`, `power` and `value` are the rest.
    """

    def __init__(self, like: V) -> None:
        self.like = like
        self.binary = isinstance(like.field, (NativeFloatField, Ieee32ExecField))

    def num(self, x: Number) -> Scalar:
        """A hyperparameter as a scalar (a Fraction is rounded to nearest in binary64)."""
        return float(x) if self.binary else F.constant(self.like, x)

    def sqrt(self, x: Scalar) -> Scalar:
        """The square root of a scalar."""
        return math.sqrt(x) if self.binary else F.sqrt(x)

    def value(self, x: Scalar) -> V:
        """A scalar as a 0-d Value of the parameters' kind and field, to meet tensors with.

        Lifting once per update (not once per use) saves a constant conversion per op."""
        return self.like._lift(x) if self.binary else x  # F.constant, one call shorter


_SQRT_SUPPORTED: dict[str, bool] = {}  # field name -> whether sqrt(2) evaluates


def require_sqrt(who: str, like: Value) -> None:
    """Raise UnsupportedOperation unless the field of `like` has irrational square roots.

    Over `exact` a square root exists only for squares of rationals, so an optimizer that
    divides by one would fail at some data-dependent step; it fails here instead, at once.
    """
    field = like.field
    if isinstance(field, (NativeFloatField, Ieee32ExecField)):
        return
    ok = _SQRT_SUPPORTED.get(field.name)
    if ok is None:
        try:
            F.sqrt(F.constant(like, 2))
            ok = True
        except UnsupportedOperation:
            ok = False
        _SQRT_SUPPORTED[field.name] = ok
    if not ok:
        raise UnsupportedOperation(
            "sqrt",
            field.name,
            f"{who} divides by a square root of its running averages, which is irrational "
            f"in general; train over {field.name!r} with sgd, or use 'interval' to enclose",
        )


# -- the optimizer interface ----------------------------------------------------------------
class Optimizer(ABC):
    """A functional optimizer: immutable hyperparameters, explicit state, pure updates."""

    name: ClassVar[str] = "optimizer"
    needs_sqrt: ClassVar[bool] = False  # divides by a square root: not over `exact`
    lr: LearningRate

    @abstractmethod
    def slots(self) -> tuple[str, ...]:
        """The names of the per-parameter buffers this optimizer keeps."""

    @abstractmethod
    def _init_one(self, p: V) -> dict[str, V]:
        """The initial buffers of one parameter."""

    @abstractmethod
    def _coefficients(self, m: ScalarMath[V], lr: Number, t: int) -> dict[str, V]:
        """The 0-d scalar coefficients of update number `t` (1-based) with learning rate lr."""

    @abstractmethod
    def _update_one(
        self, p: V, g: V, bufs: Mapping[str, V], c: Mapping[str, V], first: bool
    ) -> tuple[V, dict[str, V]]:
        """One parameter's new value and buffers; `first`: whether this is update 1."""

    def first_update_differs(self) -> bool:
        """Whether update 1 has other ops than later updates (beyond its coefficients), so
        that a compiled update needs one program for it and one for the rest."""
        return False

    def coefficients(self, like: V, step: int) -> dict[str, V]:
        """The 0-d coefficients of the update that follows `step` completed updates, for
        parameters like `like`: everything of that update that depends on the step.

        Over binary floating-point fields they are computed in binary64 Python floats and
        rounded into the field once (as `field.constant` rounds); elsewhere in the field.
        Raises ValueError for a bad scheduled rate, UnsupportedOperation as `update` does."""
        lr = lr_at(self.name, self.lr, step)
        if self.needs_sqrt:
            require_sqrt(self.name, like)
        return self._coefficients(ScalarMath(like), lr, step + 1)

    def tensor_update(
        self,
        params: Mapping[str, V],
        grads: Mapping[str, V],
        buffers: Mapping[str, Mapping[str, V]],
        coeffs: Mapping[str, V],
        first: bool,
    ) -> tuple[dict[str, V], dict[str, dict[str, V]]]:
        """The step-independent part of an update: new parameters and buffers (by slot,
        then parameter name) from `coeffs` (as `coefficients` gives them, or any Values
        standing for them, e.g. graph inputs); `first`: whether this is update 1.

        Unchecked: `update` is the checked entry point; this one is what gets traced."""
        new_params: dict[str, V] = {}
        new_buffers: dict[str, dict[str, V]] = {slot: {} for slot in buffers}
        for pname, p in params.items():
            bufs = {slot: named[pname] for slot, named in buffers.items()}
            new_params[pname], new_bufs = self._update_one(p, grads[pname], bufs, coeffs, first)
            for slot, b in new_bufs.items():
                new_buffers[slot][pname] = b
        return new_params, new_buffers

    def init(self, params: Mapping[str, V]) -> OptState[V]:
        """The state before the first update: step 0 and initial buffers for `params`."""
        if self.needs_sqrt and params:
            require_sqrt(self.name, next(iter(params.values())))
        buffers: dict[str, dict[str, V]] = {slot: {} for slot in self.slots()}
        for pname, p in params.items():
            for slot, b in self._init_one(p).items():
                buffers[slot][pname] = b
        return OptState(0, buffers)

    def update(
        self, params: Mapping[str, V], grads: Mapping[str, V], state: OptState[V]
    ) -> tuple[dict[str, V], OptState[V]]:
        """One step: the new parameters and state. `params`, `grads` and `state` are left
        as they were; the result has the keys of `params` in their order."""
        check_names(self.name, params, grads)
        _check_state(self.name, self.slots(), params, state)
        t = state.step + 1
        if not params:
            lr_at(self.name, self.lr, state.step)  # a bad scheduled rate fails even here
            return {}, OptState(t, state.buffers)
        coeffs = self.coefficients(next(iter(params.values())), state.step)
        new_params, new_buffers = self.tensor_update(
            params, grads, state.buffers, coeffs, t == 1
        )
        return new_params, OptState(t, new_buffers)
