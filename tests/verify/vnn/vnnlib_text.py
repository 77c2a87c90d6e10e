"""VNN-LIB properties written as text in the engine tests."""

from __future__ import annotations

from torchlean.verify.vnn.vnnlib import Property, parse_vnnlib


def prop(text: str) -> Property:
    """The property that VNN-LIB `text` states (as if read from a file "t.vnnlib")."""
    return parse_vnnlib(iter(enumerate(text.splitlines(keepends=True), start=1)), "t.vnnlib")


def header(n: int, m: int, lo: str = "-1", hi: str = "1") -> str:
    """Declarations of X_0..X_{n-1} and Y_0..Y_{m-1}, each X bounded to [lo, hi]."""
    return ("".join(f"(declare-const X_{i} Real)\n" for i in range(n))
            + "".join(f"(declare-const Y_{j} Real)\n" for j in range(m))
            + "".join(f"(assert (<= {lo} X_{i} {hi}))\n" for i in range(n)))
