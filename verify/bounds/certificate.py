"""Robustness certificates: produced with the bound engine, re-checked exactly over Fraction.

    cert = certify_robustness(net, net.params, x, eps="1/100", label=1, path="c.json")
    check_certificate("c.json", net, net.params, x=x, eps="1/100", label=1)
    # CheckResult(accepted=True, certified=True, reason="...")

A certificate is a JSON document (format and fields: `certificate_format`). It states:
for every input in `box`, each margin y_label - y_j (the rows of `spec`) is at least its
`margin_lower`; `certified` says whether all of those are > 0, i.e. whether the label is
robust on the box. To make that checkable it also claims, for every value that a
non-linear node (relu, tanh, ...) reads, an interval containing it (`claims`).

Why an accepted certificate is true (`check_certificate`). The checker trusts the graph
tracer (the traced IR is the model's meaning), the op table's exact forward and VJP rules
and its interval forward / VJP rules for smooth ops, `Fraction`, and `checker`,
`certificate_rules`, `certificate_format` and the checking half of this file (about 900
lines); from the producer it takes nothing but the claims. It

1. parses the file with limits on size, nesting and number length, refusing duplicate
   keys, NaN / Infinity and every field it does not know (`_parse_document`,
   `certificate_format.read_fields`);
2. recomputes the fingerprint (graph structure and exact parameter values) and, when the
   caller says what it expects (`x`, `eps`, `label`), compares the box and the label;
3. walks the graph in topological order over exact rationals (`checker.ExactWalk`): each
   claimed interval must contain an exact enclosure of its value computed from the box
   and the claims already accepted (exact interval arithmetic first; exact
   back-substitution through the relaxation lines, which the checker derives itself from
   the accepted intervals, where that is not enough). By induction each accepted claim
   contains every value its node takes on the box;
4. requires `spec` to be exactly the margin rows for `label`, bounds each row the same
   way, requires each claimed margin to be <= that exact bound, and `certified` to be
   true exactly when every claimed margin is > 0.

Every step is exact (or a rigorous interval enclosure for smooth functions), so a float
slip in the producer can only make the checker reject. A bad file of any shape or size
gives `accepted=False` and the reason, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, cast

import numpy as np

from ...runtime.atomic_write import write_atomically
from ...runtime.graph import Graph
from ...spec import strict_json
from ...spec.errors import DataFormatError, TorchLeanError, UnsupportedOperation
from . import propagate as _bounds
from .certificate_format import FORMAT, METHODS, VERSION, rational, rational_text, read_fields
from .checker import ExactWalk, Obj, Rejected, Settle, exact_array

__all__ = ["Certificate", "CheckResult", "certify_robustness", "check_certificate",
           "model_fingerprint", "FORMAT", "VERSION", "MAX_BYTES", "MAX_DEPTH"]

MAX_BYTES = 64 * 2**20          # a certificate file larger than this is refused unread
MAX_DEPTH = 32                  # nesting of JSON arrays / objects (the format needs 4)


@dataclass(frozen=True)
class Certificate:
    """A produced certificate: its JSON document and whether it certifies robustness."""

    doc: dict[str, Any]

    @property
    def certified(self) -> bool:
        """Whether every claimed margin lower bound is > 0."""
        return bool(self.doc["certified"])

    @property
    def margin_lower(self) -> list[Fraction]:
        """The claimed lower bounds of y_label - y_j."""
        return [rational(t, "margin_lower") for t in self.doc["margin_lower"]]

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically (a temporary file, then a rename)."""
        write_atomically(path, lambda f: json.dump(self.doc, f))


@dataclass(frozen=True)
class CheckResult:
    """The checker's verdict: `accepted` (every claim holds), `certified` (accepted, and
    the certificate states robustness), and the reason."""

    accepted: bool
    reason: str
    certified: bool = False


# -- reading ------------------------------------------------------------------------
def _parse_document(text: str | bytes, where: str) -> Any:
    """Parse untrusted JSON with the library's strict reader: at most MAX_BYTES bytes and
    MAX_DEPTH levels, no duplicate keys, no NaN / Infinity, no runaway digit strings;
    DataFormatError naming `where` (and the line and column) otherwise."""
    return strict_json.loads(text, where, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)


