"""Tree certificates of `holds` verdicts, and their independent checker.

A certificate lists, for every case of the property, a root box (exact rationals), the
splits made (box id, axis, point, child ids) and the leaves with, for each unsafe
conjunction of the case, the index of one constraint row whose lower bound over the leaf
is above its right-hand side. The rows themselves are not in the file: the checker reads
them from the property (the case's conjunctions flattened in order), so a certificate
cannot weaken the property it claims.

`check_tree_certificate` proves, in exact arithmetic:

1. the root of each case contains the case's exact input box;
2. the leaves cover the root: boxes are re-derived from the splits in Fractions, every
   box is split at most once, children are fresh, and the boxes never split are exactly
   the leaves (a split's children `[lo, p]` and `[p, hi]` cover their parent for any p);
3. every leaf's refuting rows are refuted: `leaf_bound(lo, hi, rows)` gives sound lower
   bounds of `c . y` over the leaf, re-derived independently (by default
   `exact_chain.ExactChain.lower_bound`, exact for affine-ReLU chains), which must
   exceed `d` (or reach it, for a strict row).

Format /2 (written only when some leaf has them) lets a leaf carry alpha-CROWN slopes
(`exact_chain.ChainSlopes`) as a third entry: {"final": [array or null per ReLU],
"inner": [null or [array per earlier ReLU] per ReLU]}, each array {"exponent": e,
"shape": [rows, cols], "uint32": base64 of little-endian unsigned integers}, the slopes
being the integers times 2^-e. The checker only uses them: `leaf_bound(lo, hi, rows,
slopes)` checks their shapes and that each lies in [0, 1] (any such slope gives a valid
lower line), and a wrong shape or value makes the certificate invalid.

A case of kind "relu-splits" (ReLU branch and bound, `ReluCaseTree`) instead splits
subdomains of its root box: each split names a subdomain, a ReLU layer k and neuron j,
and the child ids where that neuron's pre-activation is >= 0 (active) and <= 0
(inactive); "refuted" lists nodes (any node, not only leaves) with, per conjunction, the
row that refutes it there or -1; "betas" lists beta-CROWN multipliers (node, row, layer,
neuron, beta) used in a refuting row's bound. The checker proves 1. as above; 2'. the splits form a
tree from node 0 (fresh child ids, a neuron split at most once on a path), whose leaves
cover the root (every split's halves z >= 0 and z <= 0 cover its node); 3'. each listed
row is refuted over its node's subdomain, by `ExactChain.lower_bound_split` with the
node's sign constraints and the row's betas (each must be a dyadic beta >= 0 on a
neuron split on the node's path: `c . y - beta * sign * z <= c . y` there; a subdomain
shown empty refutes every row) and, in format /2, the node's alpha-CROWN slopes when
"slopes" lists them ([node, slopes] with slopes as a leaf's above, the final rows being
the node's named rows in order; checked in [0, 1] and in shape); "root_slopes" (format
/2; intermediate slopes only) make the checker compute the root box's intervals once,
exactly, with them (`ExactChain.intervals`), and meet every node's intervals with those
(they hold on every point of the root box, so on every subdomain); and every leaf has
every conjunction refuted at itself or an ancestor (a subdomain's bound holds on its
subsets).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ...runtime.atomic_write import write_atomically
from ...runtime.graph import Graph
from ...spec import strict_json
from ...spec.errors import DataFormatError, UnsupportedOperation
from .exact_chain import ChainSlopes
from .vnnlib import Case, LinearConstraint, Property, read_vnnlib

__all__ = ["CaseTree", "ReluCaseTree", "TreeCheck", "write_tree_certificate",
           "check_tree_certificate", "case_rows", "FORMAT", "FORMAT_SLOPES"]

FORMAT = "torchlean-vnn-tree/1"
FORMAT_SLOPES = "torchlean-vnn-tree/2"  # leaves may carry alpha-CROWN slopes
# leaf_bound(lower, upper, rows), and for a leaf with slopes (lower, upper, rows, slopes)
LeafBound = Callable[..., Sequence[Fraction]]
# Read by spec/strict_json (bounded, duplicate keys and NaN refused). Alpha leaves carry
# about 300 kB of slopes each, so a long input-splitting run's file can pass strict_json's
# 1 GiB default; a file over this limit is answered "not ok", never accepted.
MAX_CERTIFICATE_BYTES = 4 << 30
MAX_SLOPES = 1 << 26  # slope entries one array may hold (a file is parsed, never trusted)


@dataclass(frozen=True)
class CaseTree:
    """One case's tree: root box, splits (box, axis, point, left, right), leaves
    (box id -> one refuting row index per conjunction)."""

    lower: tuple[Fraction, ...]
    upper: tuple[Fraction, ...]
    splits: tuple[tuple[int, int, Fraction, int, int], ...]
    leaves: tuple[tuple[int, tuple[int, ...]], ...]
    # leaf box id -> the alpha-CROWN slopes its bound uses (final rows: its refuting rows)
    slopes: tuple[tuple[int, ChainSlopes], ...] = ()


@dataclass(frozen=True)
class ReluCaseTree:
    """One case's ReLU-split tree: root box, splits (node, relu layer k, neuron j,
    active child, inactive child), refutations (node -> one row per conjunction, -1
    where the node refutes nothing for it), and the beta multipliers of refuting rows
    (node, row, layer k, neuron j, beta >= 0); and by node the alpha-CROWN slopes of
    its refuting rows' bound (final rows: its named rows in order)."""

    lower: tuple[Fraction, ...]
    upper: tuple[Fraction, ...]
    splits: tuple[tuple[int, int, int, int, int], ...]
    refuted: tuple[tuple[int, tuple[int, ...]], ...]
    betas: tuple[tuple[int, int, int, int, Fraction], ...] = ()
    slopes: tuple[tuple[int, ChainSlopes], ...] = ()
    # intermediate slopes for the root's intervals, a floor for every node's (final: None)
    root_slopes: ChainSlopes | None = None


