"""Every analysis decides about every op of the table: a rule, or an entry in its
`unsupported` map whose reason users see. Adding an op to `OPS` without a decision for
each analysis fails here, naming the analysis and the op."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import torchlean.runtime.graph.cuda_kernels  # noqa: F401  (registers its table)
import torchlean.verify.bounds.zonotope  # noqa: F401
import torchlean.verify.gradients.allowance  # noqa: F401
import torchlean.verify.rounding  # noqa: F401
from torchlean.runtime.graph import trace
from torchlean.runtime.graph.fusion import ELEMENTWISE, is_elementwise
from torchlean.runtime.graph.passes import ATTR_CHECKS
from torchlean.spec import functional as F
from torchlean.spec import nn
from torchlean.spec.errors import UnsupportedOperation
from torchlean.spec.ops import OPS
from torchlean.spec.ops.registry import ATTR_KINDS
from torchlean.spec.ops.rules import TABLES
from torchlean.verify.rounding import error_bound, observed_error

ANALYSES = ("rounding (elementwise)", "rounding (affine)", "zonotope", "gradcheck allowance",
            "cuda C form")


@pytest.mark.parametrize("name", ANALYSES)
def test_every_op_has_a_rule_or_a_reason(name: str) -> None:
    table = TABLES[name]
    assert table.missing() == [], f"{name}: no rule and no refusal for these ops"
    assert all(reason.strip() for reason in table.unsupported.values())
    assert set(table.rules) | set(table.unsupported) <= set(OPS), "rules for unknown ops"


def test_every_attribute_kind_is_checked_by_the_compiled_passes() -> None:
    assert set(ATTR_CHECKS) == set(ATTR_KINDS)


def test_fusion_reads_the_kind_from_the_table() -> None:
    assert ELEMENTWISE == {t for t, op in OPS.items() if op.kind == "elementwise"}
    assert not is_elementwise("matmul") and is_elementwise("add")
    assert not is_elementwise("no such op")
    c_forms = TABLES["cuda C form"]
    assert all(OPS[t].kind == "elementwise" for t in c_forms.rules)


def test_the_affine_pass_refuses_what_the_elementwise_pass_refuses() -> None:
    assert TABLES["rounding (affine)"].unsupported == TABLES["rounding (elementwise)"].unsupported


def test_a_refused_op_is_named_before_any_work() -> None:
    g = trace(lambda v: F.one_hot(F.relu(v), 3), {"x": (2,)}, field="ieee32exec")
    with pytest.raises(UnsupportedOperation, match=r"one_hot.*rounding.*node %2.*labels"):
        error_bound(g, {}, (np.zeros(2, np.float32), np.ones(2, np.float32)))


@pytest.mark.parametrize("method", ["affine", "elementwise"])
@pytest.mark.parametrize("dtype", ["ieee32exec", "float32_any_order"])
def test_cnn_bounds_cover_the_observed_error(method: str, dtype: str) -> None:
    """A conv / max-pool / flatten / linear graph (slice, concat, reshape, transpose,
    maximum, matmul, broadcast_to ...) gets a bound, and the bound covers ieee32exec at
    sample points (observed_error is exact here: every op is rational)."""
    model = nn.sequential(nn.conv2d(1, 2, 3, padding=1), nn.relu(), nn.max_pool2d(2),
                          nn.avg_pool2d(1), nn.flatten(), nn.linear(8, 3))
    net = nn.build(model, seed=1, dtype="ieee32exec")
    rng = np.random.default_rng(1)
    params = {k: rng.normal(0, 0.5, v.shape).astype(np.float32) for k, v in net.params.items()}
    x0 = rng.random((1, 1, 4, 4)).astype(np.float32)
    lo, hi = x0 - np.float32(0.05), x0 + np.float32(0.05)
    rep = error_bound(net, params, (lo, hi), dtype, method=method, samples=4)
    ops = {n.op for n in rep_graph(net)}
    assert {"slice", "concat", "maximum", "matmul", "reshape"} <= ops
    assert all(OPS[t].rational for t in ops if t in OPS)
    for name, obs in rep.observed.items():
        assert np.all(obs <= rep.bounds[name]), name
    assert rep.bound > 0


def rep_graph(net: object) -> tuple[object, ...]:
    from torchlean.verify.rounding import as_graph

    return as_graph(net, (1, 1, 4, 4)).nodes


def test_observed_error_uses_exact_values_for_rational_graphs() -> None:
    g = trace(lambda v: F.where(F.greater(v, 0.5), v / 3, v), {"x": (2,)}, field="ieee32exec")
    obs = observed_error(g, {}, [{"x": np.array([1.0, 0.25])}])["out"]
    third = np.float32(1.0) / np.float32(3.0)
    assert obs[0] == float(abs(Fraction(float(third)) - Fraction(1, 3))) and obs[1] == 0.0
