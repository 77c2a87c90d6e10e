"""rebatch: row i of the re-batched graph computes the batch-1 graph at input row i."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from torchlean import nn
from torchlean.runtime.graph import interpret, trace
from torchlean.runtime.graph.batching import BATCHING, rebatch
from torchlean.spec import OPS
from torchlean.spec import functional as F
from torchlean.spec.errors import ShapeError, UnsupportedOperation
from torchlean.verify.bounds import as_graph


def _host(v: Any) -> Any:
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float32)


MODELS = {
    "mlp": (nn.sequential(nn.linear(5, 7), nn.relu(), nn.linear(7, 3)), (1, 5)),
    "cnn": (nn.conv2d(1, 2, 3, padding=1) >> nn.relu() >> nn.max_pool2d(2)
            >> nn.flatten() >> nn.linear(8, 2), (1, 1, 4, 4)),
    "avgpool": (nn.conv2d(1, 2, 3, stride=2) >> nn.tanh() >> nn.avg_pool2d(2)
                >> nn.flatten() >> nn.linear(2, 2), (1, 1, 6, 6)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rows_of_the_rebatched_graph_are_the_batch_one_graph(name: str) -> None:
    model, shape = MODELS[name]
    net = nn.build(model, seed=0)
    params = {k: _host(v) for k, v in net.params.items()}
    g1 = as_graph(net, net.params, shape)
    g6 = rebatch(g1, 6)
    x = np.random.default_rng(1).normal(size=(6, *shape[1:])).astype(np.float32)
    (_, out6), = interpret(g6, {**params, "x": x}, field="ieee32exec").items()
    for i in range(6):
        (_, out1), = interpret(g1, {**params, "x": x[i:i + 1]}, field="ieee32exec").items()
        # the same ops in the same order on the same numbers; in a field with a fixed
        # semantics (ieee32exec) the rows are equal bit for bit (native float is not: BLAS
        # may block a batch of 6 differently from a batch of 1)
        assert np.array_equal(out1.numpy()[0], out6.numpy()[i])


def test_ops_that_mix_rows_are_refused_naming_the_node() -> None:
    g = trace(lambda x: F.sum(x, axis=0), {"x": (1, 3)})
    with pytest.raises(UnsupportedOperation, match=r"batching.*node %\d+.*batch axis"):
        rebatch(g, 4)
    g = trace(lambda x: F.transpose(x, (1, 0, 2)), {"x": (1, 1, 3)})
    with pytest.raises(UnsupportedOperation, match="moves the batch axis"):
        rebatch(g, 4)
    with pytest.raises(ShapeError, match="leading axis of 1"):
        rebatch(trace(lambda x: F.relu(x), {"x": (2, 3)}), 4)


def test_every_op_has_a_batching_rule_or_a_reason() -> None:
    assert BATCHING.missing() == []
    assert set(BATCHING.rules) | set(BATCHING.unsupported) >= set(OPS)