@dataclass(frozen=True)
class TreeCheck:
    """The checker's answer: `ok`, the reason when not, leaves checked, seconds."""

    ok: bool
    reason: str
    leaves: int
    seconds: float


def case_rows(case: Case) -> tuple[list[LinearConstraint], list[list[int]]]:
    """The case's constraint rows in order, and the row indices of each conjunction."""
    rows: list[LinearConstraint] = []
    groups: list[list[int]] = []
    for conj in case.unsafe:
        groups.append(list(range(len(rows), len(rows) + len(conj))))
        rows.extend(conj)
    return rows, groups


def _q(v: Fraction) -> str:
    return f"{v.numerator}/{v.denominator}"


def _slope_array(arr: tuple[Any, int]) -> dict[str, Any]:
    ints, e = arr
    a = np.asarray(ints, dtype=np.int64)
    if a.ndim != 2 or np.any(a < 0) or np.any(a >= 1 << 32):
        raise ValueError("slopes must be 2-d arrays of integers in [0, 2^32)")
    return {"exponent": int(e), "shape": list(a.shape),
            "uint32": base64.b64encode(a.astype("<u4").tobytes()).decode("ascii")}


def _slopes_doc(s: ChainSlopes) -> dict[str, Any]:
    return {"final": [None if f is None else _slope_array(f) for f in s.final],
            "inner": [None if per is None else [_slope_array(a) for a in per]
                      for per in s.inner]}


def _case_doc(t: CaseTree | ReluCaseTree) -> dict[str, Any]:
    root = {"lower": [_q(v) for v in t.lower], "upper": [_q(v) for v in t.upper]}
    if isinstance(t, ReluCaseTree):
        doc = {"kind": "relu-splits", "root": root, "splits": [list(s) for s in t.splits],
               "refuted": [[i, list(rows)] for i, rows in t.refuted],
               "betas": [[i, r, k, j, _q(b)] for i, r, k, j, b in t.betas]}
        if t.slopes:
            doc["slopes"] = [[i, _slopes_doc(sl)] for i, sl in t.slopes]
        if t.root_slopes is not None:
            doc["root_slopes"] = _slopes_doc(t.root_slopes)
        return doc
    slopes = dict(t.slopes)

    def leaf(i: int, rows: tuple[int, ...]) -> list[Any]:
        got = slopes.get(i)
        return [i, list(rows)] if got is None else [i, list(rows), _slopes_doc(got)]

    return {"root": root,
            "splits": [[b, a, _q(p), left, right] for b, a, p, left, right in t.splits],
            "leaves": [leaf(i, rows) for i, rows in t.leaves]}


