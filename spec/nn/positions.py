"""Phantom signatures that let mypy type shape-preserving layers inside `sequential`.

A shape-preserving layer (`SameShape`) is typed by a generic phantom method, x: S -> S.
mypy does not rename a method's type variable per argument, so two such layers in one
`sequential(...)` call would share S and force the shapes around both to be equal: a false
error as soon as the widths differ (`sequential(linear(2, 8), relu(), linear(8, 3), relu())`).
So each argument position i of `sequential` has its own phantom method `_at<i>` with its own
type variable, matched by the protocol `At<i>`; `Fits<i>[A, B]` (a Layer[A, B], or a
shape-preserving layer when A == B) is the type of position i.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar

if TYPE_CHECKING:
    from .layer import Layer

__all__ = ["SameShapeSignatures", "POSITIONS"]

POSITIONS = 16  # argument positions typed this way (sequential's overloads go this far)

_I = TypeVar("_I", contravariant=True)
_O = TypeVar("_O", covariant=True)
_A = TypeVar("_A")
_B = TypeVar("_B")

_S0 = TypeVar("_S0")
_S1 = TypeVar("_S1")
_S2 = TypeVar("_S2")
_S3 = TypeVar("_S3")
_S4 = TypeVar("_S4")
_S5 = TypeVar("_S5")
_S6 = TypeVar("_S6")
_S7 = TypeVar("_S7")
_S8 = TypeVar("_S8")
_S9 = TypeVar("_S9")
_S10 = TypeVar("_S10")
_S11 = TypeVar("_S11")
_S12 = TypeVar("_S12")
_S13 = TypeVar("_S13")
_S14 = TypeVar("_S14")
_S15 = TypeVar("_S15")


def _phantom() -> TypeError:
    return TypeError("positional shape signatures are a static-typing device, not operations")


class SameShapeSignatures:
    """Mixin of SameShape: one generic identity signature per sequential position."""

    __slots__ = ()

    def _at0(self, x: _S0, /) -> _S0:
        raise _phantom()

    def _at1(self, x: _S1, /) -> _S1:
        raise _phantom()

    def _at2(self, x: _S2, /) -> _S2:
        raise _phantom()

    def _at3(self, x: _S3, /) -> _S3:
        raise _phantom()

    def _at4(self, x: _S4, /) -> _S4:
        raise _phantom()

    def _at5(self, x: _S5, /) -> _S5:
        raise _phantom()

    def _at6(self, x: _S6, /) -> _S6:
        raise _phantom()

    def _at7(self, x: _S7, /) -> _S7:
        raise _phantom()

    def _at8(self, x: _S8, /) -> _S8:
        raise _phantom()

    def _at9(self, x: _S9, /) -> _S9:
        raise _phantom()

    def _at10(self, x: _S10, /) -> _S10:
        raise _phantom()

    def _at11(self, x: _S11, /) -> _S11:
        raise _phantom()

    def _at12(self, x: _S12, /) -> _S12:
        raise _phantom()

    def _at13(self, x: _S13, /) -> _S13:
        raise _phantom()

    def _at14(self, x: _S14, /) -> _S14:
        raise _phantom()

    def _at15(self, x: _S15, /) -> _S15:
        raise _phantom()


class At0(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 0 of sequential."""

    def _at0(self, x: _I, /) -> _O: ...


class At1(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 1 of sequential."""

    def _at1(self, x: _I, /) -> _O: ...


class At2(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 2 of sequential."""

    def _at2(self, x: _I, /) -> _O: ...


class At3(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 3 of sequential."""

    def _at3(self, x: _I, /) -> _O: ...


class At4(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 4 of sequential."""

    def _at4(self, x: _I, /) -> _O: ...


class At5(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 5 of sequential."""

    def _at5(self, x: _I, /) -> _O: ...


class At6(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 6 of sequential."""

    def _at6(self, x: _I, /) -> _O: ...


class At7(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 7 of sequential."""

    def _at7(self, x: _I, /) -> _O: ...


class At8(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 8 of sequential."""

    def _at8(self, x: _I, /) -> _O: ...


class At9(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 9 of sequential."""

    def _at9(self, x: _I, /) -> _O: ...


class At10(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 10 of sequential."""

    def _at10(self, x: _I, /) -> _O: ...


class At11(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 11 of sequential."""

    def _at11(self, x: _I, /) -> _O: ...


class At12(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 12 of sequential."""

    def _at12(self, x: _I, /) -> _O: ...


class At13(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 13 of sequential."""

    def _at13(self, x: _I, /) -> _O: ...


class At14(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 14 of sequential."""

    def _at14(self, x: _I, /) -> _O: ...


class At15(Protocol[_I, _O]):
    """Matches a shape-preserving layer at position 15 of sequential."""

    def _at15(self, x: _I, /) -> _O: ...


Fits0: TypeAlias = "Layer[_A, _B] | At0[_A, _B]"
Fits1: TypeAlias = "Layer[_A, _B] | At1[_A, _B]"
Fits2: TypeAlias = "Layer[_A, _B] | At2[_A, _B]"
Fits3: TypeAlias = "Layer[_A, _B] | At3[_A, _B]"
Fits4: TypeAlias = "Layer[_A, _B] | At4[_A, _B]"
Fits5: TypeAlias = "Layer[_A, _B] | At5[_A, _B]"
Fits6: TypeAlias = "Layer[_A, _B] | At6[_A, _B]"
Fits7: TypeAlias = "Layer[_A, _B] | At7[_A, _B]"
Fits8: TypeAlias = "Layer[_A, _B] | At8[_A, _B]"
Fits9: TypeAlias = "Layer[_A, _B] | At9[_A, _B]"
Fits10: TypeAlias = "Layer[_A, _B] | At10[_A, _B]"
Fits11: TypeAlias = "Layer[_A, _B] | At11[_A, _B]"
Fits12: TypeAlias = "Layer[_A, _B] | At12[_A, _B]"
Fits13: TypeAlias = "Layer[_A, _B] | At13[_A, _B]"
Fits14: TypeAlias = "Layer[_A, _B] | At14[_A, _B]"
Fits15: TypeAlias = "Layer[_A, _B] | At15[_A, _B]"
