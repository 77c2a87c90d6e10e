"""Losses written with ops, so they run on every field and differentiate like any model.

Each takes a prediction (logits for the classification losses) and a target of the same
shape (integer labels of the batch shape for `cross_entropy`) and reduces to a 0-d value:
"mean" (PyTorch's default: over every element, or over every example for the
cross-entropies) or "sum". Mismatched shapes raise ShapeError naming the loss and both
shapes; nothing is broadcast.

Static types: for typed values (`Tensor[Vec[Literal[1]]]`, e.g. a typed model's output)
mypy rejects a target whose shape type differs. A concrete prediction gives a
`Tensor[Scalar]`, any other Value kind a `Value[Scalar]`; with an untyped concrete
prediction both overloads match and mypy types the loss as Any.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Literal, TypeVar, overload

from .. import functional as F
from ..errors import ShapeError
from ..tensor import Tensor
from ..value import Value
from .checks import real_number
from .shapetypes import N, Scalar, Vec

__all__ = [
    "Reduction", "mse", "mae", "huber", "cross_entropy", "one_hot_cross_entropy",
    "bce_with_logits", "label_targets",
]

Reduction = Literal["mean", "sum"]
S = TypeVar("S")
V = TypeVar("V", bound=Value)


def _same_shape(loss: str, pred: Value, target: Value, names: tuple[str, str]) -> None:
    for what, v in zip(names, (pred, target), strict=True):
        if not isinstance(v, Value):
            raise TypeError(f"{loss}: {what} must be a tensor, got {type(v).__name__}")
    if pred.shape != target.shape:
        raise ShapeError(
            f"{loss}: {names[0]} shape {pred.shape} and {names[1]} shape {target.shape} differ"
        )


def _reduce(loss: str, per_element: V, reduction: str) -> V:
    if reduction == "mean":
        return F.mean(per_element) if per_element.ndim else per_element
    if reduction == "sum":
        return F.sum(per_element) if per_element.ndim else per_element
    raise ValueError(f"{loss}: reduction must be 'mean' or 'sum', got {reduction!r}")


@overload
def mse(pred: Tensor[S], target: Value[S], reduction: Reduction = "mean") -> Tensor[Scalar]: ...
@overload
def mse(pred: Value[S], target: Value[S], reduction: Reduction = "mean") -> Value[Scalar]: ...
def mse(pred: Value, target: Value, reduction: Reduction = "mean") -> Value:
    """Mean (or sum) of (pred - target)**2 (PyTorch's MSELoss)."""
    _same_shape("mse", pred, target, ("prediction", "target"))
    return _reduce("mse", F.square(pred - target), reduction)


@overload
def mae(pred: Tensor[S], target: Value[S], reduction: Reduction = "mean") -> Tensor[Scalar]: ...
@overload
def mae(pred: Value[S], target: Value[S], reduction: Reduction = "mean") -> Value[Scalar]: ...
def mae(pred: Value, target: Value, reduction: Reduction = "mean") -> Value:
    """Mean (or sum) of |pred - target| (PyTorch's L1Loss)."""
    _same_shape("mae", pred, target, ("prediction", "target"))
    return _reduce("mae", F.abs(pred - target), reduction)


@overload
def huber(
    pred: Tensor[S], target: Value[S], delta: float = 1.0, reduction: Reduction = "mean"
) -> Tensor[Scalar]: ...
@overload
def huber(
    pred: Value[S], target: Value[S], delta: float = 1.0, reduction: Reduction = "mean"
) -> Value[Scalar]: ...
def huber(
    pred: Value, target: Value, delta: float = 1.0, reduction: Reduction = "mean"
) -> Value:
    """Huber loss (PyTorch's HuberLoss): 0.5 d**2 where |d| <= delta, else
    delta * (|d| - 0.5 delta), for d = pred - target; delta must be positive."""
    if not real_number(f"huber(delta={delta!r})", "delta", delta) > 0:
        raise ValueError(f"huber: delta must be positive, got {delta!r}")
    _same_shape("huber", pred, target, ("prediction", "target"))
    a = F.abs(pred - target)
    # With q = min(|d|, delta): 0.5 q**2 + delta (|d| - q) is exactly the piecewise form,
    # in rational ops only.
    q = F.minimum(a, Fraction(delta))
    return _reduce("huber", F.square(q) * Fraction(1, 2) + (a - q) * Fraction(delta), reduction)


@overload
def cross_entropy(
    logits: Tensor[Vec[N]], labels: Value[Scalar], reduction: Reduction = "mean"
) -> Tensor[Scalar]: ...
@overload
def cross_entropy(
    logits: Value[Vec[N]], labels: Value[Scalar], reduction: Reduction = "mean"
) -> Value[Scalar]: ...
def cross_entropy(logits: Value, labels: Value, reduction: Reduction = "mean") -> Value:
    """Cross-entropy of logits (..., C) against integer class labels (...) (PyTorch's
    CrossEntropyLoss): -log_softmax(logits)[label], averaged over examples. Labels are a
    tensor of integer values in [0, C) (ValueError naming a bad one)."""
    for what, v in (("logits", logits), ("labels", labels)):
        if not isinstance(v, Value):
            raise TypeError(f"cross_entropy: {what} must be a tensor, got {type(v).__name__}")
    return _nll("cross_entropy", logits, label_targets(labels, logits.shape), reduction)


def label_targets(labels: V, logits_shape: Sequence[int]) -> V:
    """The one-hot rows that `cross_entropy` scores logits of `logits_shape` against:
    `labels` must have shape logits_shape[:-1] and hold integers in [0, C) (ShapeError or
    ValueError naming the bad one). `one_hot_cross_entropy(logits, label_targets(labels,
    logits.shape))` is `cross_entropy(logits, labels)`, bit for bit."""
    shape = tuple(logits_shape)
    if len(shape) < 1 or labels.shape != shape[:-1]:
        raise ShapeError(
            f"cross_entropy: logits shape {shape} needs labels of shape "
            f"{shape[:-1]} (one per example), got labels shape {labels.shape}"
        )
    try:
        return F.one_hot(labels, shape[-1])
    except ValueError as e:  # a label that is not an integer in [0, C): say which loss
        raise ValueError(f"cross_entropy: {e}") from None


@overload
def one_hot_cross_entropy(
    logits: Tensor[Vec[N]], targets: Value[Vec[N]], reduction: Reduction = "mean"
) -> Tensor[Scalar]: ...
@overload
def one_hot_cross_entropy(
    logits: Value[Vec[N]], targets: Value[Vec[N]], reduction: Reduction = "mean"
) -> Value[Scalar]: ...
def one_hot_cross_entropy(logits: Value, targets: Value, reduction: Reduction = "mean") -> Value:
    """Cross-entropy of logits (..., C) against target distributions (..., C), e.g. one-hot
    rows: -sum(targets * log_softmax(logits)) per example, averaged over examples."""
    _same_shape("one_hot_cross_entropy", logits, targets, ("logits", "targets"))
    if logits.ndim < 1:
        raise ShapeError("one_hot_cross_entropy: logits must have a class axis, got shape ()")
    return _nll("one_hot_cross_entropy", logits, targets, reduction)


def _nll(loss: str, logits: V, targets: Value, reduction: str) -> V:
    per_example = -F.sum(targets * F.log_softmax(logits, -1), -1)
    return _reduce(loss, per_example, reduction)


@overload
def bce_with_logits(
    logits: Tensor[S], targets: Value[S], reduction: Reduction = "mean"
) -> Tensor[Scalar]: ...
@overload
def bce_with_logits(
    logits: Value[S], targets: Value[S], reduction: Reduction = "mean"
) -> Value[Scalar]: ...
def bce_with_logits(logits: Value, targets: Value, reduction: Reduction = "mean") -> Value:
    """Binary cross-entropy on logits (PyTorch's BCEWithLogitsLoss), in the stable form
    relu(x) - x * y + softplus(-|x|), averaged over every element."""
    _same_shape("bce_with_logits", logits, targets, ("logits", "targets"))
    x = logits
    per_element = F.relu(x) - x * targets + F.softplus(-F.abs(x))
    return _reduce("bce_with_logits", per_element, reduction)