# -- exact numbers ------------------------------------------------------------------
def _float_dn(q: Fraction) -> Fraction:
    """The largest binary64 number <= q, as a Fraction (q itself beyond binary64's range)."""
    if abs(q) > 2**1000:
        return q
    f = float(q)
    return Fraction(float(np.nextafter(f, -np.inf)) if Fraction(f) > q else f)


def _float_up(q: Fraction) -> Fraction:
    return -_float_dn(-q)


def _eps(eps: Any) -> Fraction:
    e = rational(eps, "eps") if isinstance(eps, str) else Fraction(eps)
    if e < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    return e


def _ball(x: Any, eps: Any) -> tuple[Obj, Obj]:
    xq, e = exact_array(_bounds._host(x)), _eps(eps)
    return xq - e, xq + e


def model_fingerprint(graph: Graph, params: Mapping[str, Any]) -> str:
    """sha256 of the graph structure and every parameter's name, shape and exact values."""
    h = hashlib.sha256(graph.to_json(indent=None).encode())
    for name in sorted(params):
        v = np.asarray(_bounds._host(params[name]))
        h.update(f"|{name}|{v.shape}|".encode())
        h.update(",".join(float(x).hex() for x in v.reshape(-1)).encode())
    return h.hexdigest()


def _margin_rows(label: int, out_shape: tuple[int, ...]) -> list[Obj]:
    """The rows y_label - y_j (j != label) as coefficient arrays of the output's shape."""
    classes = int(np.prod(out_shape))
    rows = []
    for j in range(classes):
        if j != label:
            row = np.array([Fraction(int(i == label) - int(i == j)) for i in range(classes)],
                           dtype=object)
            rows.append(row.reshape(out_shape))
    return rows


# -- settling claims --------------------------------------------------------------------
def _checking(walk: ExactWalk, claims: Mapping[int, tuple[Obj, Obj]]) -> Settle:
    """Accept node z's claim only if it contains z's exact enclosure: interval bounds,
    then exact back-substitution for each end the interval bound does not confirm."""
    def settle(z: int, lo: Obj, hi: Obj) -> tuple[Obj, Obj]:
        c_lo, c_hi = claims[z]
        lo, hi = lo.copy(), hi.copy()
        for idx in np.ndindex(lo.shape):
            if c_lo[idx] > lo[idx]:
                lo[idx] = max(lo[idx], walk.unit_lower(z, idx, 1))
            if c_hi[idx] < hi[idx]:
                hi[idx] = min(hi[idx], -walk.unit_lower(z, idx, -1))
            if c_lo[idx] > lo[idx] or c_hi[idx] < hi[idx]:
                flat = int(np.ravel_multi_index(idx, lo.shape)) if lo.shape else 0
                raise Rejected(f"claim for node %{z}, item {flat}: [{c_lo[idx]}, "
                               f"{c_hi[idx]}] does not contain the exact enclosure "
                               f"[{lo[idx]}, {hi[idx]}]")
        return lo, hi
    return settle


def _producing(walk: ExactWalk, engine: Mapping[int, tuple[Obj, Obj]], backsub: bool,
               claims: dict[int, tuple[Obj, Obj]]) -> Settle:
    """Choose each claim (untrusted): the engine's interval where the exact enclosure
    confirms it, else the exact enclosure rounded outward to binary64 numbers."""
    def settle(z: int, lo: Obj, hi: Obj) -> tuple[Obj, Obj]:
        cand = engine.get(z)
        deep = backsub and (cand is not None or walk.mixes_relaxed(z))
        c_lo, c_hi = lo.copy(), hi.copy()
        for idx in np.ndindex(lo.shape):
            for sign, c, ib in ((1, c_lo, lo), (-1, c_hi, hi)):
                want = None if cand is None else cand[0 if sign == 1 else 1][idx]
                if want is not None and sign * want <= sign * ib[idx]:
                    c[idx] = want
                    continue
                best: Fraction = sign * cast(Fraction, ib[idx])
                if deep:
                    best = max(best, walk.unit_lower(z, idx, sign))
                ok = want is not None and sign * want <= best
                c[idx] = want if ok else sign * _float_dn(best)
        claims[z] = (c_lo, c_hi)
        return _checking(walk, claims)(z, lo, hi)
    return settle


