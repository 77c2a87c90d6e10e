"""One definition, five semantics: a tiny network evaluated over every scalar field.

The same three lines of model code run in binary64, native float32, bit-reproducible
IEEE binary32 (`ieee32exec`), exact rationals and rigorous intervals. The interval
result encloses the exact one; `ieee32exec` is the same on every machine.

    python examples/quickstart/spec_demo.py
"""

from __future__ import annotations

from fractions import Fraction

import torchlean as tl
from torchlean.spec import FIELD_NAMES, Tensor
from torchlean.spec import functional as F

W1 = [[Fraction(1, 2), Fraction(-1, 4)], [Fraction(3, 4), Fraction(1, 8)]]
B1 = [Fraction(1, 10), Fraction(-1, 5)]
W2 = [[Fraction(1)], [Fraction(-3, 2)]]
X = [[Fraction(1, 3), Fraction(2, 3)]]


def network(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor) -> Tensor:
    """A 2-2-1 ReLU network, written once with the op table's functions."""
    return F.relu(x @ w1 + b1) @ w2


def main() -> None:
    """Evaluate the network over every field and print the results side by side."""
    for dtype in FIELD_NAMES:
        args = [tl.tensor(v, dtype) for v in (X, W1, B1, W2)]
        y = network(*args)
        print(f"{dtype:>10}: {y.item()!s}")


if __name__ == "__main__":
    main()
