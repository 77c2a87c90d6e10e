"""ONNX import: toy models of every supported operator (several opsets) agree with
onnxruntime in the float and float32 fields; tolerance in onnx_testing.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_testing import agree, make_model, ort_run, random_inputs, weights  # noqa: E402

from torchlean.runtime.graph import Graph  # noqa: E402
from torchlean.verify.vnn import load_onnx  # noqa: E402

helper = onnx.helper

node = helper.make_node
I64_MAX = 2**63 - 1
Case = Callable[[Path], Path]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


# -- linear layers and elementwise ops -------------------------------------------------
for _opset in (7, 11, 13, 20):
    def _gemm(p: Path, opset: int = _opset) -> Path:
        return make_model(p, [node("Gemm", ["x", "W", "b"], ["y"], alpha=0.5, beta=2.0,
                                   transB=1)],
                          {"x": (3, 4)}, inits={"W": weights((5, 4), 1), "b": weights((5,), 2)},
                          opset=opset)
    case(f"gemm-opset{_opset}")(_gemm)


@case("gemm-transA-no-C")
def _gemm_trans_a(p: Path) -> Path:
    return make_model(p, [node("Gemm", ["x", "W"], ["y"], transA=1)], {"x": (4, 3)},
                      inits={"W": weights((4, 5), 1)}, opset=11)


@case("gemm-C-row")
def _gemm_c_row(p: Path) -> Path:
    return make_model(p, [node("Gemm", ["x", "W", "c"], ["y"])], {"x": (2, 3)},
                      inits={"W": weights((3, 4), 1), "c": weights((1, 4), 2)}, opset=9)


@case("matmul-add-relu-3d")
def _matmul(p: Path) -> Path:
    return make_model(p, [node("MatMul", ["x", "W"], ["h"]), node("Add", ["h", "b"], ["z"]),
                          node("Relu", ["z"], ["y"])],
                      {"x": (2, 3, 4)}, inits={"W": weights((4, 6), 1), "b": weights((6,), 2)},
                      opset=9)


for _opset in (7, 13):
    def _elementwise(p: Path, opset: int = _opset) -> Path:
        scalar = helper.make_tensor("s", 1, [], [0.75])
        return make_model(p, [
            node("Constant", [], ["c"], value=scalar),
            node("Sub", ["x", "m"], ["a"]), node("Div", ["a", "c"], ["b"]),
            node("Mul", ["b", "w"], ["d"]), node("Neg", ["d"], ["e"]),
            node("LeakyRelu", ["e"], ["f"], alpha=0.2), node("Sigmoid", ["f"], ["g"]),
            node("Tanh", ["b"], ["h"]), node("Add", ["g", "h"], ["k"]),
            node("Mul", ["k", "k"], ["y"]),
        ], {"x": (2, 6)}, inits={"m": weights((1, 6), 1), "w": weights((6,), 2)}, opset=opset)
    case(f"elementwise-opset{_opset}")(_elementwise)


@case("max-min-pow-abs-exp")
def _extras(p: Path) -> Path:
    return make_model(p, [
        node("Max", ["x", "a", "b"], ["m"]), node("Min", ["m", "b"], ["n"]),
        node("Pow", ["n", "two"], ["q"]), node("Abs", ["x"], ["r"]), node("Exp", ["r"], ["e"]),
        node("Add", ["q", "e"], ["y"]),
    ], {"x": (3, 4)}, inits={"a": weights((3, 4), 1), "b": weights((4,), 2),
                            "two": np.asarray(2.0, np.float32)}, opset=13)


@case("greater-where")
def _where(p: Path) -> Path:
    return make_model(p, [node("Greater", ["x", "t"], ["g"]),
                          node("Where", ["g", "x", "t"], ["w"]),
                          node("Cast", ["g"], ["gf"], to=1), node("Add", ["w", "gf"], ["y"])],
                      {"x": (3, 4)}, inits={"t": weights((4,), 1)}, opset=13)


for _opset, _axis in ((11, 1), (13, 1), (13, -1)):
    def _softmax(p: Path, opset: int = _opset, axis: int = _axis) -> Path:
        return make_model(p, [node("Softmax", ["x"], ["y"], axis=axis),
                              node("LogSoftmax", ["x"], ["z"], axis=axis)],
                          {"x": (2, 3, 4)}, outputs=("y", "z"), opset=opset)
    case(f"softmax-opset{_opset}-axis{_axis}")(_softmax)


# -- structure -----------------------------------------------------------------------
@case("flatten-reshape-0-and-minus1")
def _flatten(p: Path) -> Path:
    return make_model(p, [node("Flatten", ["x"], ["f"], axis=2),
                          node("Reshape", ["x", "s"], ["r"]),
                          node("Flatten", ["r"], ["g"], axis=-1),
                          node("Reshape", ["g", "s2"], ["h"], allowzero=1),
                          node("Relu", ["f"], ["y"]), node("Relu", ["h"], ["z"])],
                      {"x": (2, 3, 2, 2)}, outputs=("y", "z"),
                      inits={"s": np.array([0, 4, -1]), "s2": np.array([4, 6])}, opset=14)


@case("transpose-squeeze-unsqueeze-opset11")
def _squeeze11(p: Path) -> Path:
    return make_model(p, [node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
                          node("Squeeze", ["t"], ["s"], axes=[2]),
                          node("Unsqueeze", ["s"], ["u"], axes=[0, -1]),
                          node("Transpose", ["u"], ["y"])],
                      {"x": (2, 1, 3)}, opset=11)


@case("squeeze-unsqueeze-opset13")
def _squeeze13(p: Path) -> Path:
    return make_model(p, [node("Squeeze", ["x", "ax"], ["s"]),
                          node("Unsqueeze", ["s", "ax2"], ["u"]), node("Squeeze", ["u"], ["y"])],
                      {"x": (2, 1, 3)}, inits={"ax": np.array([1]), "ax2": np.array([1, 3])},
                      opset=13)


@case("concat-with-initializer")
def _concat(p: Path) -> Path:
    return make_model(p, [node("Relu", ["x"], ["r"]),
                          node("Concat", ["x", "r", "c"], ["y"], axis=-1)],
                      {"x": (2, 3)}, inits={"c": weights((2, 2), 1)}, opset=11)


@case("slice-opset9-attributes")
def _slice9(p: Path) -> Path:
    return make_model(p, [node("Slice", ["x"], ["y"], starts=[1, -3], ends=[100, -1],
                               axes=[1, 2])], {"x": (2, 5, 6)}, opset=9)


@case("slice-opset13-inputs-steps-clamped")
def _slice13(p: Path) -> Path:
    return make_model(p, [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                      {"x": (2, 5, 7)}, inits={"st": np.array([-4, 1]),
                                               "en": np.array([I64_MAX, -1]),
                                               "ax": np.array([-1, 1]), "sp": np.array([2, 2])},
                      opset=13)


@case("slice-negative-steps")
def _slice_negative(p: Path) -> Path:
    # axis 2 reversed whole (clamped start, end before 0), axis 1 every other from the end,
    # axis 0 a one-element reversed range
    return make_model(p, [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"]),
                          node("Slice", ["x", "st2", "en2", "ax2", "sp2"], ["z"])],
                      {"x": (2, 5, 4)}, outputs=("y", "z"),
                      inits={"st": np.array([I64_MAX, -1, 1]), "en": np.array([-I64_MAX, 0, 0]),
                             "ax": np.array([2, 1, 0]), "sp": np.array([-1, -2, -1]),
                             "st2": np.array([3]), "en2": np.array([3]), "ax2": np.array([1]),
                             "sp2": np.array([-1])},
                      opset=13)


@case("clip-opset7-sum-reciprocal")
def _clip7(p: Path) -> Path:
    return make_model(p, [node("Clip", ["x"], ["c"], min=-0.5, max=1.25),
                          node("Clip", ["x"], ["d"], max=0.25),
                          node("Sum", ["c", "d", "x"], ["s"]), node("Abs", ["s"], ["a"]),
                          node("Add", ["a", "one"], ["b"]), node("Reciprocal", ["b"], ["y"])],
                      {"x": (3, 4)}, inits={"one": np.asarray(1.0, np.float32)}, opset=7)


@case("clip-opset13-inputs")
def _clip13(p: Path) -> Path:
    return make_model(p, [node("Clip", ["x", "lo", "hi"], ["c"]),
                          node("Clip", ["x", "", "hi"], ["d"]), node("Add", ["c", "d"], ["y"])],
                      {"x": (3, 4)}, inits={"lo": np.asarray(-0.5, np.float32),
                                            "hi": np.asarray(0.75, np.float32)}, opset=13)


@case("gather-scalar-and-vector-indices")
def _gather(p: Path) -> Path:
    return make_model(p, [node("Gather", ["x", "i"], ["a"], axis=1),
                          node("Gather", ["x", "j"], ["b"], axis=-1),
                          node("Relu", ["a"], ["y"]), node("Relu", ["b"], ["z"])],
                      {"x": (2, 4, 3)}, outputs=("y", "z"),
                      inits={"i": np.asarray(2), "j": np.array([[2, 0], [-1, 1]])}, opset=13)


@case("shape-gather-concat-reshape")
def _shape_fold(p: Path) -> Path:
    return make_model(p, [node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["n"]),
                          node("Unsqueeze", ["n", "ax"], ["n1"]),
                          node("Concat", ["n1", "minus1"], ["target"], axis=0),
                          node("Cast", ["target"], ["t64"], to=7),
                          node("Reshape", ["x", "t64"], ["y"])],
                      {"x": (2, 3, 4)}, inits={"zero": np.asarray(0), "ax": np.array([0]),
                                               "minus1": np.array([-1])}, opset=13)


@case("expand-reduce")
def _expand(p: Path) -> Path:
    return make_model(p, [node("Expand", ["x", "shape"], ["e"]),
                          node("ReduceSum", ["e", "ax"], ["s"], keepdims=0),
                          node("ReduceMean", ["e"], ["m"], axes=[0, 2]),
                          node("ReduceMax", ["e"], ["x2"], axes=[-1], keepdims=1),
                          node("Add", ["m", "x2"], ["y"]), node("Relu", ["s"], ["z"])],
                      {"x": (3, 1)}, outputs=("y", "z"),
                      inits={"shape": np.array([2, 3, 4]), "ax": np.array([1])}, opset=13)


@case("reduce-axes-attributes-opset11")
def _reduce11(p: Path) -> Path:
    return make_model(p, [node("ReduceSum", ["x"], ["s"], axes=[1], keepdims=1),
                          node("ReduceMean", ["x"], ["m"], axes=[-1, 0]),
                          node("Add", ["s", "m"], ["y"])], {"x": (2, 3, 4)}, opset=11)


@case("reduce-axes-inputs-opset18")
def _reduce18(p: Path) -> Path:
    return make_model(p, [node("ReduceMean", ["x", "ax"], ["m"], keepdims=0),
                          node("ReduceMax", ["x", "ax"], ["n"], keepdims=0),
                          node("ReduceSum", ["x"], ["t"], keepdims=0),
                          node("Add", ["m", "n"], ["u"]), node("Add", ["u", "t"], ["y"])],
                      {"x": (2, 3, 4)}, inits={"ax": np.array([0, 2])}, opset=18)


@case("constant-identity-dropout-cast-opset9")
def _misc9(p: Path) -> Path:
    value = helper.make_tensor("v", 1, [3], [0.5, -1.0, 2.0])
    return make_model(p, [node("Constant", [], ["c"], value=value),
                          node("Identity", ["x"], ["i"]),
                          node("Dropout", ["i"], ["d"], ratio=0.3),
                          node("Cast", ["d"], ["f"], to=1), node("Mul", ["f", "c"], ["y"])],
                      {"x": (2, 3)}, opset=9)


@case("dropout-opset13-inputs")
def _dropout13(p: Path) -> Path:
    return make_model(p, [node("Dropout", ["x", "r"], ["d"]), node("Relu", ["d"], ["y"])],
                      {"x": (2, 3)}, inits={"r": np.asarray(0.5, np.float32)}, opset=13)


# -- convolution, pooling, padding, normalisation ----------------------------------------
@case("conv-asymmetric-pads-strides-dilations-groups")
def _conv(p: Path) -> Path:
    return make_model(p, [node("Conv", ["x", "W", "b"], ["y"], pads=[1, 0, 2, 1],
                               strides=[2, 1], dilations=[1, 2], group=2,
                               kernel_shape=[3, 2])],
                      {"x": (2, 4, 7, 6)}, inits={"W": weights((6, 2, 3, 2), 1),
                                                  "b": weights((6,), 2)}, opset=11)


@case("conv-auto-pad-same-upper")
def _conv_same(p: Path) -> Path:
    return make_model(p, [node("Conv", ["x", "W"], ["h"], auto_pad="SAME_UPPER",
                               strides=[2, 2]),
                          node("Conv", ["h", "W2"], ["y"], auto_pad="VALID")],
                      {"x": (1, 2, 6, 5)}, inits={"W": weights((3, 2, 2, 2), 1),
                                                  "W2": weights((2, 3, 2, 2), 2)}, opset=9)


@case("conv-1d")
def _conv1d(p: Path) -> Path:
    return make_model(p, [node("Conv", ["x", "W", "b"], ["y"], pads=[1, 2], strides=[2])],
                      {"x": (2, 3, 9)}, inits={"W": weights((4, 3, 3), 1),
                                               "b": weights((4,), 2)}, opset=13)


@case("conv-transpose-stride-pads-output-padding")
def _deconv(p: Path) -> Path:
    return make_model(p, [node("ConvTranspose", ["x", "W", "b"], ["y"], strides=[2, 2],
                               pads=[1, 1, 1, 1], output_padding=[1, 1])],
                      {"x": (1, 2, 4, 3)}, inits={"W": weights((2, 3, 3, 3), 1),
                                                  "b": weights((3,), 2)}, opset=11)


@case("conv-transpose-asymmetric-groups")
def _deconv_asym(p: Path) -> Path:
    return make_model(p, [node("ConvTranspose", ["x", "W"], ["y"], strides=[1, 2],
                               pads=[0, 1, 1, 0], group=2)],
                      {"x": (1, 4, 3, 3)}, inits={"W": weights((4, 1, 2, 3), 1)}, opset=13)


@case("maxpool-pads-strides-dilations")
def _maxpool(p: Path) -> Path:
    return make_model(p, [node("MaxPool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2],
                               pads=[1, 1, 1, 1]),
                          node("MaxPool", ["x"], ["b"], kernel_shape=[2, 3], pads=[0, 1, 1, 0],
                               dilations=[2, 1]),
                          node("MaxPool", ["x"], ["c"], kernel_shape=[2, 2], strides=[2, 2],
                               ceil_mode=1),
                          node("Relu", ["a"], ["y"]), node("Relu", ["b"], ["z"]),
                          node("Relu", ["c"], ["w"])],
                      {"x": (1, 2, 6, 6)}, outputs=("y", "z", "w"), opset=12)


@case("pools-ceil-mode")
def _ceil(p: Path) -> Path:
    return make_model(p, [
        node("MaxPool", ["x"], ["a"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        node("MaxPool", ["x"], ["b"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1],
             ceil_mode=1),
        node("AveragePool", ["x"], ["c"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        node("AveragePool", ["x"], ["d"], kernel_shape=[3, 3], strides=[2, 2],
             pads=[0, 0, 1, 1], ceil_mode=1, count_include_pad=1),
        node("AveragePool", ["x"], ["e"], kernel_shape=[3, 2], strides=[2, 2],
             pads=[1, 0, 1, 0], ceil_mode=1),
        *(node("Relu", [i], [o]) for i, o in zip("abcde", ["y", "z", "w", "v", "u"],
                                                   strict=True))],
        {"x": (1, 2, 5, 6)}, outputs=("y", "z", "w", "v", "u"), opset=13)


@case("avgpool-count-include-pad-both-ways")
def _avgpool(p: Path) -> Path:
    return make_model(p, [node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3],
                               pads=[1, 1, 1, 1], strides=[2, 2]),
                          node("AveragePool", ["x"], ["b"], kernel_shape=[3, 2],
                               pads=[1, 0, 2, 1], count_include_pad=1),
                          node("AveragePool", ["x"], ["c"], kernel_shape=[2, 2],
                               strides=[2, 2]),
                          node("AveragePool", ["x"], ["d"], kernel_shape=[3, 3],
                               auto_pad="SAME_UPPER"),
                          node("GlobalAveragePool", ["x"], ["e"]),
                          node("Relu", ["a"], ["y"]), node("Relu", ["b"], ["z"]),
                          node("Relu", ["c"], ["w"]), node("Relu", ["d"], ["v"]),
                          node("Relu", ["e"], ["u"])],
                      {"x": (1, 2, 6, 5)}, outputs=("y", "z", "w", "v", "u"), opset=11)


@case("pad-opset9-attribute-value")
def _pad9(p: Path) -> Path:
    return make_model(p, [node("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 2, 1], value=0.5)],
                      {"x": (2, 3, 4)}, opset=9)


@case("pad-opset13-inputs-negative-crop")
def _pad13(p: Path) -> Path:
    return make_model(p, [node("Pad", ["x", "pads", "v"], ["y"], mode="constant")],
                      {"x": (2, 3, 4)}, inits={"pads": np.array([0, -1, 2, 0, 1, -1]),
                                               "v": np.asarray(-1.5, np.float32)}, opset=13)


@case("pad-opset18-axes")
def _pad18(p: Path) -> Path:
    return make_model(p, [node("Pad", ["x", "pads", "", "axes"], ["y"])],
                      {"x": (2, 3, 4)}, inits={"pads": np.array([1, 2, 0, 1]),
                                               "axes": np.array([-1, 1])}, opset=18)


for _opset in (7, 9, 15):
    def _bn(p: Path, opset: int = _opset) -> Path:
        var = np.abs(weights((3,), 4)) + 0.1
        return make_model(p, [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                   epsilon=1e-3)],
                          {"x": (2, 3, 4, 2)}, inits={"s": weights((3,), 1), "b": weights((3,), 2),
                                                      "m": weights((3,), 3), "v": var},
                          opset=opset)
    case(f"batchnorm-opset{_opset}")(_bn)


@case("initializers-listed-as-inputs")
def _old_style(p: Path) -> Path:
    return make_model(p, [node("MatMul", ["x", "W"], ["h"]), node("Add", ["h", "b"], ["y"])],
                      {"x": (1, 5)}, inits={"W": weights((5, 3), 1), "b": weights((3,), 2)},
                      opset=8, inits_as_inputs=True)


@case("unary-math")
def _unary(p: Path) -> Path:
    return make_model(p, [node("Abs", ["x"], ["a"]), node("Add", ["a", "one"], ["b"]),
                          node("Log", ["b"], ["c"]), node("Sqrt", ["b"], ["d"]),
                          node("Erf", ["x"], ["e"]), node("Softplus", ["x"], ["f"]),
                          node("Sin", ["x"], ["g"]), node("Cos", ["x"], ["h"]),
                          node("Concat", ["c", "d", "e", "f", "g", "h"], ["k"], axis=1),
                          node("GlobalMaxPool", ["k"], ["y"])],
                      {"x": (2, 3, 2, 2)}, inits={"one": np.asarray(1.0, np.float32)},
                      opset=13)


@case("constant-of-shape")
def _const_of_shape(p: Path) -> Path:
    fill = helper.make_tensor("f", 1, [1], [0.25])
    return make_model(p, [node("Shape", ["x"], ["s"]),
                          node("ConstantOfShape", ["s"], ["c"], value=fill),
                          node("Add", ["x", "c"], ["y"])], {"x": (2, 3)}, opset=13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_onnxruntime(name: str, tmp_path: Path) -> None:
    agree(CASES[name](tmp_path / f"{name}.onnx"))


def test_cases_cover_every_supported_operator(tmp_path: Path) -> None:
    from torchlean.verify.vnn import SUPPORTED_OPS

    used: set[str] = set()
    for name, make in CASES.items():
        used |= {n.op_type for n in onnx.load(str(make(tmp_path / f"{name}.onnx"))).graph.node}
    untested = set(SUPPORTED_OPS) - used
    assert not untested, f"operators without a toy model: {sorted(untested)}"


# -- the graph and its parameters --------------------------------------------------------
def test_initializers_become_named_params_and_inputs_come_after(tmp_path: Path) -> None:
    model = load_onnx(_old_style(tmp_path / "m.onnx"))
    assert isinstance(model.graph, Graph)
    assert [n.name for n in model.graph.params] == ["W", "b"]
    assert model.input_names == ("x",) and model.input_shape == (1, 5)
    assert model.output_names == ("y",)
    assert set(model.params) == {"W", "b"}
    np.testing.assert_array_equal(model.params["W"], weights((5, 3), 1))
    leaves = [n.op for n in model.graph.leaves]
    assert leaves == ["param", "param", "input"]


def test_shape_tensors_are_folded_not_params(tmp_path: Path) -> None:
    model = load_onnx(_shape_fold(tmp_path / "m.onnx"))
    assert model.params == {}
    assert [n.op for n in model.graph.nodes if not n.is_leaf] == ["reshape"]


def test_scalar_constant_node_is_a_field_constant(tmp_path: Path) -> None:
    model = load_onnx(CASES["elementwise-opset13"](tmp_path / "m.onnx"))
    consts = [n for n in model.graph.nodes if n.op == "const"]
    assert [n.attr("value") for n in consts] == [0.75]
    assert "c" not in model.params


def test_runs_exactly_and_in_intervals(tmp_path: Path) -> None:
    """The imported graph holds no literals, so it runs in the exact and interval fields;
    the exact result agrees with onnxruntime (tolerance as in onnx_testing) and the
    interval result encloses the exact one."""
    path = _gemm_trans_a(tmp_path / "m.onnx")
    model = load_onnx(path)
    feeds = random_inputs(model)
    (ref,) = ort_run(path, feeds)
    exact = model(feeds["x"], field="exact").numpy()
    np.testing.assert_allclose(np.asarray(exact, dtype=np.float64), ref, atol=1e-5)
    boxes = model(feeds["x"], field="interval").numpy()
    from fractions import Fraction

    from mpmath.libmp import to_rational

    for box, q in zip(boxes.reshape(-1), exact.reshape(-1), strict=True):
        lo, hi = (Fraction(*to_rational(end)) for end in box._mpi_)
        assert lo <= q <= hi


def test_symbolic_batch_needs_input_shape(tmp_path: Path) -> None:
    from torchlean.spec.errors import DataFormatError, ShapeError

    path = make_model(tmp_path / "sym.onnx", [node("Relu", ["x"], ["y"])], {"x": ("N", 3)})
    with pytest.raises(DataFormatError, match="input_shape"):
        load_onnx(path)
    assert load_onnx(path, input_shape=(4, 3)).input_shape == (4, 3)
    with pytest.raises(ShapeError, match="does not fit"):
        load_onnx(path, input_shape=(4, 2))
