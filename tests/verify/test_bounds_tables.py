"""The bounds analyses read the op table: every op has an IBP rule, a CROWN rule and a
relaxation decision (a rule or a refusal with a reason); a new op is reported missing by
every table; a graph with an op no rule covers is refused before any work, naming the
op, the node and the analysis."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from torchlean.runtime.graph import trace
from torchlean.spec import OPS
from torchlean.spec import functional as F
from torchlean.spec.errors import UnsupportedOperation
from torchlean.spec.ops.elementwise import same_shape
from torchlean.spec.ops.registry import OpDef, apply
from torchlean.spec.ops.rules import TABLES
from torchlean.verify import bounds
from torchlean.verify.bounds.backward import CROWN
from torchlean.verify.bounds.ibp import IBP
from torchlean.verify.bounds.relaxations import RELAXATION

BOUNDS_TABLES = {"ibp": IBP, "crown": CROWN, "relaxation": RELAXATION}


@pytest.mark.parametrize("name", sorted(BOUNDS_TABLES))
def test_every_op_is_ruled_or_refused(name: str) -> None:
    table = BOUNDS_TABLES[name]
    assert TABLES[name] is table
    assert table.missing() == []
    for tag in OPS:  # each entry is a rule, or a refusal whose reason says something
        assert tag in table.rules or len(table.unsupported[tag]) > 20
    assert set(table.rules) | set(table.unsupported) <= set(OPS)


def test_ibp_and_crown_rule_every_op() -> None:
    # IBP and CROWN refuse nothing: CROWN's fallback is the node's interval
    assert IBP.unsupported == {} and CROWN.unsupported == {}


@pytest.fixture
def toy_op() -> Iterator[str]:
    """A temporarily registered op (removed afterwards) that no analysis knows."""
    tag = "toy_bounds_op"
    OPS[tag] = OpDef(tag, 1, same_shape, lambda f, xs, at: xs[0], kind="elementwise",
                     doc="identity, for tests")
    try:
        yield tag
    finally:
        del OPS[tag]


ANALYSES = {"ibp", "crown", "relaxation", "certificate", "rounding (affine)",
            "rounding (elementwise)", "zonotope", "gradcheck allowance", "cuda C form",
            "batching"}


def test_new_op_reported_missing_by_every_table(toy_op: str) -> None:
    import torchlean.runtime.graph.batching  # noqa: F401  (registers its table)
    import torchlean.runtime.graph.cuda_kernels  # noqa: F401

    assert ANALYSES <= set(TABLES)  # every analysis keeps a table, listed by name
    missing_in = {name for name, table in TABLES.items() if toy_op in table.missing()}
    assert missing_in == set(TABLES)


def test_graph_with_unruled_op_refused_before_any_work(toy_op: str) -> None:
    # the divisor interval [-1, 1] contains 0: IBP would raise at the div node if it got
    # there, so an error naming the toy op shows the check came first
    def fn(p: object, x: object) -> object:
        return apply(toy_op, F.div(x, x))  # type: ignore[arg-type]

    g = trace(fn, {"x": (1, 2)}, {}, "float")
    node = next(n for n in g.nodes if n.op == toy_op)
    lo, hi = np.full((1, 2), -1.0), np.ones((1, 2))
    for method, analysis in ((bounds.ibp, "ibp"), (bounds.crown, "crown")):
        with pytest.raises(UnsupportedOperation) as e:
            method(g, {}, lo, hi)
        assert e.value.op == toy_op and e.value.analysis == analysis
        assert f"%{node.id}" in str(e.value) and toy_op in str(e.value)


def test_refusals_name_the_node() -> None:
    # a divisor that may be 0 and token ids that depend on the input are refused by IBP
    # with the node's id
    g = trace(lambda p, x: F.div(x, x), {"x": (1, 2)}, {}, "float")
    with pytest.raises(UnsupportedOperation, match=r"%\d+.*divisor may be 0"):
        bounds.ibp(g, {}, np.full((1, 2), -1.0), np.ones((1, 2)))
    g = trace(lambda p, x: F.one_hot(x, 3), {"x": (1, 2)}, {}, "float")
    with pytest.raises(UnsupportedOperation, match="fixed tokens"):
        bounds.ibp(g, {}, np.zeros((1, 2)), np.ones((1, 2)))


def test_crown_refuses_values_beyond_its_underflow_allowance() -> None:
    """A box whose values pass 2^52 per row would outgrow the flat underflow charge: CROWN
    refuses by name (IBP, which scales its charges, still answers)."""
    g = trace(lambda p, x: F.relu(x), {"x": (1, 2)}, {}, "float")
    lo, hi = np.full((1, 2), -2.0**53), np.full((1, 2), 2.0**53)
    with pytest.raises(UnsupportedOperation, match=r"crown.*exceed 2\^52"):
        bounds.crown(g, {}, lo, hi)
    assert np.all(bounds.ibp(g, {}, lo, hi).upper >= 2.0**53)
