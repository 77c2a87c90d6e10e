"""Which nodes interval bound propagation may bound in one step when only one node's
interval is wanted (`ibp`, not CROWN, which reads every node's interval):

- "bias": a matmul (optionally reshaped) whose only use is an add: a linear or conv
  layer and its bias, bounded as one affine map (no interval of the bare product). When
  the matmul's operand is a concat (optionally reshaped) used by it alone that keeps the
  leading (batch) axis, the concat is inner too (`rows_from`): a conv's im2col patches
  are then put together a block of rows at a time, never whole;
- "pool": a concat whose only use is a sum or mean over the concat axis, every part one
  wide on it (average pooling in window form): the parts are summed directly, never
  copied side by side.

The plan is structural; whether an operand is a constant is decided when the values are
known (the caller falls back to the node-by-node rules otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...runtime.graph import Graph

__all__ = ["Fusion", "plan_fusions", "use_counts"]


@dataclass(frozen=True)
class Fusion:
    """A node bounded together with `inner` (nodes used by it alone, in graph order,
    whose intervals are never formed); `other` is the bias operand of kind "bias";
    `rows_from` the matmul operand formed by rows (a concat, or a reshape of one, in
    `inner`), -1 if none."""

    kind: str
    inner: tuple[int, ...]
    other: int = -1
    rows_from: int = -1


def use_counts(g: Graph) -> list[int]:
    """How many times each node is an operand (a node used twice by one op counts 2)."""
    counts = [0] * len(g.nodes)
    for n in g.nodes:
        for a in n.args:
            counts[a] += 1
    return counts


def plan_fusions(g: Graph, keep: int) -> dict[int, Fusion]:
    """The fusions by the id of the node that performs them; node `keep` (the wanted
    interval) is never made inner."""
    uses = use_counts(g)
    single = [u == 1 for u in uses]
    single[keep] = False
    out: dict[int, Fusion] = {}
    for n in g.nodes:
        if n.op == "add" and len(n.args) == 2 and n.args[0] != n.args[1]:
            for k, arg in enumerate(n.args):
                inner = _matmul_chain(g, arg, single)
                if inner is not None:
                    rows = _rows_chain(g, g.nodes[inner[0]].args, single)
                    out[n.id] = Fusion("bias", tuple(sorted({*rows[1:], *inner})),
                                       n.args[1 - k], rows[0] if rows else -1)
                    break
        elif n.op in ("sum", "mean"):
            src = g.nodes[n.args[0]]
            if src.op != "concat" or not single[src.id] or len(src.args) < 2:
                continue
            ax = int(src.attr("axis")) % len(src.shape)
            axes = n.attr("axes")
            if axes is None or tuple(int(x) % len(src.shape) for x in axes) != (ax,):
                continue
            if all(g.nodes[a].shape[ax] == 1 for a in src.args):
                out[n.id] = Fusion("pool", (src.id,))
    return out


def _matmul_chain(g: Graph, arg: int, single: list[bool]) -> tuple[int, ...] | None:
    """(matmul,) or (matmul, reshape) ending at `arg`, each used once, else None."""
    node = g.nodes[arg]
    if not single[arg]:
        return None
    if node.op == "matmul":
        return (arg,)
    if node.op == "reshape":
        m = node.args[0]
        if g.nodes[m].op == "matmul" and single[m]:
            return (m, arg)
    return None


def _rows_chain(g: Graph, operands: tuple[int, ...], single: list[bool]
                ) -> tuple[int, ...]:
    """(operand, *nodes) for a matmul operand that is a concat, or a reshape of one,
    each used once, keeping the leading axis (every part and the result lead with the
    same size, the concat joins along another axis): `nodes` are the concat and the
    reshape; () when no operand is."""
    for a in operands:
        node = g.nodes[a]
        chain: tuple[int, ...] = (a, a)
        if node.op == "reshape" and single[a]:
            node = g.nodes[node.args[0]]
            chain = (a, node.id, a)
        if node.op != "concat" or not single[node.id] or not single[a] or not node.shape:
            continue
        lead = node.shape[0]
        axis = int(node.attr("axis")) % len(node.shape)
        if axis != 0 and g.nodes[a].shape and g.nodes[a].shape[0] == lead and lead > 1 and \
                all(g.nodes[p].shape and g.nodes[p].shape[0] == lead for p in node.args):
            return chain
    return ()
