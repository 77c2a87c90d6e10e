"""The affine (first-order) rules of `verify.rounding`.

Each node's error is carried as sum_k c_k eps_k over symbols |eps_k| <= 1, grouped in
blocks: block j holds the symbols created at node j (one per element of node j), stored
as coefficients of shape node.shape + (size of node j,). A symbol stands for whatever
value (error / its bound) takes at the given input: no independence is assumed, so the
bound sum |c_k| is sound whatever the symbols' correlations; sharing a symbol between
paths only lets signed coefficients (W @ C) cancel where the same error meets itself.
Everything not linear in earlier symbols (local roundings, second-order and
linearisation terms, the binary64 error of computing coefficients) goes into a fresh
diagonal block of the node, with a rigorous elementwise magnitude. `RULES` holds one
rule per op of the table (or the elementwise table's refusal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...spec.ops import apply
from ...spec.ops.rules import RuleTable
from ...spec.tensor import Tensor
from ..outward import TINY64, U64
from ..outward import next_down as _dn
from ..outward import next_up as _up
from .model import Arr, Bound, Ctx, Index, gamma
from .rules import F64, bound_rule
from .rules import RULES as ELEMENTWISE_RULES

__all__ = ["AFFINE_MAX_SIZE", "RULES", "AffineStep", "Blocks", "Form", "TooLarge", "fresh",
           "gather_index", "lin"]

# Each node's error is carried as sum_k c_k eps_k over symbols |eps_k| <= 1, grouped in
# blocks: block j holds the symbols created at node j (one per element of node j), stored
# as coefficients of shape node.shape + (size of node j,). A symbol stands for whatever
# value (error / its bound) takes at the given input: no independence is assumed, so the
# bound sum |c_k| is sound whatever the symbols' correlations; sharing a symbol between
# paths only lets signed coefficients (W @ C) cancel where the same error meets itself.
# Everything not linear in earlier symbols (local roundings, second-order and
# linearisation terms, the binary64 error of computing coefficients) goes into a fresh
# diagonal block of the node, with a rigorous elementwise magnitude.
AFFINE_MAX_SIZE = 4096  # larger nodes: method="affine" falls back to "elementwise"
Blocks = dict[int, Arr]


def lin(blocks: Blocks, shape: tuple[int, ...]) -> Arr:
    """An upper bound of sum |c| per element over all blocks."""
    tot = np.zeros(shape)
    for cf in blocks.values():
        k = cf.shape[-1]
        s = np.sum(np.abs(cf), axis=-1)
        # any-order float sum of k nonnegatives: s_true <= s (1 + 2 gamma_k), no underflow
        tot = _up(tot + _up(s * _up(1.0 + 4.0 * k * U64)))
    return tot


def _nsym(blocks: Blocks) -> int:
    return sum(cf.shape[-1] for cf in blocks.values())


def _slop(lin_computed: Arr, nsym: int) -> Arr:
    """sum |d| over the symbols, d the binary64 error of coefficients computed by one
    correctly rounded op each (|d| <= U64 |c| <= 2 U64 |c~|, plus underflow)."""
    return _up(_up(2.0 * U64 * lin_computed) + nsym * TINY64)


class TooLarge(Exception):
    """A fresh block would need more than AFFINE_MAX_SIZE symbols."""


def fresh(nid: int, mag: Arr) -> Blocks:
    if not np.any(mag > 0):
        return {}
    size = mag.size
    if size > AFFINE_MAX_SIZE:
        raise TooLarge(nid)
    cf = np.zeros((size, size))
    cf[np.arange(size), np.arange(size)] = mag.ravel()
    return {nid: cf.reshape(mag.shape + (size,))}


def _bcast(cf: Arr, shape: tuple[int, ...]) -> Arr:
    lead = cf.ndim - 1
    cf = cf.reshape((1,) * (len(shape) - lead) + cf.shape)
    return np.broadcast_to(cf, shape + cf.shape[-1:])


def _combine(terms: Sequence[tuple[Arr | float, Blocks]], shape: tuple[int, ...]) -> Blocks:
    """sum_i s_i * blocks_i (s_i scalars or arrays broadcasting to shape)."""
    out: Blocks = {}
    for s, blocks in terms:
        sv = np.asarray(s, dtype=np.float64)
        sv = sv.reshape((1,) * (len(shape) - sv.ndim) + sv.shape)[..., None]
        one = isinstance(s, float) and s == 1.0
        for j, cf in blocks.items():
            if one and j not in out and cf.shape[:-1] == shape:
                out[j] = cf  # 1 * cf is cf (blocks are never changed in place)
                continue
            v = _bcast(cf, shape) * sv
            out[j] = out[j] + v if j in out else np.array(v)
    return out


def _merge(a: Blocks, b: Blocks) -> Blocks:
    out = dict(a)
    for j, cf in b.items():
        out[j] = out[j] + cf if j in out else cf
    return out


@dataclass
class Form:
    """A node in the affine pass: the real enclosure, the error bound in force (the
    smaller of the elementwise and the affine one, both sound) and the symbol blocks."""

    lo: Arr
    hi: Arr
    e: Arr
    blocks: Blocks
    lin_sum: Arr | None = None
    """`lin(blocks, lo.shape)` where already computed (blocks never change in place)."""

    def lin(self) -> Arr:
        """`lin` of the blocks, computed once."""
        if self.lin_sum is None:
            self.lin_sum = lin(self.blocks, self.lo.shape)
        return self.lin_sum

    @property
    def widened(self) -> Bound:
        """An enclosure of the real and the computed value, with no error of its own."""
        exact = self.e == 0  # keep exact values exact (a weight stays a point)
        return Bound(np.where(exact, self.lo, _dn(self.lo - self.e)),
                     np.where(exact, self.hi, _up(self.hi + self.e)), np.zeros_like(self.e))

    @property
    def exact_point(self) -> bool:
        return not self.blocks and bool(np.all(self.lo == self.hi)) and \
            not np.any(self.e > 0)


def _mid_rad(lo: Arr, hi: Arr) -> tuple[Arr, Arr]:
    mid = lo + (hi - lo) / 2  # any value works: rad is an upper bound of |x - mid|
    mid = np.where(np.isfinite(mid), mid, 0.0)
    return mid, np.maximum(_up(hi - mid), _up(mid - lo))


def _diagonal(cf: Arr) -> Arr | None:
    """The diagonal d of a block [1, ..., 1, K, K] that is diagonal (a fresh block, rows
    scaled), else None: W^T C is then W^T d column by column, each entry one product of
    a matmul's otherwise exact zero terms, so the same figures as the matmul."""
    k = cf.shape[-1]
    if cf.ndim < 2 or cf.shape[-2] != k or cf.size != k * k:
        return None
    square = cf.reshape(k, k)
    d = np.diagonal(square)
    if np.count_nonzero(square) != np.count_nonzero(d):
        return None
    return np.asarray(d)