def write_tree_certificate(path: str | os.PathLike[str], prop: Property,
                           trees: Sequence[CaseTree | ReluCaseTree]) -> None:
    """Write the certificate for `prop` (one tree per case) atomically as JSON (format /2
    when some leaf carries slopes, else /1)."""
    with_slopes = any(t.slopes or (isinstance(t, ReluCaseTree) and t.root_slopes)
                      for t in trees)
    doc = {"format": FORMAT_SLOPES if with_slopes else FORMAT, "property": prop.path,
           "cases": [_case_doc(t) for t in trees]}
    write_atomically(path, lambda f: json.dump(doc, f, separators=(",", ":")))


class _Bad(Exception):
    pass


def _frac(v: Any, where: str) -> Fraction:
    if not isinstance(v, str) or len(v) > 2000:
        raise _Bad(f"{where}: expected a rational 'p/q', got {str(v)[:40]!r}")
    try:
        return Fraction(v)
    except (ValueError, ZeroDivisionError):
        raise _Bad(f"{where}: not a rational: {v[:40]!r}") from None


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"{where}: expected an integer, got {str(v)[:40]!r}")
    return v


def _list(v: Any, where: str, n: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (n is not None and len(v) != n):
        raise _Bad(f"{where}: expected a list{'' if n is None else f' of {n}'}")
    return v


def _parse_slope_array(v: Any, where: str) -> tuple[Any, int]:
    if not isinstance(v, dict) or set(v) != {"exponent", "shape", "uint32"}:
        raise _Bad(f"{where}: expected a slope array {{exponent, shape, uint32}}")
    e = _int(v["exponent"], where)
    shape = [_int(d, where) for d in _list(v["shape"], where, 2)]
    if min(shape) < 0 or shape[0] * shape[1] > MAX_SLOPES:
        raise _Bad(f"{where}: bad slope array shape {shape}")
    text = v["uint32"]
    if not isinstance(text, str) or len(text) > 8 * MAX_SLOPES:
        raise _Bad(f"{where}: slopes must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{where}: slopes are not valid base64") from None
    if len(raw) != 4 * shape[0] * shape[1]:
        raise _Bad(f"{where}: {len(raw)} bytes of slopes for shape {shape}")
    ints = np.frombuffer(raw, dtype="<u4").astype(np.int64).reshape(shape)
    return ints, e


def _parse_slopes(v: Any, where: str) -> ChainSlopes:
    if not isinstance(v, dict) or set(v) != {"final", "inner"}:
        raise _Bad(f"{where}: expected slopes {{final, inner}}")
    final = tuple(None if f is None else _parse_slope_array(f, f"{where} final")
                  for f in _list(v["final"], f"{where} final"))
    inner = tuple(None if per is None else tuple(
        _parse_slope_array(a, f"{where} inner") for a in _list(per, f"{where} inner"))
        for per in _list(v["inner"], f"{where} inner"))
    return ChainSlopes(final, inner)


def _parse_relu(c: dict[str, Any], w: str, lower: tuple[Fraction, ...],
                upper: tuple[Fraction, ...], with_slopes: bool) -> ReluCaseTree:
    splits = []
    for s in _list(c.get("splits"), f"{w} splits"):
        s = _list(s, f"{w} split", 5)
        splits.append((_int(s[0], w), _int(s[1], w), _int(s[2], w), _int(s[3], w),
                       _int(s[4], w)))
    refuted = []
    for r in _list(c.get("refuted"), f"{w} refuted"):
        r = _list(r, f"{w} refutation", 2)
        refuted.append((_int(r[0], w), tuple(_int(v, w) for v in _list(r[1], w))))
    betas = []
    for b in _list(c.get("betas", []), f"{w} betas"):
        b = _list(b, f"{w} beta", 5)
        betas.append((_int(b[0], w), _int(b[1], w), _int(b[2], w), _int(b[3], w),
                      _frac(b[4], w)))
    slopes = []
    if ("slopes" in c or "root_slopes" in c) and not with_slopes:
        raise _Bad(f"{w}: slopes in a {FORMAT} certificate")
    root = None if "root_slopes" not in c else _parse_slopes(c["root_slopes"],
                                                             f"{w} root slopes")
    for e in _list(c.get("slopes", []), f"{w} slopes"):
        e = _list(e, f"{w} slopes entry", 2)
        node = _int(e[0], w)
        slopes.append((node, _parse_slopes(e[1], f"{w} node {node} slopes")))
    return ReluCaseTree(lower, upper, tuple(splits), tuple(refuted), tuple(betas),
                        tuple(slopes), root)


def _parse(doc: Any, n: int) -> list[CaseTree | ReluCaseTree]:
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, FORMAT_SLOPES):
        raise _Bad(f"not a {FORMAT} or {FORMAT_SLOPES} certificate")
    with_slopes = doc["format"] == FORMAT_SLOPES
    out: list[CaseTree | ReluCaseTree] = []
    for ci, c in enumerate(_list(doc.get("cases"), "cases")):
        if not isinstance(c, dict) or not isinstance(c.get("root"), dict):
            raise _Bad(f"case {ci}: expected an object with a root")
        w = f"case {ci}"
        lower = tuple(_frac(v, f"{w} root") for v in _list(c["root"].get("lower"), w, n))
        upper = tuple(_frac(v, f"{w} root") for v in _list(c["root"].get("upper"), w, n))
        kind = c.get("kind", "input-splits")
        if kind == "relu-splits":
            out.append(_parse_relu(c, w, lower, upper, with_slopes))
            continue
        if kind != "input-splits":
            raise _Bad(f"{w}: unknown kind {str(kind)[:40]!r}")
        splits = []
        for s in _list(c.get("splits"), f"{w} splits"):
            s = _list(s, f"{w} split", 5)
            splits.append((_int(s[0], w), _int(s[1], w), _frac(s[2], w), _int(s[3], w),
                           _int(s[4], w)))
        leaves = []
        slopes = []
        for lf in _list(c.get("leaves"), f"{w} leaves"):
            lf = _list(lf, f"{w} leaf", 3 if with_slopes and isinstance(lf, list)
                       and len(lf) == 3 else 2)
            leaves.append((_int(lf[0], w), tuple(_int(r, w) for r in _list(lf[1], w))))
            if len(lf) == 3:
                slopes.append((leaves[-1][0], _parse_slopes(lf[2], f"{w} leaf {lf[0]}")))
        out.append(CaseTree(lower, upper, tuple(splits), tuple(leaves), tuple(slopes)))
    return out