# -- producing --------------------------------------------------------------------------
def _engine_intervals(g: Graph, params: Mapping[str, Any], box: tuple[Obj, Obj],
                      method: str) -> dict[int, tuple[Obj, Obj]]:
    """What the bound engine (untrusted) offers: an interval per value a non-linear node
    reads, by node id; empty where the engine cannot bound this graph."""
    if method != "crown":
        return {}
    lo = np.array([float(_float_dn(q)) for q in box[0].flat]).reshape(box[0].shape)
    hi = np.array([float(_float_up(q)) for q in box[1].flat]).reshape(box[1].shape)
    try:
        _, pre = _bounds.crown_with_layers(g, params, lo, hi)
    except (TorchLeanError, ValueError, NotImplementedError):
        return {}
    out = {}
    for z, (zl, zh) in pre.items():
        if np.all(np.isfinite(zl)) and np.all(np.isfinite(zh)):
            shape = g.nodes[z].shape
            out[z] = (exact_array(zl).reshape(shape), exact_array(zh).reshape(shape))
    return out


def certify_robustness(model: Any, params: Mapping[str, Any], x: Any, eps: Any, label: int,
                       method: str = "crown", path: str | os.PathLike[str] | None = None
                       ) -> Certificate:
    """Bound the margins y_label - y_j over the L-inf ball of radius `eps` around `x` (one
    example, without batch axis); the certificate (written to `path` if given) states them.

    `eps` is an int, a float (read exactly), a Fraction or a "p/q" string. `method`
    "crown" takes intermediate intervals from the bound engine (CROWN) and tightens what
    it cannot bound by exact back-substitution; "ibp" uses exact interval bounds only.
    Raises UnsupportedOperation for a graph with an op the checker has no rule for.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    box = _ball(x, eps)
    shape = (1,) + box[0].shape
    box = (box[0].reshape(shape), box[1].reshape(shape))
    g = _bounds.as_graph(model, params, shape)
    out_shape = g.nodes[g.outputs[0][1]].shape
    classes = int(np.prod(out_shape))
    if not (isinstance(label, int) and not isinstance(label, bool) and 0 <= label < classes):
        raise ValueError(f"label {label!r} is not a class of {classes}")
    walk = ExactWalk(g, params, box, _bounds._host)
    claims: dict[int, tuple[Obj, Obj]] = {}
    engine = _engine_intervals(g, params, box, method)
    walk.run(_producing(walk, engine, method == "crown", claims))
    out = g.outputs[0][1]
    margins = []
    for row in _margin_rows(label, out_shape):
        m = walk.ibp_lower(out, row)
        if method == "crown":
            m = max(m, walk.lower_bound(out, row))
        margins.append(_float_dn(m))
    doc = {
        "format": FORMAT, "version": VERSION,
        "fingerprint": model_fingerprint(g, params),
        "input_shape": list(shape[1:]), "label": int(label), "method": method,
        "box": {"lower": [rational_text(q) for q in box[0].flat],
                "upper": [rational_text(q) for q in box[1].flat]},
        "claims": [{"node": z, "lower": [rational_text(q) for q in claims[z][0].flat],
                    "upper": [rational_text(q) for q in claims[z][1].flat]}
                   for z in walk.claim_nodes()],
        "spec": [[rational_text(q) for q in row.flat] for row in _margin_rows(label,
                                                                                out_shape)],
        "margin_lower": [rational_text(q) for q in margins],
        "certified": all(q > 0 for q in margins),
    }
    cert = Certificate(doc)
    if path is not None:
        cert.write(path)
    return cert


# -- checking ---------------------------------------------------------------------------
def _check(text: bytes, where: str, model: Any, params: Mapping[str, Any],
           expect_box: tuple[Obj, Obj] | None, expect_label: int | None) -> CheckResult:
    f = read_fields(_parse_document(text, where), where)
    shape = (1, *f.input_shape)
    try:
        g = _bounds.as_graph(model, params, shape)
    except (TorchLeanError, ValueError, TypeError, KeyError) as e:
        return CheckResult(False, f"the model cannot be traced at input shape {shape}: {e}")
    if f.fingerprint != model_fingerprint(g, params):
        return CheckResult(False, "fingerprint mismatch: the certificate is for another model "
                                  "or other parameter values")
    n_in = int(np.prod(shape))
    if len(f.box[0]) != n_in:
        return CheckResult(False, f"box: {len(f.box[0])} numbers per bound, the input has "
                                  f"{n_in}")
    box = (np.array(f.box[0], dtype=object).reshape(shape),
           np.array(f.box[1], dtype=object).reshape(shape))
    if any(lo > hi for lo, hi in zip(f.box[0], f.box[1], strict=True)):
        return CheckResult(False, "box: a lower bound exceeds its upper bound")
    if expect_box is not None and not (
            expect_box[0].shape == shape[1:] and np.array_equal(expect_box[0].reshape(shape),
                                                                box[0])
            and np.array_equal(expect_box[1].reshape(shape), box[1])):
        return CheckResult(False, "box: not the L-inf ball of the expected x and eps")
    if expect_label is not None and f.label != expect_label:
        return CheckResult(False, f"label: the certificate is for class {f.label}, "
                                  f"expected {expect_label}")
    walk = ExactWalk(g, params, box, _bounds._host)
    need = walk.claim_nodes()
    if [c.node for c in f.claims] != need:
        return CheckResult(False, f"claims: expected one per value a non-linear node reads, "
                                  f"for nodes {need}, got {[c.node for c in f.claims]}")
    claims: dict[int, tuple[Obj, Obj]] = {}
    for i, c in enumerate(f.claims):
        node_shape = g.nodes[c.node].shape
        if len(c.lower) != int(np.prod(node_shape)):
            return CheckResult(False, f"claims[{i}]: node %{c.node} has "
                                      f"{int(np.prod(node_shape))} values, the claim "
                                      f"{len(c.lower)}")
        claims[c.node] = (np.array(c.lower, dtype=object).reshape(node_shape),
                          np.array(c.upper, dtype=object).reshape(node_shape))
    out = g.outputs[0][1]
    out_shape = g.nodes[out].shape
    classes = int(np.prod(out_shape))
    if f.label >= classes:
        return CheckResult(False, f"label: {f.label} is not a class of {classes}")
    walk.run(_checking(walk, claims))
    rows = _margin_rows(f.label, out_shape)
    if f.spec != [list(r.flat) for r in rows]:
        return CheckResult(False, f"spec: not the margin rows y_{f.label} - y_j, j != "
                                  f"{f.label}: the certificate claims another property")
    if len(f.margin_lower) != len(rows):
        return CheckResult(False, f"margin_lower: expected {len(rows)} numbers")
    for r, (claimed, row) in enumerate(zip(f.margin_lower, rows, strict=True)):
        if claimed > walk.ibp_lower(out, row):
            exact = walk.lower_bound(out, row)
            if claimed > exact:
                return CheckResult(False, f"margin_lower[{r}]: claimed {claimed} exceeds "
                                          f"the exact bound {exact}")
    if f.certified != all(q > 0 for q in f.margin_lower):
        return CheckResult(False, "certified does not match the claimed margins")
    verdict = (f"robust: label {f.label} on the box" if f.certified
               else "bounds valid, not certified robust")
    return CheckResult(True, f"all claims re-derived exactly: {verdict}", f.certified)


def check_certificate(path: str | os.PathLike[str], model: Any, params: Mapping[str, Any],
                      *, x: Any = None, eps: Any = None, label: int | None = None
                      ) -> CheckResult:
    """Re-check a certificate file exactly over Fraction against (model, params).

    With `x` and `eps` the box must be exactly the L-inf ball of radius `eps` around `x`;
    with `label` the certificate must be about that class. Never raises for a bad
    certificate: malformed, tampered, mismatched or unsupported certificates give
    `accepted=False` with the reason.
    """
    if (x is None) != (eps is None):
        raise ValueError("give both x and eps, or neither")
    expect_box = None if x is None else _ball(x, eps)
    where = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_BYTES + 1)
        return _check(text, where, model, params, expect_box, label)
    except OSError as e:
        return CheckResult(False, f"cannot read {where}: {e.strerror or e}")
    except Rejected as e:
        return CheckResult(False, str(e))
    except (DataFormatError, UnsupportedOperation) as e:
        return CheckResult(False, f"{type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001  (fail closed: a checker error is a rejection)
        return CheckResult(False, f"checker error ({type(e).__name__}: {e}); not accepted")