def _affine_matmul(nid: int, args: list[Form], c: Ctx, shape: tuple[int, ...],
                   local: Arr) -> Blocks:
    a, b = args
    out: Blocks = {}
    if a.exact_point:  # W @ X: coefficients [..., K, N, s]
        w, kdim = a.lo, a.lo.shape[-1]
        for j, cf in b.blocks.items():
            if w.ndim == 2:  # one BLAS product over (n, s) columns
                out[j] = np.matmul(w, cf.reshape(cf.shape[:-3] + (kdim, -1))).reshape(
                    cf.shape[:-3] + (w.shape[0],) + cf.shape[-2:])
            else:
                out[j] = np.einsum("...mk,...kns->...mns", w, cf)
        absw, lin_in = np.abs(w), b.lin()
        slop_lin = _up(np.matmul(absw, lin_in) * _up(1.0 + 4.0 * kdim * U64))
    else:  # X @ W: [..., N, s] = W^T [N, K] @ C [..., K, s] (BLAS reads both in place)
        w, kdim = b.lo, b.lo.shape[-2]
        for j, cf in a.blocks.items():
            diag = _diagonal(cf)
            if diag is not None and w.ndim == 2:  # one product per entry: W^T d
                out[j] = (w.T * diag).reshape(cf.shape[:-2] + (w.shape[1], cf.shape[-1]))
            else:
                out[j] = np.matmul(np.swapaxes(w, -1, -2), cf)
        absw, lin_in = np.abs(w), a.lin()
        slop_lin = _up(np.matmul(lin_in, absw) * _up(1.0 + 4.0 * kdim * U64))
    out = {j: np.broadcast_to(cf, shape + cf.shape[-1:]) for j, cf in out.items()}
    # binary64 matmul of coefficients, in any order (BLAS): |d| <= gamma_K |W| |C|
    # (Higham 3.5), summed over s;
    # the second factor bounds the binary64 evaluation of |W| lin itself
    slop = _up(_up(gamma(kdim + 2, U64) * slop_lin) + kdim * _nsym(out) * TINY64)
    return _merge(out, fresh(nid, _up(local + slop)))