def _leaf_boxes(t: CaseTree, w: str) -> dict[int, tuple[list[Fraction], list[Fraction]]]:
    """Every unsplit box of the tree, re-derived exactly; raises unless they are exactly
    the leaves."""
    n = len(t.lower)
    if any(a > b for a, b in zip(t.lower, t.upper, strict=True)):
        raise _Bad(f"{w}: the root has lower > upper")
    open_boxes: dict[int, tuple[list[Fraction], list[Fraction]]] = {
        0: (list(t.lower), list(t.upper))}
    seen = {0}
    for box, axis, p, left, right in t.splits:
        if box not in open_boxes:
            raise _Bad(f"{w}: split of box {box}, which is not an unsplit box")
        if not 0 <= axis < n:
            raise _Bad(f"{w}: split axis {axis} out of range")
        lo, hi = open_boxes.pop(box)
        if not lo[axis] <= p <= hi[axis]:
            raise _Bad(f"{w}: split point {p} of box {box} outside [{lo[axis]}, {hi[axis]}]")
        if left == right or left in seen or right in seen:
            raise _Bad(f"{w}: split of box {box} reuses a box id")
        seen.update((left, right))
        left_hi, right_lo = list(hi), list(lo)
        left_hi[axis] = p
        right_lo[axis] = p
        open_boxes[left] = (lo, left_hi)
        open_boxes[right] = (right_lo, hi)
    ids = [i for i, _ in t.leaves]
    if len(set(ids)) != len(ids) or set(ids) != set(open_boxes):
        raise _Bad(f"{w}: the leaves ({len(ids)}) are not exactly the unsplit boxes "
                   f"({len(open_boxes)})")
    return open_boxes


Constraints = dict[tuple[int, int], int]


def _relu_nodes(t: ReluCaseTree, widths: Sequence[int], w: str
                ) -> tuple[dict[int, Constraints], dict[int, int], set[int]]:
    """Every node's sign constraints, its parent (-1 for the root) and the leaves;
    raises unless the splits form a tree from node 0 (fresh children, neurons in range,
    no neuron split twice on one path)."""
    cons: dict[int, Constraints] = {0: {}}
    parent = {0: -1}
    leaves = {0}
    for node, k, j, active, inactive in t.splits:
        if node not in leaves:
            raise _Bad(f"{w}: split of node {node}, which is not an unsplit node")
        if not (0 <= k < len(widths) and 0 <= j < widths[k]):
            raise _Bad(f"{w}: split of node {node} names neuron {j} of relu layer {k}, "
                       f"out of range")
        if (k, j) in cons[node]:
            raise _Bad(f"{w}: node {node} splits neuron {j} of layer {k} again")
        if active == inactive or active in cons or inactive in cons:
            raise _Bad(f"{w}: split of node {node} reuses a node id")
        leaves.remove(node)
        for child, sign in ((active, 1), (inactive, -1)):
            cons[child] = {**cons[node], (k, j): sign}
            parent[child] = node
            leaves.add(child)
    return cons, parent, leaves


