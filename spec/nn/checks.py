"""Validation of layer hyperparameters at construction: a ValueError naming the layer and
the argument, never a failure deep inside a later forward pass."""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["positive_int", "real_number", "call_text"]


def call_text(layer: str, **args: object) -> str:
    """How errors name a layer being built: "linear(in_features=0, out_features=8)"."""
    return f"{layer}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def positive_int(where: str, name: str, value: object) -> int:
    """`value` if it is a positive int (bools rejected), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return value


def real_number(where: str, name: str, value: object) -> Fraction:
    """`value` (an int, finite float or Fraction) as its exact rational value, else ValueError.

    Layers keep hyperparameters as given and use these exact values for their constants, so
    each field rounds (or keeps) them by its own rule.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ValueError(f"{where}: {name} must be a real number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value!r}")
    return Fraction(value)