def _affine_sum(nid: int, a: Form, axes: tuple[int, ...], keepdims: bool,
                shape: tuple[int, ...], local: Arr) -> Blocks:
    out = {j: np.sum(cf, axis=axes, keepdims=keepdims).reshape(shape + cf.shape[-1:])
           for j, cf in a.blocks.items()}
    m = int(np.prod([a.lo.shape[i] for i in axes]))
    lin_in = np.sum(a.lin(), axis=axes, keepdims=keepdims).reshape(shape)
    # binary64 sums of m coefficients: |d| <= gamma_m sum |c| (any order, Higham 4.2)
    slop = _up(_up(gamma(m + 2, U64) * _up(lin_in * _up(1.0 + 4.0 * m * U64)))
               + m * _nsym(out) * TINY64)
    return _merge(out, fresh(nid, _up(local + slop)))


def gather_index(op: str, shapes: Sequence[tuple[int, ...]], attrs: dict[str, Any]) -> Index:
    """For a structural op: which element of the arguments laid end to end (1-based; 0
    marks a zero the op fills in) each output element is, found by running the op on
    element numbers."""
    ids: list[Tensor] = []
    offset = 1
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        ids.append(Tensor(np.arange(offset, offset + size, dtype=np.float64).reshape(shape),
                          F64))
        offset += size
    return np.asarray(apply(op, ids[0], *ids[1:], **attrs).data, dtype=np.int64).ravel()


def _gather(op: str, args: list[Form], attrs: dict[str, Any], shape: tuple[int, ...]) -> Blocks:
    """A structural op moves coefficients like values: gather the coefficient rows."""
    idx = gather_index(op, [a.lo.shape for a in args], attrs)
    if len(args) == 1 and idx.size == args[0].lo.size and \
            np.array_equal(idx, np.arange(1, idx.size + 1)):  # a reshape: nothing moves
        return {j: np.ascontiguousarray(cf).reshape(shape + cf.shape[-1:])  # as a copy lays it
                for j, cf in args[0].blocks.items()}
    total = 1 + sum(a.lo.size for a in args)
    out: Blocks = {}
    for j in {j for a in args for j in a.blocks}:
        k = next(a.blocks[j].shape[-1] for a in args if j in a.blocks)
        table = np.zeros((total, k))
        start = 1
        for a in args:
            if j in a.blocks:
                table[start:start + a.lo.size] = a.blocks[j].reshape(a.lo.size, k)
            start += a.lo.size
        out[j] = table[idx].reshape(shape + (k,))
    return out


def _widened_partial_sums(smag: Arr, a: Form, b: Form) -> Arr:
    """Partial-sum bounds of the computed arguments' product: the real ones plus
    sum_{i<=k} |w_i| e_i, the arguments' errors carried along (2-D a @ b, one a point)."""
    x = a if b.exact_point else b
    if not np.any(x.e):  # the computed arguments are the real ones: nothing to add
        return smag
    if b.exact_point:  # X @ W: [M, N, K] += cumsum_k |W[k, n]| e[m, k]
        terms = np.abs(b.lo).T[None, :, :] * a.e[:, None, :]
    else:  # W @ X: [M, N, K] += cumsum_k |W[m, k]| e[k, n]
        terms = np.abs(a.lo)[:, None, :] * b.e.T[None, :, :]
    kdim = terms.shape[-1]
    np.cumsum(terms, axis=-1, out=terms)  # in place: large temporaries cost page faults
    terms *= _up(1.0 + 4.0 * (kdim + 1) * U64)
    return _up(smag + _up(terms))



# -- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AffineStep:
    """One node of the affine pass: op, node id, argument forms, attributes, context,
    output shape, and for a matmul bounds of its real partial sums (see RealPass)."""

    op: str
    nid: int
    args: list[Form]
    attrs: dict[str, Any]
    c: Ctx
    shape: tuple[int, ...]
    smag: Arr | None = None
    known_local: Arr | None = None

    def local(self, smag: Arr | None = None) -> Arr:
        """The op's own rounding on the computed arguments (the elementwise rule).
        `known_local` is that figure when the elementwise pass already computed it: no
        argument carries an error, so the computed arguments are the real ones, the very
        arguments (and, for a matmul, partial-sum bounds `smag`) of that pass's rule."""
        if self.known_local is not None:
            return self.known_local
        return bound_rule(self.op, [a.widened for a in self.args], self.attrs, self.c, smag).e


