"""RuleTable: coverage over the op table, and the errors users see for a missing rule."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from torchlean.spec.errors import UnsupportedOperation
from torchlean.spec.ops import OPS
from torchlean.spec.ops.rules import TABLES, RuleTable

_count = iter(range(10**6))


def _fresh(name: str) -> str:
    return f"{name}-{next(_count)}"


@dataclass
class _Node:
    id: int
    op: str


def test_missing_lists_every_op_without_an_entry() -> None:
    table: RuleTable[int] = RuleTable(_fresh("toy"))
    table.add("add", 1)
    table.refuse("not linear", "exp")
    missing = table.missing()
    assert "add" not in missing and "exp" not in missing
    assert set(missing) == set(OPS) - {"add", "exp"}


def test_errors_name_the_op_the_node_and_the_analysis() -> None:
    table: RuleTable[int] = RuleTable(_fresh("toy-ibp"))
    table.refuse("no sound enclosure here", "sin")
    with pytest.raises(UnsupportedOperation, match=r"'sin'.*toy-ibp.*%3.*no sound enclosure"):
        table.check_ops([_Node(0, "input"), _Node(3, "sin")], skip=("input",))
    with pytest.raises(UnsupportedOperation, match=r"'cos'.*toy-ibp.*node %7.*no rule"):
        table.get("cos", "node %7")
    err = table.error("nonsense")
    assert err.analysis == table.name and "not an op of the op table" in str(err)


def test_an_op_gets_one_entry() -> None:
    table: RuleTable[int] = RuleTable(_fresh("toy"))
    table.add("add", 1)
    with pytest.raises(ValueError, match="already"):
        table.refuse("x", "add")
    with pytest.raises(ValueError, match="already"):
        table.rule("add")(2)


def test_tables_are_listed_by_name_once() -> None:
    name = _fresh("listed")
    table: RuleTable[int] = RuleTable(name)
    assert TABLES[name] is table
    with pytest.raises(ValueError, match="already exists"):
        RuleTable(name)