def _check_relu_case(t: ReluCaseTree, case: Case, chain: Any, w: str) -> int:
    """Checks 2'. and 3'. of the module docstring; the refutations checked."""
    rows, groups = case_rows(case)
    cons, parent, leaves = _relu_nodes(t, chain.layer_widths(), w)
    named_rows = {node: {r for r in refuting if r != -1} for node, refuting in t.refuted}
    betas: dict[int, dict[int, dict[tuple[int, int], Fraction]]] = {}
    for node, r, layer, j, beta in t.betas:
        d = beta.denominator
        if r not in named_rows.get(node, ()) or (layer, j) not in cons.get(node, {}) or (
                beta < 0 or d & (d - 1)):
            raise _Bad(f"{w}: beta {float(beta):.6g} of node {node}, row {r}, neuron {j} of "
                       f"layer {layer}: not a dyadic multiplier >= 0 of a refuting row and a "
                       "split neuron of that node")
        got = betas.setdefault(node, {}).setdefault(r, {})
        if (layer, j) in got:
            raise _Bad(f"{w}: node {node}, row {r}: two betas for neuron {j} of layer "
                       f"{layer}")
        got[(layer, j)] = beta
    node_slopes = dict(t.slopes)
    if len(node_slopes) != len(t.slopes) or not set(node_slopes) <= set(named_rows):
        raise _Bad(f"{w}: slopes given twice for a node, or for a node that refutes "
                   "nothing")
    floor = None
    if t.root_slopes is not None:
        if any(f is not None for f in t.root_slopes.final):
            raise _Bad(f"{w}: root slopes with final slopes (only intermediate ones serve)")
        try:
            floor = chain.intervals(list(t.lower), list(t.upper), t.root_slopes)
        except ValueError as e:
            raise _Bad(f"{w}: bad root slopes: {e}") from None
    here: dict[int, set[int]] = {}
    for node, refuting in t.refuted:
        if node not in cons or node in here:
            raise _Bad(f"{w}: refutation of node {node}, not a node of the tree or "
                       "listed twice")
        if len(refuting) != len(groups) or any(
                r != -1 and r not in g for r, g in zip(refuting, groups, strict=True)):
            raise _Bad(f"{w}: node {node} does not name, per conjunction, one of its rows "
                       "or -1")
        named = [(i, r) for i, r in enumerate(refuting) if r != -1]
        if not named:
            raise _Bad(f"{w}: node {node} refutes nothing")
        ks = [rows[r] for _, r in named]
        by_row = betas.get(node, {})
        try:
            lows = chain.lower_bound_split(list(t.lower), list(t.upper),
                                           [k.coefficients for k in ks], cons[node],
                                           [by_row.get(r, {}) for _, r in named],
                                           slopes=node_slopes.get(node), floor=floor)
        except ValueError as e:
            raise _Bad(f"{w}: node {node}: bad slopes: {e}") from None
        if lows is not None:  # None: no point meets the node's constraints
            for k, low in zip(ks, lows, strict=True):
                if not (low >= k.bound if k.strict else low > k.bound):
                    raise _Bad(f"{w}: node {node}: the re-derived lower bound "
                               f"{float(low):.6g} does not exceed {float(k.bound):.6g}")
        here[node] = {i for i, _ in named}
    for leaf in leaves:
        covered: set[int] = set()
        node = leaf
        while node != -1:
            covered |= here.get(node, set())
            node = parent[node]
        if len(covered) != len(groups):
            raise _Bad(f"{w}: leaf {leaf} leaves conjunction(s) "
                       f"{sorted(set(range(len(groups))) - covered)} unrefuted")
    return len(here)


def _default_leaf_bound(graph: Graph, params: Mapping[str, Any]) -> LeafBound:
    from .exact_chain import exact_chain

    return exact_chain(graph, params).lower_bound


