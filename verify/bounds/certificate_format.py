"""The robustness-certificate format: reading a parsed JSON document field by field.

`read_fields(doc)` accepts exactly the fields of version 2 (an unknown or missing field
is an error, as is a value of the wrong type: a label written `true` is not class 1) and
returns them as Python values (rationals as `Fraction`). It checks the form only; what
the numbers mean is checked by `certificate.check_certificate` against the model.

Fields (all required):

- `format` "torchlean.robustness-certificate", `version` 2;
- `fingerprint`: 64 lowercase hex digits (sha256 of the graph and the parameters);
- `input_shape`: the example's shape without the batch axis (positive ints);
- `label`: the class claimed robust (an int, not a bool); `method`: "crown" or "ibp"
  (how the producer bounded; informational, but it must be one of these);
- `box`: {"lower": [...], "upper": [...]}: the input box, rationals;
- `claims`: [{"node": id, "lower": [...], "upper": [...]}, ...]: the claimed interval of
  every value a non-linear node reads, ordered by node id;
- `spec`: rows of C, the margins y_label - y_j (j != label), rationals;
- `margin_lower`: the claimed lower bound of each row over the box; `certified`: a bool,
  whether every claimed margin bound is > 0.

A rational is a string "p" or "p/q" (q > 0), each part at most `MAX_DIGITS` digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ...spec.errors import DataFormatError

__all__ = ["FORMAT", "VERSION", "METHODS", "MAX_DIGITS", "Fields", "Claim", "read_fields",
           "rational", "rational_text"]

FORMAT = "torchlean.robustness-certificate"
VERSION = 2
METHODS = ("crown", "ibp")
MAX_DIGITS = 400          # a binary64 number as p/q needs at most 17 + 324 digits
MAX_RANK = 8
MAX_DIM = 2**20
_RATIONAL = re.compile(rf"(-?[0-9]{{1,{MAX_DIGITS}}})(?:/([0-9]{{1,{MAX_DIGITS}}}))?")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOP = ("format", "version", "fingerprint", "input_shape", "label", "method", "box",
        "claims", "spec", "margin_lower", "certified")


@dataclass(frozen=True)
class Claim:
    """The claimed interval of node `node`'s value, flattened row-major."""

    node: int
    lower: list[Fraction]
    upper: list[Fraction]


@dataclass(frozen=True)
class Fields:
    """Every field of a certificate, read and type-checked."""

    fingerprint: str
    input_shape: tuple[int, ...]
    label: int
    method: str
    box: tuple[list[Fraction], list[Fraction]]
    claims: list[Claim]
    spec: list[list[Fraction]]
    margin_lower: list[Fraction]
    certified: bool


def rational_text(q: Fraction) -> str:
    """`q` as the format writes it: "p" or "p/q" in lowest terms."""
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def rational(t: Any, where: str) -> Fraction:
    """Read a rational string "p" or "p/q" (q > 0, at most MAX_DIGITS digits each)."""
    m = _RATIONAL.fullmatch(t) if isinstance(t, str) else None
    if m is None:
        shown = repr(t)[:40] if isinstance(t, str) else type(t).__name__
        raise DataFormatError(where, f'expected a rational string "p" or "p/q" (at most '
                                     f"{MAX_DIGITS} digits each), got {shown}")
    den = int(m.group(2) or 1)
    if den == 0:
        raise DataFormatError(where, f"zero denominator in {t!r}")
    return Fraction(int(m.group(1)), den)


def _object(v: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise DataFormatError(where, f"expected an object, got {type(v).__name__}")
    unknown = sorted(set(v) - set(keys))
    if unknown:
        raise DataFormatError(where, f"unknown field {unknown[0]!r} (expected exactly "
                                     f"{', '.join(keys)})")
    for k in keys:
        if k not in v:
            raise DataFormatError(where, f"missing field {k!r}")
    return v


def _int(v: Any, where: str, low: int, high: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise DataFormatError(where, f"expected an integer, got {type(v).__name__}")
    if not low <= v <= high:
        raise DataFormatError(where, f"expected an integer in [{low}, {high}], got {v}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise DataFormatError(where, f"expected a list, got {type(v).__name__}")
    return v


def _rationals(v: Any, where: str) -> list[Fraction]:
    return [rational(t, f"{where}[{i}]") for i, t in enumerate(_list(v, where))]


def _bounds(v: Any, where: str) -> tuple[list[Fraction], list[Fraction]]:
    d = _object(v, ("lower", "upper"), where)
    lo, hi = _rationals(d["lower"], f"{where}.lower"), _rationals(d["upper"], f"{where}.upper")
    if len(lo) != len(hi):
        raise DataFormatError(where, f"lower has {len(lo)} numbers, upper {len(hi)}")
    return lo, hi


def read_fields(doc: Any, where: str = "certificate") -> Fields:
    """The certificate's fields, each of its required type; DataFormatError naming the
    field otherwise."""
    d = _object(doc, _TOP, where)
    if d["format"] != FORMAT:
        raise DataFormatError(f"{where}.format", f"expected {FORMAT!r}")
    version = _int(d["version"], f"{where}.version", 0, 2**31)
    if version != VERSION:
        raise DataFormatError(f"{where}.version", f"this checker reads version {VERSION}, "
                                                  f"got {version} (produce it again)")
    fp = d["fingerprint"]
    if not isinstance(fp, str) or not _HEX64.fullmatch(fp):
        raise DataFormatError(f"{where}.fingerprint", "expected 64 lowercase hex digits")
    shape = _list(d["input_shape"], f"{where}.input_shape")
    if not 1 <= len(shape) <= MAX_RANK:
        raise DataFormatError(f"{where}.input_shape", f"expected 1 to {MAX_RANK} dims")
    dims = tuple(_int(s, f"{where}.input_shape[{i}]", 1, MAX_DIM) for i, s in enumerate(shape))
    method = d["method"]
    if method not in METHODS:
        raise DataFormatError(f"{where}.method", f"expected one of {', '.join(METHODS)}")
    claims = []
    for i, c in enumerate(_list(d["claims"], f"{where}.claims")):
        at = f"{where}.claims[{i}]"
        entry = _object(c, ("node", "lower", "upper"), at)
        node = _int(entry["node"], f"{at}.node", 0, 2**31)
        lo, hi = _bounds({"lower": entry["lower"], "upper": entry["upper"]}, at)
        claims.append(Claim(node, lo, hi))
    spec = [_rationals(r, f"{where}.spec[{i}]") for i, r in
            enumerate(_list(d["spec"], f"{where}.spec"))]
    certified = d["certified"]
    if not isinstance(certified, bool):
        raise DataFormatError(f"{where}.certified", f"expected true or false, got "
                                                    f"{type(certified).__name__}")
    return Fields(
        fingerprint=fp, input_shape=dims,
        label=_int(d["label"], f"{where}.label", 0, 2**31), method=method,
        box=_bounds(d["box"], f"{where}.box"), claims=claims, spec=spec,
        margin_lower=_rationals(d["margin_lower"], f"{where}.margin_lower"),
        certified=certified,
    )
