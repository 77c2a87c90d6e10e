"""Fusion planning: which elementwise op nodes of a graph run together as one kernel.

Backend independent: a caller says which nodes it can fuse (a predicate, e.g. "has a C
form"), and gets back groups of nodes that one elementwise kernel can compute in a
single pass. A group is connected, all its nodes have one output shape, and every value
it reads from outside broadcasts to that shape (so a bias row or a 0-d coefficient is
read in place, as the array library's broadcasting would read it).

Groups are grown greedily in node order: an op node joins the groups of those operands
that are group members of its shape. A group runs at the position of its last node, so
a merge is refused when a node outside the group that comes earlier than the joining
node already reads a member (it would need the value before the group runs). That rule
keeps every cross-group edge pointing forward, so the schedule stays topological and no
cycle can form; it may leave a fusion out that a cleverer placement would allow.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from ...spec.ops import OPS
from ...spec.shapes import Shape
from .ir import Graph, Node

__all__ = ["FusionGroup", "FusionPlan", "plan_fusion", "ELEMENTWISE", "is_elementwise"]



def is_elementwise(tag: str) -> bool:
    """Whether op `tag` computes each output element from the same-index elements of its
    (broadcast) operands (`OpDef.kind`): the only ops a fusion group may hold."""
    op = OPS.get(tag)
    return op is not None and op.kind == "elementwise"


ELEMENTWISE = frozenset(t for t in OPS if is_elementwise(t))
"""The elementwise ops of the table when this module was imported (`is_elementwise`
asks the table itself)."""


@dataclass(frozen=True)
class FusionGroup:
    """Op nodes computed by one elementwise kernel.

    `nodes`: member ids in ascending (topological) order; `inputs`: ids of the outside
    values the members read, in order of first use; `outputs`: members whose values are
    needed outside the group (read by a later node or a graph output), ascending;
    `shape`: every member's output shape."""

    nodes: tuple[int, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    shape: Shape

    @property
    def position(self) -> int:
        """The node id at which the group runs (its last member)."""
        return self.nodes[-1]


@dataclass(frozen=True)
class FusionPlan:
    """The groups of a graph (in order of position) and each node's group (-1: none)."""

    groups: tuple[FusionGroup, ...]
    group_of: tuple[int, ...]

    def schedule(self) -> tuple[int | FusionGroup, ...]:
        """The execution order: a node id for each node outside every group (leaves and
        constants included), a group at its position."""
        steps: list[int | FusionGroup] = []
        for i, g in enumerate(self.group_of):
            if g < 0:
                steps.append(i)
            elif self.groups[g].position == i:
                steps.append(self.groups[g])
        return tuple(steps)


def plan_fusion(graph: Graph,
                fusable: Callable[[Node], bool] | Collection[str] = lambda node: True,
                min_size: int = 2) -> FusionPlan:
    """The fusion groups of `graph`: connected sets of elementwise op nodes that `fusable`
    accepts (a predicate, or a collection of op tags), of one shape, with at least
    `min_size` members (smaller groups are left to run op by op). Deterministic."""
    accepts: Callable[[Node], bool]
    if isinstance(fusable, Collection):
        tags = frozenset(fusable)
        accepts = lambda n: n.op in tags  # noqa: E731
    else:
        accepts = fusable
    nodes = graph.nodes
    consumers: list[list[int]] = [[] for _ in nodes]
    for n in nodes:
        for a in dict.fromkeys(n.args):
            consumers[a].append(n.id)
    # group id per node (-1: none) and members per group id; groups merge into the
    # lowest id, and emptied ids are dropped at the end.
    owner = [-1] * len(nodes)
    members: dict[int, list[int]] = {}
    for n in nodes:
        if n.is_leaf or n.is_constant or not is_elementwise(n.op) or not accepts(n):
            continue
        merged = {n.id}
        joined: list[int] = []
        for a in n.args:
            g = owner[a]
            if g < 0 or g in joined or nodes[a].shape != n.shape:
                continue
            candidate = merged.union(members[g])
            if all(c > n.id or c in candidate for m in members[g] for c in consumers[m]):
                merged = candidate
                joined.append(g)
        gid = min(joined) if joined else n.id
        for g in joined:
            for m in members.pop(g):
                owner[m] = gid
        owner[n.id] = gid
        members[gid] = sorted(merged)
    outputs = {i for _, i in graph.outputs}
    groups: list[FusionGroup] = []
    group_of = [-1] * len(nodes)
    for ids in sorted(members.values(), key=lambda ms: ms[-1]):
        if len(ids) < min_size:
            continue
        inside = set(ids)
        ins: dict[int, None] = {}
        for m in ids:
            for a in nodes[m].args:
                if a not in inside:
                    ins.setdefault(a)
        outs = tuple(m for m in ids
                     if m in outputs or any(c not in inside for c in consumers[m]))
        for m in ids:
            group_of[m] = len(groups)
        groups.append(FusionGroup(tuple(ids), tuple(ins), outs, nodes[ids[0]].shape))
    return FusionPlan(tuple(groups), tuple(group_of))
