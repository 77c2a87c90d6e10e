"""Robustness certificates: produced with float bounds, re-checked exactly over Fraction.

    cert = certify_robustness(net, net.params, x, eps="1/100", label=1, path="c.json")
    check_certificate("c.json", net, net.params)     # CheckResult(accepted=True, ...)

A certificate is JSON (format "torchlean.robustness-certificate", version 1):

- `fingerprint`: sha256 of the traced graph's canonical JSON (the model structure), each
  parameter's name, shape and exact float.hex values;
- `input_shape`, `label`, `method`; `box`: `lower` / `upper` lists of rationals "p/q";
- `layers`: for every relu / leaky_relu, in graph order, `lower` / `upper` rationals: the
  claimed bounds on its pre-activation;
- `spec`: the rows of C (y_label - y_j) as rationals; `margin_lower`: the claimed lower bound
  of each row; `certified`: whether every claimed margin bound is > 0.

Why the checker is sound (`check_certificate`). It trusts only the graph tracer (the IR is
the model's semantics), Python's Fraction and this module's ~150 lines; nothing from the
producer but the claims. It (1) recomputes the fingerprint and rejects a mismatch; (2)
rewrites the graph exactly, over Fractions, as a chain z_k = W_k h_(k-1) + b_k,
h_k = act_k(z_k), y = W h_L + b (rejecting any op outside that form); (3) for k = 1, 2, ...
computes from the box and the ALREADY CHECKED claims for layers < k an exact enclosure of
z_k: both exact IBP and exact CROWN (back-substitution with the adaptive ReLU lines, each
of which bounds act(z) for z in the claimed interval) and accepts the layer's claim only if
it contains that enclosure. By induction every claimed interval contains z_k for every x in
the box. (4) the same back-substitution for each spec row gives an exact lower bound of the
margin valid on the whole box; the claim must be <= it, and `certified` must agree with
(claims > 0). Every step is exact rational arithmetic, so a float slip in the producer can
only make the checker reject, never accept something false.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..runtime.graph import Graph
from ..runtime.graph.encoding import Literal
from ..spec import strict_json
from ..spec.errors import DataFormatError, UnsupportedOperation
from . import bounds as _bounds

__all__ = ["Certificate", "CheckResult", "certify_robustness", "check_certificate",
           "model_fingerprint", "FORMAT", "VERSION"]

FORMAT = "torchlean.robustness-certificate"
VERSION = 1
Obj = np.ndarray[Any, Any]
_RATIONAL = re.compile(r"(-?[0-9]{1,4000})(?:/([0-9]{1,4000}))?")
_PWL = ("relu", "leaky_relu")


@dataclass(frozen=True)
class Certificate:
    """A produced certificate: its JSON document and whether it certifies robustness."""

    doc: dict[str, Any]

    @property
    def certified(self) -> bool:
        return bool(self.doc["certified"])

    @property
    def margin_lower(self) -> list[Fraction]:
        """The claimed lower bounds of y_label - y_j."""
        return [_parse(t, "margin_lower") for t in self.doc["margin_lower"]]

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically (a temporary file, then a rename)."""
        target = os.fspath(path)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(target) or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.doc, f)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise


@dataclass(frozen=True)
class CheckResult:
    """The checker's verdict and its reason."""

    accepted: bool
    reason: str