AffineRule = Callable[[AffineStep], Blocks]
RULES: RuleTable[AffineRule] = RuleTable("rounding (affine)", field="float32")
"""Per op: the node's blocks, the propagated first-order part plus a fresh block for the
rest; `_fresh_only` where nothing is propagated linearly."""


def _fresh_only(s: AffineStep) -> Blocks:
    """The elementwise rule on the arguments' bounds, as one fresh block."""
    return fresh(s.nid, bound_rule(s.op, [Bound(a.lo, a.hi, a.e) for a in s.args], s.attrs,
                                   s.c).e)


def _moved(s: AffineStep) -> Blocks:
    if not any(a.blocks for a in s.args):  # nothing to move (a transposed weight)
        return {}
    return _gather(s.op, s.args, s.attrs, s.shape)


def _add_sub(s: AffineStep) -> Blocks:
    a, b = s.args
    out = _combine([(1.0, a.blocks), (1.0 if s.op == "add" else -1.0, b.blocks)], s.shape)
    return _merge(out, fresh(s.nid, _up(s.local() + _slop(lin(out, s.shape), _nsym(out)))))


def _mul(s: AffineStep) -> Blocks:
    a, b = (s.args[0], s.args[0]) if s.op == "square" else (s.args[0], s.args[1])
    am, ar = _mid_rad(a.lo, a.hi)
    bm, br = _mid_rad(b.lo, b.hi)
    out = _combine([(bm, a.blocks), (am, b.blocks)], s.shape)
    # a^ b^ - a b = am E_b + bm E_a + (a - am) E_b + (b - bm) E_a + E_a E_b
    rest = _up(_up(_up(ar * b.e) + _up(br * a.e)) + _up(a.e * b.e))
    rest = _up(rest + _slop(lin(out, s.shape), _nsym(out)))
    return _merge(out, fresh(s.nid, _up(s.local() + np.broadcast_to(rest, s.shape))))


def _div(s: AffineStep) -> Blocks:
    a, b = s.args
    if not b.exact_point:
        return _fresh_only(s)
    out = _combine([(1.0 / b.lo, a.blocks)], s.shape)  # 1/b rounded: in the slop below
    slop = _up(2.0 * _slop(lin(out, s.shape), _nsym(out)))
    return _merge(out, fresh(s.nid, _up(s.local() + slop)))


def _sum(s: AffineStep) -> Blocks:
    return _affine_sum(s.nid, s.args[0], tuple(s.attrs["axes"]), bool(s.attrs["keepdims"]),
                       s.shape, s.local())


def _matmul(s: AffineStep) -> Blocks:
    a, b = s.args
    if not (a.exact_point or b.exact_point):
        return _fresh_only(s)
    wide = None if s.smag is None else _widened_partial_sums(s.smag, a, b)
    return _affine_matmul(s.nid, s.args, s.c, s.shape, s.local(wide))


def _relu(s: AffineStep) -> Blocks:
    a = s.args[0]
    w = a.widened
    active, inactive = w.lo >= 0, w.hi <= 0
    # relu(z^) - relu(z) = lam (z^ - z), lam in [0, 1] = 1/2 + [-1/2, 1/2]
    fac = np.where(active, 1.0, np.where(inactive, 0.0, 0.5))
    out = _combine([(fac, a.blocks)], s.shape)
    return _merge(out, fresh(s.nid, np.where(active | inactive, 0.0, _up(a.e / 2))))


def _abs(s: AffineStep) -> Blocks:
    a = s.args[0]
    w = a.widened
    sign = np.where(w.lo >= 0, 1.0, np.where(w.hi <= 0, -1.0, 0.0))
    out = _combine([(sign, a.blocks)], s.shape)
    return _merge(out, fresh(s.nid, np.where(sign == 0, a.e, 0.0)))


RULES.rule("transpose", "reshape", "broadcast_to", "slice", "concat", "unslice")(_moved)
RULES.rule("add", "sub")(_add_sub)
RULES.add("neg", lambda s: {j: -cf for j, cf in s.args[0].blocks.items()})
RULES.rule("mul", "square")(_mul)
RULES.add("div", _div)
RULES.add("sum", _sum)
RULES.add("matmul", _matmul)
RULES.add("relu", _relu)
RULES.add("abs", _abs)
RULES.rule(
    "sqrt", "exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "erf", "gelu",
    "sin", "cos", "silu", "leaky_relu", "maximum", "minimum", "mean", "max", "softmax",
    "log_softmax",
)(_fresh_only)
for _tag, _reason in ELEMENTWISE_RULES.unsupported.items():
    RULES.refuse(_reason, _tag)  # the same ops, for the same reason: no elementwise rule
