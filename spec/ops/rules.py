"""Rule tables: how an analysis (IBP, CROWN, a rounding bound, ...) reads the op table.

An analysis keeps one `RuleTable`: a rule per op tag, or an explicit entry in its
`unsupported` map whose reason is what the user is told. `missing()` lists the ops of
`OPS` with neither, so a coverage test can enumerate the table and fail when an op is
added without a decision for every analysis. `check_ops` refuses a graph before any
work is done, naming the op, the node and the analysis. Every table is listed in
`TABLES` by name, so one test can show that a newly registered op is reported missing by
every analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from ..errors import UnsupportedOperation
from .registry import OPS

__all__ = ["RuleTable", "Node", "TABLES"]

R = TypeVar("R")
TABLES: dict[str, RuleTable[Any]] = {}


class Node(Protocol):
    """What this module reads of a graph node (the IR's nodes and others)."""

    @property
    def id(self) -> int: ...

    @property
    def op(self) -> str: ...


class RuleTable(Generic[R]):
    """One rule per op tag for the analysis `name`, and the ops it refuses, with why."""

    def __init__(self, name: str, field: str = "float") -> None:
        self.name = name
        self.field = field
        self.rules: dict[str, R] = {}
        self.unsupported: dict[str, str] = {}
        if name in TABLES:
            raise ValueError(f"a rule table named {name!r} already exists")
        TABLES[name] = self

    def rule(self, *tags: str) -> Callable[[R], R]:
        """Decorator registering one rule for each of `tags`."""

        def add(rule: R) -> R:
            for tag in tags:
                self.add(tag, rule)
            return rule

        return add

    def add(self, tag: str, rule: R) -> None:
        """Register `rule` for op `tag` (once; a tag is either ruled or refused)."""
        if tag in self.rules or tag in self.unsupported:
            raise ValueError(f"{self.name}: op {tag!r} already has an entry")
        self.rules[tag] = rule

    def refuse(self, reason: str, *tags: str) -> None:
        """Declare that this analysis does not handle `tags`, and why (shown to users)."""
        for tag in tags:
            if tag in self.rules or tag in self.unsupported:
                raise ValueError(f"{self.name}: op {tag!r} already has an entry")
            self.unsupported[tag] = reason

    def missing(self, tags: Iterable[str] | None = None) -> list[str]:
        """The ops (of `OPS` by default) with neither a rule nor an unsupported entry."""
        pool = OPS if tags is None else tags
        return sorted(t for t in pool if t not in self.rules and t not in self.unsupported)

    def error(self, tag: str, where: str = "") -> UnsupportedOperation:
        """The error telling the user this analysis cannot handle op `tag` at `where`."""
        reason = self.unsupported.get(tag)
        if reason is None:
            reason = "no rule for this op" if tag in OPS else "not an op of the op table"
        detail = f"{where}: {reason}" if where else reason
        return UnsupportedOperation(tag, self.field, detail, analysis=self.name)

    def get(self, tag: str, where: str = "") -> R:
        """The rule for `tag`; `UnsupportedOperation` naming `where` when there is none."""
        rule = self.rules.get(tag)
        if rule is None:
            raise self.error(tag, where)
        return rule

    def check_ops(self, nodes: Iterable[Node], skip: Iterable[str] = (),
                  describe: Callable[[Node], str] | None = None) -> None:
        """Raise for the first node (op tags in `skip` aside) this table has no rule for."""
        skipped = set(skip)
        for n in nodes:
            if n.op not in skipped and n.op not in self.rules:
                where = describe(n) if describe is not None else f"node %{n.id}"
                raise self.error(n.op, where)