# -- exact numbers --------------------------------------------------------------------
def _text(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _parse(t: Any, where: str) -> Fraction:
    if not isinstance(t, str) or not _RATIONAL.fullmatch(t):
        raise DataFormatError(where, f'expected a rational "p" or "p/q", got {str(t)[:40]!r}')
    m = _RATIONAL.fullmatch(t)
    assert m is not None
    den = int(m.group(2) or 1)
    if den == 0:
        raise DataFormatError(where, f"zero denominator in {t!r}")
    return Fraction(int(m.group(1)), den)


def _rationals(doc: Mapping[str, Any], key: str, n: int, where: str) -> list[Fraction]:
    if key not in doc:
        raise DataFormatError(where, f"missing field {key!r}")
    v = doc[key]
    if not isinstance(v, list) or len(v) != n:
        raise DataFormatError(f"{where}.{key}", f"expected a list of {n} rationals")
    return [_parse(t, f"{where}.{key}[{i}]") for i, t in enumerate(v)]


def _frac_array(a: Any) -> Obj:
    flat = [Fraction(float(v)) for v in np.asarray(a, dtype=np.float64).reshape(-1)]
    return np.array(flat + [Fraction(0)], dtype=object)[:-1].reshape(np.shape(a))


def _float_dn(q: Fraction) -> float:
    f = float(q)
    return float(np.nextafter(f, -np.inf)) if Fraction(f) > q else f


def _float_up(q: Fraction) -> float:
    f = float(q)
    return float(np.nextafter(f, np.inf)) if Fraction(f) < q else f


def model_fingerprint(graph: Graph, params: Mapping[str, Any]) -> str:
    """sha256 of the graph structure and every parameter's name, shape and exact values."""
    h = hashlib.sha256(graph.to_json(indent=None).encode())
    for name in sorted(params):
        v = np.asarray(_bounds._host(params[name]))
        h.update(f"|{name}|{v.shape}|".encode())
        h.update(",".join(float(x).hex() for x in v.reshape(-1)).encode())
    return h.hexdigest()


# -- producing --------------------------------------------------------------------------
def certify_robustness(model: Any, params: Mapping[str, Any], x: Any, eps: Any, label: int,
                       method: str = "crown", path: str | os.PathLike[str] | None = None
                       ) -> Certificate:
    """Bound the margins y_label - y_j over the L-inf ball of radius `eps` around `x` (one
    example, without batch axis); the certificate (written to `path` if given) states them.

    `eps` is an int, a float (read exactly), a Fraction or a "p/q" string.
    """
    if method not in ("ibp", "crown"):
        raise ValueError(f"method must be 'ibp' or 'crown', got {method!r}")
    e = _parse(eps, "eps") if isinstance(eps, str) else Fraction(eps)
    if e < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    xq = _frac_array(_bounds._host(x))
    shape = (1,) + xq.shape
    lo_q, hi_q = [v - e for v in xq.reshape(-1)], [v + e for v in xq.reshape(-1)]
    lo = np.array([_float_dn(q) for q in lo_q]).reshape(shape)
    hi = np.array([_float_up(q) for q in hi_q]).reshape(shape)
    g = _bounds.as_graph(model, params, shape)
    classes = int(np.prod(g.nodes[g.outputs[0][1]].shape[1:]))
    C = _bounds.margin_matrix(label, classes)
    pre: dict[int, Any]
    if method == "crown":
        b, pre = _bounds.crown_with_layers(g, params, lo, hi, C=C)
    else:
        b = _bounds.ibp(g, params, lo, hi, C=C)
        nodes = _bounds._ibp_nodes(g, params, lo, hi)
        pre = {n.args[0]: nodes[n.args[0]] for n in g.nodes if n.op in _PWL}
    layers = []
    for n in g.nodes:
        if n.op in _PWL:
            zl, zh = pre[n.args[0]]
            layers.append({"node": n.args[0],
                           "lower": [_text(Fraction(float(v))) for v in zl.reshape(-1)],
                           "upper": [_text(Fraction(float(v))) for v in zh.reshape(-1)]})
    margins = [Fraction(float(v)) for v in b.lower.reshape(-1)]
    doc = {
        "format": FORMAT, "version": VERSION,
        "fingerprint": model_fingerprint(g, params),
        "input_shape": list(xq.shape), "label": int(label), "method": method,
        "box": {"lower": [_text(q) for q in lo_q], "upper": [_text(q) for q in hi_q]},
        "layers": layers,
        "spec": [[_text(Fraction(float(v))) for v in row] for row in C],
        "margin_lower": [_text(q) for q in margins],
        "certified": all(q > 0 for q in margins),
    }
    cert = Certificate(doc)
    if path is not None:
        cert.write(path)
    return cert


# -- checking: the chain form over Fractions ------------------------------------------
@dataclass
class _Aff:
    base: int      # index of the chain variable h_base this is an affine function of
    M: Obj         # (node width, base width) Fractions
    c: Obj         # (node width,)


def _chain(g: Graph, params: Mapping[str, Any]) -> tuple[list[tuple[Obj, Obj, str, Fraction]],
                                                           tuple[Obj, Obj]]:
    """The graph as layers (W, b, act, slope) and the final affine map, exactly."""
    vals: list[Any] = []
    layers: list[tuple[Obj, Obj, str, Fraction]] = []
    for n in g.nodes:
        op, at = n.op, n.attr_dict
        args = [vals[a] for a in n.args]
        width = int(np.prod(n.shape[1:])) if n.shape else 1
        if op == "input":
            if n.shape[0] != 1:
                raise UnsupportedOperation("input", "exact", "certificates need batch 1")
            vals.append(_Aff(0, _eye(width), _zeros(width)))
        elif op == "param":
            vals.append(_frac_array(_bounds._host(params[n.name])))
        elif op == "literal":
            lit = at["data"]
            assert isinstance(lit, Literal)
            items = [Fraction(float.fromhex(t)) for t in lit.items]
            vals.append(np.array(items + [0], dtype=object)[:-1].reshape(n.shape))
        elif op == "const":
            vals.append(np.array(Fraction(at["value"]), dtype=object))
        elif all(not isinstance(a, _Aff) for a in args):
            vals.append(_const_op(n, args))
        elif op == "reshape":
            vals.append(args[0])
        elif op == "neg":
            vals.append(_Aff(args[0].base, -args[0].M, -args[0].c))
        elif op == "matmul" and isinstance(args[0], _Aff) and not isinstance(args[1], _Aff):
            wt = args[1].T
            vals.append(_Aff(args[0].base, wt.dot(args[0].M), wt.dot(args[0].c)))
        elif op in ("add", "sub"):
            vals.append(_add(n, args, -1 if op == "sub" else 1, width))
        elif op in ("mul", "div") and isinstance(args[0], _Aff) and not isinstance(args[1], _Aff):
            k = np.broadcast_to(args[1], n.shape).reshape(-1)
            k = k if op == "mul" else np.array([1 / v for v in k] + [0], dtype=object)[:-1]
            vals.append(_Aff(args[0].base, args[0].M * k[:, None], args[0].c * k))
        elif op in _PWL:
            a = args[0]
            if a.base != len(layers):
                raise UnsupportedOperation(op, "exact", f"node %{n.id}: skips a layer "
                                           "(residual); certificates need a plain chain")
            slope = Fraction(0) if op == "relu" else Fraction(float(at["negative_slope"]))
            layers.append((a.M, a.c, op, slope))
            vals.append(_Aff(len(layers), _eye(width), _zeros(width)))
        else:
            raise UnsupportedOperation(op, "exact", f"node %{n.id}: not allowed in a certificate")
    out = vals[g.outputs[0][1]]
    if not isinstance(out, _Aff) or out.base != len(layers):
        raise UnsupportedOperation("output", "exact", "the output is not affine in the last layer")
    return layers, (out.M, out.c)


def _eye(n: int) -> Obj:
    m = np.empty((n, n), dtype=object)
    m[...] = Fraction(0)
    for i in range(n):
        m[i, i] = Fraction(1)
    return m


def _zeros(n: int) -> Obj:
    z = np.empty(n, dtype=object)
    z[...] = Fraction(0)
    return z


def _const_op(n: Any, a: list[Obj]) -> Obj:
    at = n.attr_dict
    table: dict[str, Any] = {
        "transpose": lambda: np.transpose(a[0], at["axes"]),
        "reshape": lambda: np.reshape(a[0], at["shape"]),
        "broadcast_to": lambda: np.broadcast_to(a[0], at["shape"]),
        "neg": lambda: -a[0], "add": lambda: a[0] + a[1], "sub": lambda: a[0] - a[1],
        "mul": lambda: a[0] * a[1], "div": lambda: a[0] / a[1],
        "matmul": lambda: a[0].dot(a[1]),
    }
    if n.op not in table:
        raise UnsupportedOperation(n.op, "exact", f"node %{n.id}: not allowed in a certificate")
    return np.asarray(table[n.op](), dtype=object)


def _add(n: Any, args: list[Any], sign: int, width: int) -> _Aff:
    a, b = args
    if isinstance(a, _Aff) and isinstance(b, _Aff):
        if a.base != b.base:
            raise UnsupportedOperation(n.op, "exact", f"node %{n.id}: mixes layers (residual)")
        return _Aff(a.base, a.M + sign * b.M, a.c + sign * b.c)
    if isinstance(a, _Aff):
        return _Aff(a.base, a.M, a.c + sign * np.broadcast_to(b, n.shape).reshape(-1))
    k = np.broadcast_to(a, n.shape).reshape(-1)
    return _Aff(b.base, sign * b.M, k + sign * b.c)


def _lines(lo: Fraction, hi: Fraction, s: Fraction) -> tuple[Fraction, ...]:
    """Exact lines a_l z <= act(z) <= a_u z + b_u on [lo, hi] for act = max(z, s z)."""
    if lo >= 0:
        return Fraction(1), Fraction(1), Fraction(0)
    if hi <= 0:
        return s, s, Fraction(0)
    a_u = (hi - s * lo) / (hi - lo)
    return (Fraction(1) if hi >= -lo else s), a_u, hi - a_u * hi


def _back(S: Obj, k: int, layers: list[Any], claims: list[tuple[list[Fraction], ...]],
          final: tuple[Obj, Obj], box: tuple[list[Fraction], list[Fraction]]) -> list[Fraction]:
    """Exact lower bounds of S z_k (k < len(layers)) or S y (k == len(layers)) on the box."""
    W, b = final if k == len(layers) else layers[k][:2]
    lam, const = S.dot(W), S.dot(b)
    for i in range(k - 1, -1, -1):
        lo, hi = claims[i]
        s = layers[i][3]
        lines = [_lines(lo[j], hi[j], s) for j in range(len(lo))]
        new = np.empty_like(lam)
        for r in range(lam.shape[0]):
            for j, (a_l, a_u, b_u) in enumerate(lines):
                v = lam[r, j]
                new[r, j] = v * (a_l if v >= 0 else a_u)
                if v < 0:
                    const[r] += v * b_u
        lam, const = new.dot(layers[i][0]), const + new.dot(layers[i][1])
    xl, xh = box
    return [const[r] + sum(min(v * xl[j], v * xh[j]) for j, v in enumerate(lam[r]))
            for r in range(lam.shape[0])]


def _ibp_layer(k: int, layers: list[Any], claims: list[Any],
               box: Any) -> tuple[list[Fraction], ...]:
    if k == 0:
        hl, hh = box
    else:
        s = layers[k - 1][3]
        lo, hi = claims[k - 1]
        hl = [v if v >= 0 else s * v for v in lo]
        hh = [v if v >= 0 else s * v for v in hi]
    W, b = layers[k][:2]
    low = [b[r] + sum(min(w * hl[j], w * hh[j]) for j, w in enumerate(W[r]))
           for r in range(len(b))]
    high = [b[r] + sum(max(w * hl[j], w * hh[j]) for j, w in enumerate(W[r]))
            for r in range(len(b))]
    return low, high


def _check(doc: Any, model: Any, params: Mapping[str, Any]) -> CheckResult:
    if not isinstance(doc, dict):
        raise DataFormatError("certificate", "expected a JSON object")
    for key in ("format", "version", "fingerprint", "input_shape", "label", "box", "layers",
                "spec", "margin_lower", "certified", "method"):
        if key not in doc:
            raise DataFormatError("certificate", f"missing field {key!r}")
    if doc["format"] != FORMAT or doc["version"] != VERSION:
        raise DataFormatError("certificate", f"not a version-{VERSION} {FORMAT}")
    shape = doc["input_shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise DataFormatError("certificate.input_shape", "expected a list of positive ints")
    g = _bounds.as_graph(model, params, (1, *shape))
    if doc["fingerprint"] != model_fingerprint(g, params):
        return CheckResult(False, "fingerprint mismatch: the certificate is for another model "
                                  "or other parameter values")
    layers, final = _chain(g, params)
    n_in = int(np.prod(shape))
    if not isinstance(doc["box"], dict):
        raise DataFormatError("certificate.box", "expected an object")
    box = (_rationals(doc["box"], "lower", n_in, "box"),
           _rationals(doc["box"], "upper", n_in, "box"))
    if any(lo > hi for lo, hi in zip(*box, strict=True)):
        return CheckResult(False, "box: a lower bound exceeds its upper bound")
    if not isinstance(doc["layers"], list) or len(doc["layers"]) != len(layers):
        return CheckResult(False, f"layers: expected {len(layers)} claimed layers")
    claims: list[tuple[list[Fraction], ...]] = []
    for k, (W, _b, _op, _s) in enumerate(layers):
        w = W.shape[0]
        entry = doc["layers"][k]
        if not isinstance(entry, dict):
            raise DataFormatError(f"layers[{k}]", "expected an object")
        claim = (_rationals(entry, "lower", w, f"layers[{k}]"),
                 _rationals(entry, "upper", w, f"layers[{k}]"))
        ibl, ibh = _ibp_layer(k, layers, claims, box)
        eye = _eye(w)
        cl = _back(eye, k, layers, claims, final, box)
        ch = [-v for v in _back(-eye, k, layers, claims, final, box)]
        for j in range(w):
            if claim[0][j] > max(ibl[j], cl[j]) or claim[1][j] < min(ibh[j], ch[j]):
                return CheckResult(False, f"layers[{k}][{j}]: claimed [{claim[0][j]}, "
                                          f"{claim[1][j]}] does not contain the exact "
                                          f"[{max(ibl[j], cl[j])}, {min(ibh[j], ch[j])}]")
        claims.append(claim)
    classes = final[0].shape[0]
    label = doc["label"]
    if not isinstance(label, int) or not 0 <= label < classes:
        raise DataFormatError("certificate.label", f"expected a class in [0, {classes})")
    S = np.array([[Fraction(int(i == label) - int(i == j)) for i in range(classes)]
                  for j in range(classes) if j != label], dtype=object)
    margins = _rationals(doc, "margin_lower", classes - 1, "certificate")
    exact = _back(S, len(layers), layers, claims, final, box)
    for r, (claimed, true) in enumerate(zip(margins, exact, strict=True)):
        if claimed > true:
            return CheckResult(False, f"margin_lower[{r}]: claimed {claimed} exceeds the "
                                      f"exact bound {true}")
    if doc["certified"] is not all(q > 0 for q in margins):
        return CheckResult(False, "certified does not match the claimed margins")
    verdict = "robust" if doc["certified"] else "bounds valid, not certified robust"
    return CheckResult(True, f"all claims re-derived exactly: {verdict}")


def check_certificate(path: str | os.PathLike[str], model: Any,
                      params: Mapping[str, Any]) -> CheckResult:
    """Re-check a certificate file exactly over Fraction against (model, params).

    Never raises for a bad certificate: malformed, tampered, mismatched or unsupported
    certificates give `accepted=False` with the reason.
    """
    try:
        doc = strict_json.read_json_file(path)
        return _check(doc, model, params)
    except (OSError, ValueError, DataFormatError, UnsupportedOperation, KeyError,
            TypeError) as e:
        return CheckResult(False, f"{type(e).__name__}: {e}")
