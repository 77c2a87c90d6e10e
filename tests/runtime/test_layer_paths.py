"""Traced models remember, per node, the layer that was running (`Graph.layers`), a side
table that changes neither equality nor the fingerprint, so analyses can name the layer
as well as the node."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from torchlean.runtime.graph import simplify, trace_model
from torchlean.spec import nn
from torchlean.verify.rounding import RoundingBoundError, error_bound


def _net() -> object:
    return nn.build(nn.sequential(nn.linear(3, 4), nn.relu(), nn.linear(4, 2)), seed=0,
                    dtype="ieee32exec")


def test_each_op_node_names_its_layer() -> None:
    g = trace_model(_net(), (1, 3), "ieee32exec")
    assert len(g.layers) == len(g.nodes)
    by_op = {(n.op, g.layers[n.id]) for n in g.nodes if not n.is_leaf}
    assert ("relu", "layer 1 (relu)") in by_op
    assert any(op == "matmul" and layer.startswith("layer 0 (linear") for op, layer in by_op)
    assert any(op == "matmul" and layer.startswith("layer 2 (linear") for op, layer in by_op)
    assert all(g.layers[n.id] == "" for n in g.nodes if n.is_leaf)
    relu = next(n for n in g.nodes if n.op == "relu")
    assert g.describe(relu) == f"node %{relu.id} (relu) in layer 1 (relu)"


def test_the_side_table_changes_neither_equality_nor_fingerprint() -> None:
    g = trace_model(_net(), (1, 3), "ieee32exec")
    bare = dataclasses.replace(g, layers=(), _fingerprint=[])
    assert bare == g and hash(bare) == hash(g) and bare.fingerprint == g.fingerprint
    assert bare.describe(bare.nodes[-1]).endswith(")") and " in " not in bare.describe(
        bare.nodes[-1])


def test_passes_carry_the_layers_along() -> None:
    g = simplify(trace_model(_net(), (1, 3), "ieee32exec"))
    assert len(g.layers) == len(g.nodes)
    assert any(layer == "layer 1 (relu)" for layer in g.layers)


def test_a_rounding_error_names_the_layer() -> None:
    net = _net()
    params = {k: np.full(v.shape, 2.0**100, np.float32) for k, v in net.params.items()}
    lo = np.zeros((1, 3), np.float32)
    # layer 2 multiplies 2^100 by values beyond 2^100: the overflow is named there
    where = r"node %\d+ \(matmul\) in layer 2 \(linear 4->2\)"
    with pytest.raises(RoundingBoundError, match=where):
        error_bound(net, params, (lo, lo + 1))
