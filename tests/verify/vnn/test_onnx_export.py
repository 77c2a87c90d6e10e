"""ONNX export: a TorchLean model saved as ONNX loads back to the same graph and runs the
same in onnxruntime (tolerance as in onnx_testing.py); failures write nothing."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_testing import RTOL, ort_run  # noqa: E402

from torchlean.runtime.graph import Graph, trace  # noqa: E402
from torchlean.spec import functional as F  # noqa: E402
from torchlean.spec import nn  # noqa: E402
from torchlean.verify.vnn import EXPORT_OPSET, OnnxUnsupported, load_onnx, save_onnx  # noqa: E402
from torchlean.verify.vnn.onnx_export import graph_of_model  # noqa: E402

MODELS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "mlp": (nn.linear(5, 8) >> nn.relu() >> nn.linear(8, 3), (2, 5)),
    "conv-maxpool-padded": (nn.conv2d(2, 3, 3, padding=1) >> nn.relu()
                            >> nn.max_pool2d(2, padding=1) >> nn.flatten()
                            >> nn.linear(27, 4), (2, 2, 4, 4)),
    "conv-strided-avgpool-softmax": (nn.conv2d(2, 3, 2, stride=2) >> nn.tanh()
                                     >> nn.avg_pool2d(2) >> nn.flatten() >> nn.linear(3, 4)
                                     >> nn.softmax(), (1, 2, 4, 4)),
    "conv-dilated-groups-leaky": (nn.conv2d(4, 4, 2, dilation=2, groups=2)
                                  >> nn.leaky_relu(0.25) >> nn.global_avg_pool()
                                  >> nn.linear(4, 2) >> nn.sigmoid(), (1, 4, 5, 5)),
    # Batch-norm eps 2**-10 is a binary32 number, so the round trip is exact.
    "batchnorm": (nn.conv2d(2, 3, 3) >> nn.batch_norm2d(3, eps=2**-10) >> nn.sigmoid()
                  >> nn.global_avg_pool() >> nn.linear(3, 2), (2, 2, 5, 5)),
}


def _canonical(graph: Graph) -> Any:
    """The graph's JSON with 0-d constants as exact rationals (an int 1 and a float 1.0,
    or a Fraction and the equal float, are the same constant)."""
    doc = json.loads(graph.to_json())
    for n in graph.nodes:
        if n.op == "const":
            doc["nodes"][n.id]["value"] = str(Fraction(n.attr("value")))
    return doc


def _host(value: Any) -> np.ndarray[Any, Any]:
    return np.asarray(value.numpy(), dtype=np.float64)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_round_trips_and_runs_in_onnxruntime(name: str, tmp_path: Path) -> None:
    model, shape = MODELS[name]
    built = nn.build(model, seed=3)
    graph, state = graph_of_model(built, shape)
    path = save_onnx(built, None, tmp_path / f"{name}.onnx", input_shape=shape)
    back = load_onnx(path, field=built.field)
    assert _canonical(back.graph) == _canonical(graph)
    if all(not isinstance(n.attr("value"), Fraction) for n in graph.nodes if n.op == "const"):
        assert back.graph.to_json() == graph.to_json()
    assert list(back.params) == list(state)
    for k, v in state.items():  # parameters are written as binary32
        np.testing.assert_array_equal(back.params[k], _host(v).astype(np.float32))
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    (ref,) = ort_run(path, {"x": x})
    ours = _host(back(x, field="float"))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=RTOL * max(1.0, np.abs(ref).max()))
    # and the TorchLean model itself (binary64 parameters) agrees up to that rounding
    direct = _host(built.apply(built.params, _tensor(built, x)))
    np.testing.assert_allclose(direct, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


def _tensor(built: Any, x: np.ndarray[Any, Any]) -> Any:
    from torchlean.spec.tensor import Tensor

    return Tensor(built.field.asarray(x.astype(np.float64)), built.field)


def test_exported_file_is_a_valid_onnx_model(tmp_path: Path) -> None:
    model, shape = MODELS["conv-maxpool-padded"]
    path = save_onnx(nn.build(model, seed=0), None, tmp_path / "m.onnx", input_shape=shape)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import] == [EXPORT_OPSET]
    assert [i.name for i in proto.graph.input] == ["x"]
    assert {"Slice", "Concat", "MatMul", "Reshape", "Pad", "Max", "Where"} <= {
        n.op_type for n in proto.graph.node}


def test_strided_unslice_exports_by_spreading(tmp_path: Path) -> None:
    """conv_transpose2d builds a strided `unslice`, which ONNX has no op for: it exports as
    Reshape/Pad/Reshape/Slice and computes the same values."""
    rng = np.random.default_rng(0)
    params = {"w": rng.uniform(-1, 1, (2, 3, 3, 3)), "b": rng.uniform(-1, 1, (3,))}
    graph = trace(lambda p, x: F.conv_transpose2d(x, p["w"], p["b"], stride=(2, 3),
                                                  padding=1, output_padding=(1, 0)),
                  {"x": (1, 2, 3, 4)}, {k: v.shape for k, v in params.items()})
    assert any(n.op == "unslice" and any(s[2] > 1 for s in n.attr("spec"))
               for n in graph.nodes)
    path = save_onnx(graph, params, tmp_path / "deconv.onnx")
    x = rng.uniform(-1, 1, (1, 2, 3, 4)).astype(np.float32)
    (ref,) = ort_run(path, {"x": x})
    from torchlean.runtime.graph import interpret

    f32 = {k: v.astype(np.float32) for k, v in params.items()}
    ours = _host(interpret(graph, {**f32, "x": x})["out"])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=RTOL * max(1.0, np.abs(ref).max()))
    assert load_onnx(path)(x).shape == ref.shape


def test_unsupported_op_writes_nothing(tmp_path: Path) -> None:
    graph = trace(lambda x: F.gelu(F.relu(x)), {"x": (2, 3)})
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(OnnxUnsupported, match="gelu") as info:
        save_onnx(graph, {}, target)
    assert "%2 (gelu)" in str(info.value)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left


def test_graph_outputs_keep_their_names(tmp_path: Path) -> None:
    graph = trace(lambda x: {"a": F.relu(x), "b": x, "c": F.neg(x)}, {"x": (3,)})
    path = save_onnx(graph, {}, tmp_path / "m.onnx")
    back = load_onnx(path, field="float")
    assert back.output_names == ("out.a", "out.b", "out.c")
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    outs = back.run(x)
    np.testing.assert_array_equal(outs["out.b"].numpy(), x)
    np.testing.assert_array_equal(outs["out.a"].numpy(), np.maximum(x, 0))


def test_literals_export_as_initializers(tmp_path: Path) -> None:
    """A captured constant array (a literal node) is written as an initializer; it loads
    back as a parameter holding the same binary32 values."""
    from torchlean.runtime.graph import interpret
    from torchlean.spec.fields import get_field
    from torchlean.spec.tensor import Tensor

    f32 = get_field("float32")
    shift = Tensor(f32.asarray(np.array([0.5, -1.25, 2.0], np.float32)), f32)
    graph = trace(lambda x: F.relu(F.add(x, shift)), {"x": (2, 3)}, field="float32")
    assert any(n.op == "literal" for n in graph.nodes)
    path = save_onnx(graph, {}, tmp_path / "lit.onnx")
    back = load_onnx(path)
    (name,) = back.params
    np.testing.assert_array_equal(back.params[name], np.array([0.5, -1.25, 2.0], np.float32))
    x = np.array([[0.1, 2.0, -3.0], [-1.0, 1.0, 0.0]], np.float32)
    (ref,) = ort_run(path, {"x": x})
    # one correctly rounded binary32 add, then relu: the same bits everywhere
    np.testing.assert_array_equal(back(x, field="float32").numpy(), ref)
    np.testing.assert_array_equal(interpret(graph, {"x": x})["out"].numpy(), ref)
