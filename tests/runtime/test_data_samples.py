"""The synthetic samples: grid shapes and order, exact coordinates, regression targets, the
band images being the bands the docs describe, label packing and its errors, and
determinism across calls and fields."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchlean.runtime.data import TensorDataset, samples
from torchlean.spec import ShapeError, get_field, tensor

FIELDS = ["float", "float32", "ieee32exec", "exact", "interval"]


# -- grids ---------------------------------------------------------------------------------


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 12))
def test_grid2_square_exact(n: int) -> None:
    g = samples.grid2_square(n, dtype="exact")
    assert g.shape == (n * n, 2)
    axis = [Fraction(-1)] if n == 1 else [Fraction(-1) + Fraction(2 * i, n - 1) for i in range(n)]
    want = [[a, b] for a in axis for b in axis]  # x is the outer loop
    assert g.numpy().tolist() == want


@pytest.mark.parametrize("dtype", ["float", "float32", "ieee32exec"])
def test_grid_coordinates_round_once(dtype: str) -> None:
    g = samples.grid2_square(7, lo=-1, hi=1, dtype=dtype)  # steps of 1/3
    exact = samples.grid2_square(7, lo=-1, hi=1, dtype="exact").numpy()
    field = get_field(dtype)
    host = g.numpy()
    want = field.to_numpy(field.asarray(exact))  # each field's own rounding of the rational
    assert host.tobytes() == want.tobytes()
    assert host[0].tolist() == [-1.0, -1.0] and host[-1].tolist() == [1.0, 1.0]


def test_grid2_of_points_and_tensors() -> None:
    g = samples.grid2([0, 1, 2], [10, 20])
    assert g.tolist() == [[0, 10], [0, 20], [1, 10], [1, 20], [2, 10], [2, 20]]
    t = samples.grid2(tensor([0.5, 1.5], "exact"), tensor([2.0], "exact"))
    assert t.field.name == "exact"
    assert t.numpy().tolist() == [[Fraction(1, 2), 2], [Fraction(3, 2), 2]]
    r = samples.grid2_rect(0, 1, -2, 2, 2, 3)
    assert r.tolist() == [[0, -2], [0, 0], [0, 2], [1, -2], [1, 0], [1, 2]]
    assert samples.linspace(3, 4, 1).tolist() == [3.0]
    assert samples.linspace(0, 1, 5, "exact").numpy().tolist() == [Fraction(i, 4) for i in range(5)]


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: samples.grid2_square(0), ValueError, "n must be an int >= 1"),
        (lambda: samples.linspace(0, 1, 2.0), ValueError, "count"),  # type: ignore[arg-type]
        (lambda: samples.linspace(0, float("nan"), 3), ValueError, "finite"),
        (lambda: samples.grid2([], [1]), ValueError, "xs must not be empty"),
        (lambda: samples.grid2(tensor([[1.0]]), [1]), ShapeError, "1-D"),
        (lambda: samples.grid2(["a"], [1]), TypeError, "real number"),  # type: ignore[list-item]
    ],
)
def test_grid_errors(call: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        call()


def test_regression_2to1() -> None:
    x = samples.grid2_square(3, dtype="exact")
    y = samples.regression_2to1(x)  # default target x1 - 2 x2
    assert y.shape == (9, 1) and y.field.name == "exact"
    assert [r[0] for r in y.numpy().tolist()] == [a - 2 * b for a, b in x.numpy().tolist()]
    f = samples.affine2(Fraction(1, 3), 2, -1)
    y2 = samples.regression_2to1(x, f)
    assert y2.numpy()[1, 0] == Fraction(1, 3) * -1 + 2 * 0 - 1
    sq = samples.regression_2to1(samples.grid2_square(5), lambda a, b: a * a + b * b)
    assert sq.numpy()[:, 0].tolist() == [a * a + b * b for a, b in samples.grid2_square(5).tolist()]
    ds = TensorDataset(x, y)
    assert len(ds) == 9


def test_regression_rounds_once_into_float32() -> None:
    x = samples.grid2_square(4, dtype="ieee32exec")  # coordinates -1, -1/3, 1/3, 1 rounded
    y = samples.regression_2to1(x, lambda a, b: a / 3 + b)
    want = [np.float32(a / 3 + b) for a, b in x.numpy().astype(np.float64).tolist()]
    assert y.numpy()[:, 0].tolist() == want  # f ran in binary64, then one rounding


def test_regression_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"\(n, 2\), got \(4, 3\)"):
        samples.regression_2to1(tensor(np.zeros((4, 3))))


# -- bands ---------------------------------------------------------------------------------


def describe(img: np.ndarray[Any, Any]) -> tuple[str, list[int]]:
    """Which band an image holds: its orientation and the lines that are all ones, after
    checking every pixel is 0 or 1 and every other line all zeros."""
    assert img.shape[0] == 1 and set(np.unique(img).tolist()) <= {0, 1}
    plane = img[0]
    full_cols = [c for c in range(plane.shape[1]) if plane[:, c].all()]
    full_rows = [r for r in range(plane.shape[0]) if plane[r, :].all()]
    if full_cols and not full_rows:
        assert plane[:, [c for c in range(plane.shape[1]) if c not in full_cols]].sum() == 0
        return "vertical", full_cols
    assert full_rows and not full_cols
    assert plane[[r for r in range(plane.shape[0]) if r not in full_rows], :].sum() == 0
    return "horizontal", full_rows


def test_bands_are_torchleans_training_set() -> None:
    ds = samples.bands()
    assert len(ds) == 6 and ds.input_shape == (1, 4, 4) and ds.target_shape == ()
    assert ds.targets.tolist() == [0, 0, 0, 1, 1, 1]
    found = [describe(x) for x in ds.inputs.numpy()]
    assert found == [
        ("vertical", [0, 1]), ("vertical", [1, 2]), ("vertical", [2, 3]),
        ("horizontal", [0, 1]), ("horizontal", [1, 2]), ("horizontal", [2, 3]),
    ]
    for (axis, _), label in zip(found, ds.targets.tolist(), strict=True):
        assert samples.BAND_CLASSES[int(label)] == axis


def test_thin_bands_are_all_eight_lines() -> None:
    ds = samples.bands(offsets=range(4), thickness=1)
    found = [describe(x) for x in ds.inputs.numpy()]
    assert sorted(found) == sorted([(a, [k]) for a in ("vertical", "horizontal") for k in range(4)])


def test_band_probes_and_images() -> None:
    probes = samples.band_probes()
    assert [(name, label) for name, _, label in probes] == [
        ("vertical-1", 0), ("vertical-2", 0), ("horizontal-1", 1), ("horizontal-2", 1)
    ]
    for name, img, _ in probes:
        axis, offset = name.split("-")
        assert describe(img.numpy()) == (axis, [int(offset), int(offset) + 1])
    img = samples.band_image("horizontal", 1, height=3, width=5, thickness=1, on=0.5, off=-1)
    assert img.shape == (1, 3, 5)
    assert img.numpy()[0].tolist() == [[-1] * 5, [0.5] * 5, [-1] * 5]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"axis": "diagonal", "offset": 0}, "axis"),
        ({"axis": "vertical", "offset": 3}, r"offset in \[0, 2\]"),
        ({"axis": "vertical", "offset": -1}, "offset"),
        ({"axis": "horizontal", "offset": 0, "thickness": 0}, "thickness"),
    ],
)
def test_band_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        samples.band_image(**kwargs)


@pytest.mark.parametrize("dtype", FIELDS)
def test_samples_in_every_field_and_deterministic(dtype: str) -> None:
    a, b = samples.bands(dtype=dtype), samples.bands(dtype=dtype)
    assert a.field is get_field(dtype)
    assert a.inputs.numpy().tolist() == b.inputs.numpy().tolist()
    g1, g2 = samples.grid2_square(3, dtype=dtype), samples.grid2_square(3, dtype=dtype)
    assert g1.field is get_field(dtype) and g1.numpy().tolist() == g2.numpy().tolist()
    hot = samples.one_hot([1, 0], 3, dtype)
    assert hot.field is get_field(dtype) and hot.tolist() == [[0, 1, 0], [1, 0, 0]]


# -- labels --------------------------------------------------------------------------------


def test_one_hot() -> None:
    assert samples.one_hot(np.array([[2], [0]]), 3).tolist() == [[[0, 0, 1]], [[1, 0, 0]]]
    assert samples.one_hot(tensor([1.0, 0.0]), 2).tolist() == [[0, 1], [1, 0]]
    assert samples.one_hot([Fraction(2)], 3, "exact").numpy().tolist() == [[0, 0, 1]]


@pytest.mark.parametrize(
    "labels, words",
    [
        ([0, 1, 3], "label 3 at index 2 is not an integer in [0, 3)"),
        ([-1], "label -1 at index 0"),
        ([0, 1.5], "label 1.5 at index 1"),
        ([float("nan")], "label nan at index 0"),
        ([True], "label True at index 0"),
        (["1"], "label '1' at index 0"),
    ],
)
def test_one_hot_bad_labels(labels: list[object], words: str) -> None:
    with pytest.raises(ValueError) as info:
        samples.one_hot(labels, 3)  # type: ignore[arg-type]
    assert words in str(info.value)


def test_one_hot_bad_num_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        samples.one_hot([0], 0)


def test_labeled_and_classification() -> None:
    pairs = [([1, 2], 0), (tensor([3.0, 4.0]), 2), (np.array([5, 6]), 1)]
    ds = samples.labeled(pairs)
    assert ds.inputs.tolist() == [[1, 2], [3, 4], [5, 6]] and ds.targets.tolist() == [0, 2, 1]
    hot = samples.classification(pairs, 3, dtype="exact")
    assert hot.field.name == "exact"
    assert hot.targets.numpy().tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    from_ds = samples.classification(samples.bands(), 2)
    assert from_ds.targets.tolist() == [[1, 0]] * 3 + [[0, 1]] * 3
    assert from_ds.inputs.tolist() == samples.bands().inputs.tolist()


def test_label_packing_errors() -> None:
    with pytest.raises(ValueError, match="label 2 at index 1 is not an integer in \\[0, 2\\)"):
        samples.classification([([0.0], 1), ([1.0], 2)], 2)
    with pytest.raises(ValueError, match="label -1 at index 0 is not a non-negative integer"):
        samples.labeled([([0.0], -1)])
    with pytest.raises(ShapeError, match="sample 1 has shape \\(3,\\), but sample 0 has \\(2,\\)"):
        samples.labeled([([0, 1], 0), ([0, 1, 2], 1)])
    with pytest.raises(ValueError, match="no samples"):
        samples.labeled([])
    with pytest.raises(ValueError, match="pair"):
        samples.labeled([([0, 1], 0, 5)])  # type: ignore[list-item]
    with pytest.raises(ShapeError, match="integer labels of shape \\(N,\\)"):
        samples.classification(TensorDataset(tensor([[1.0]]), tensor([[0.0]])), 2)