def check_tree_certificate(path: str | os.PathLike[str],
                           model: str | os.PathLike[str] | tuple[Graph, Mapping[str, Any]],
                           prop: str | os.PathLike[str] | Property,
                           leaf_bound: LeafBound | None = None) -> TreeCheck:
    """Whether the certificate at `path` proves that `prop` holds for `model` (module
    docstring). `leaf_bound` replaces the exact affine-ReLU chain bound (e.g. with a
    general exact checker). Never raises for a bad certificate: it answers not ok."""
    t0 = time.monotonic()
    from .instance import fit_property, load_model

    graph, params = model if isinstance(model, tuple) else load_model(model)
    parsed = prop if isinstance(prop, Property) else read_vnnlib(prop)
    n = int(np.prod(graph.inputs[0].shape))
    m = int(np.prod(graph.nodes[graph.outputs[0][1]].shape))
    parsed = fit_property(parsed, n, m)
    checked = 0
    try:
        try:
            doc = strict_json.read_json_file(path, max_bytes=MAX_CERTIFICATE_BYTES)
        except (OSError, DataFormatError) as e:
            raise _Bad(f"cannot read the certificate: {e}") from None
        trees = _parse(doc, n)
        if len(trees) != len(parsed.cases):
            raise _Bad(f"{len(trees)} trees for {len(parsed.cases)} cases")
        chain: Any = None
        if any(isinstance(t, ReluCaseTree) for t in trees):
            from .exact_chain import exact_chain

            try:
                chain = exact_chain(graph, params)
            except UnsupportedOperation as e:
                raise _Bad(f"no exact checker of relu splits for this model: {e}") from None
        if leaf_bound is None and any(isinstance(t, CaseTree) for t in trees):
            try:
                leaf_bound = _default_leaf_bound(graph, params)
            except UnsupportedOperation as e:
                raise _Bad(f"no exact leaf checker for this model: {e}") from None
        for ci, (case, t) in enumerate(zip(parsed.cases, trees, strict=True)):
            w = f"case {ci}"
            box = case.box
            if any(r > b for r, b in zip(t.lower, box.lower, strict=True)) or any(
                    r < b for r, b in zip(t.upper, box.upper, strict=True)):
                raise _Bad(f"{w}: the root box does not contain the property's box")
            if isinstance(t, ReluCaseTree):
                if any(a > b for a, b in zip(t.lower, t.upper, strict=True)):
                    raise _Bad(f"{w}: the root has lower > upper")
                if any(not g for g in case_rows(case)[1]):
                    raise _Bad(f"{w}: an unsafe conjunction is empty; no bound refutes it")
                checked += _check_relu_case(t, case, chain, w)
                continue
            rows, groups = case_rows(case)
            if any(not g for g in groups):
                raise _Bad(f"{w}: an unsafe conjunction is empty; no bound refutes it")
            leaves = _leaf_boxes(t, w)
            leaf_slopes = dict(t.slopes)
            if len(leaf_slopes) != len(t.slopes) or not set(leaf_slopes) <= set(leaves):
                raise _Bad(f"{w}: slopes given twice for a leaf")
            for leaf, refuting in t.leaves:
                if len(refuting) != len(groups) or any(
                        r not in g for r, g in zip(refuting, groups, strict=True)):
                    raise _Bad(f"{w}: leaf {leaf} does not name one row of each "
                               "conjunction")
                lo, hi = leaves[leaf]
                ks = [rows[r] for r in refuting]
                assert leaf_bound is not None
                coefficients = [k.coefficients for k in ks]
                if leaf in leaf_slopes:
                    try:
                        lows = leaf_bound(lo, hi, coefficients, leaf_slopes[leaf])
                    except ValueError as e:
                        raise _Bad(f"{w}: leaf {leaf}: bad slopes: {e}") from None
                else:
                    lows = leaf_bound(lo, hi, coefficients)
                for k, low in zip(ks, lows, strict=True):
                    if not (low >= k.bound if k.strict else low > k.bound):
                        raise _Bad(f"{w}: leaf {leaf}: the re-derived lower bound "
                                   f"{float(low):.6g} does not exceed {float(k.bound):.6g}")
                checked += 1
    except _Bad as e:
        return TreeCheck(False, str(e), checked, time.monotonic() - t0)
    except DataFormatError as e:
        return TreeCheck(False, str(e), checked, time.monotonic() - t0)
    return TreeCheck(True, "", checked, time.monotonic() - t0)
