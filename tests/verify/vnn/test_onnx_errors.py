"""ONNX import refuses what it cannot translate faithfully, with typed errors that name the
file and the node (index, name, op type)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx_testing import make_model, weights  # noqa: E402

from torchlean.spec.errors import DataFormatError, ShapeError, UnsupportedOperation  # noqa: E402
from torchlean.verify.vnn import DEFAULT_MAX_BYTES, OnnxUnsupported, load_onnx  # noqa: E402

node = onnx.helper.make_node


def _model(graph: Any) -> Any:
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])


def _names_node(err: BaseException, path: Path, index: int, name: str, op_type: str) -> None:
    text = str(err)
    assert str(path) in text and f"node {index}" in text, text
    assert repr(name) in text and op_type in text, text


def test_unsupported_operator_names_the_node(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", [node("Relu", ["x"], ["r"], name="first"),
                                            node("Hardmax", ["r"], ["y"], name="odd")],
                      {"x": (2, 3)})
    with pytest.raises(UnsupportedOperation) as info:
        load_onnx(path)
    assert isinstance(info.value, OnnxUnsupported) and info.value.op == "Hardmax"
    _names_node(info.value, path, 1, "odd", "Hardmax")


def test_unknown_attribute_is_refused(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", [node("LeakyRelu", ["x"], ["y"], name="lr",
                                                 alpha=0.1, beta=2.0)], {"x": (2, 3)})
    with pytest.raises(OnnxUnsupported, match="beta") as info:
        load_onnx(path)
    _names_node(info.value, path, 0, "lr", "LeakyRelu")


@pytest.mark.parametrize(("nodes", "inits", "opset", "match"), [
    ([node("Pad", ["x", "p"], ["y"], mode="reflect")], {"p": np.zeros(4, np.int64)}, 13,
     "reflect"),
    ([node("Slice", ["x"], ["y"], starts=[0], ends=[1])], {}, 13, "inputs from opset 10"),
    ([node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[3, 3], pads=[1, 1, 1, 1],
           ceil_mode=1)], {}, 13, "ceil_mode=1 where the last window starts in the end"),
    ([node("Gather", ["x", "i"], ["y"], axis=1)], {}, 13, "computed from the model input"),
    ([node("Dropout", ["x", "r", "t"], ["y"])],
     {"r": np.asarray(0.5, np.float32), "t": np.asarray(True)}, 13, "training_mode"),
    ([node("Squeeze", ["x"], ["y"], axes=[0])], {}, 13, "input from opset 13"),
])
def test_unsupported_attribute_values(tmp_path: Path, nodes: list[object],
                                      inits: dict[str, object], opset: int, match: str) -> None:
    feeds: dict[str, tuple[int, ...]] = {"x": (1, 1, 5, 5)}
    if any(getattr(n, "op_type", "") == "Gather" for n in nodes):
        feeds["i"] = (2,)
    path = make_model(tmp_path / "m.onnx", nodes, feeds, inits=inits, opset=opset)
    with pytest.raises(OnnxUnsupported, match=match) as info:
        load_onnx(path)
    assert str(path) in str(info.value) and "node 0" in str(info.value)


@pytest.mark.parametrize("opset", [6, 21])
def test_opset_outside_the_supported_range(tmp_path: Path, opset: int) -> None:
    path = make_model(tmp_path / "m.onnx", [node("Relu", ["x"], ["y"])], {"x": (2,)},
                      opset=opset)
    with pytest.raises(OnnxUnsupported, match=f"opset {opset} is outside"):
        load_onnx(path)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all \x00\xff" * 4,
                                     b'{"format": "torchlean.graph"}'])
def test_not_an_onnx_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bogus.onnx"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match="not an ONNX model") as info:
        load_onnx(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read"):
        load_onnx(tmp_path / "absent.onnx")


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.onnx"
    path.write_bytes(b"\xff" * 100)  # not ONNX either: the size check must come first
    with pytest.raises(DataFormatError, match="more than the limit of 10"):
        load_onnx(path, max_bytes=10)
    assert DEFAULT_MAX_BYTES == 256 * 2**20


def test_missing_initializer_names_node(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", [node("MatMul", ["x", "W"], ["y"], name="mm")],
                      {"x": (2, 3)})
    with pytest.raises(DataFormatError, match="'W' is neither") as info:
        load_onnx(path)
    _names_node(info.value, path, 0, "mm", "MatMul")


def test_shapes_that_do_not_chain_name_node(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", [node("Relu", ["x"], ["r"]),
                                            node("MatMul", ["r", "W"], ["y"], name="mm")],
                      {"x": (2, 3)}, inits={"W": weights((4, 5), 0)})
    with pytest.raises(ShapeError, match="inner dims") as info:
        load_onnx(path)
    _names_node(info.value, path, 1, "mm", "MatMul")


def test_declared_output_shape_is_checked(tmp_path: Path) -> None:
    g = onnx.helper.make_graph(
        [node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 2])])
    path = tmp_path / "m.onnx"
    path.write_bytes(_model(g).SerializeToString())
    with pytest.raises(ShapeError, match="declares shape"):
        load_onnx(path)


def test_external_data_is_not_read(tmp_path: Path) -> None:
    t = onnx.numpy_helper.from_array(weights((3, 2), 0), "W")
    t.data_location = onnx.TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    t.ClearField("raw_data")
    g = onnx.helper.make_graph(
        [node("MatMul", ["x", "W"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [t])
    path = tmp_path / "m.onnx"
    path.write_bytes(_model(g).SerializeToString())
    with pytest.raises(OnnxUnsupported, match="external file"):
        load_onnx(path)


def test_custom_domain_is_refused(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", [node("Relu", ["x"], ["y"], domain="com.example")],
                      {"x": (2,)})
    with pytest.raises(OnnxUnsupported, match="domain 'com.example'"):
        load_onnx(path)


def test_integer_tensor_as_data_is_refused(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.onnx", [node("Add", ["x", "k"], ["y"])], {"x": (3,)},
                      inits={"k": np.arange(3)})
    with pytest.raises(OnnxUnsupported, match="int64 tensor 'k' is used as data"):
        load_onnx(path)


def test_attributes_cannot_make_the_import_explode(tmp_path: Path) -> None:
    big_pool = make_model(tmp_path / "pool.onnx", [node("MaxPool", ["x"], ["y"],
                                                        kernel_shape=[1000, 1000],
                                                        pads=[999, 999, 999, 999])],
                          {"x": (1, 1, 2, 2)})
    with pytest.raises(OnnxUnsupported, match="pooling window"):
        load_onnx(big_pool)
    big_fill = make_model(tmp_path / "fill.onnx", [
        node("ConstantOfShape", ["s"], ["c"]), node("Add", ["x", "c"], ["y"])],
        {"x": (1,)}, inits={"s": np.array([2**20, 2**20])})
    with pytest.raises(DataFormatError, match="over"):
        load_onnx(big_fill)
