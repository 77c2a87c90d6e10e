"""Small deterministic datasets for examples and tests (TorchLean's `NN.API.Samples`).

- `linspace`, `grid2`, `grid2_rect`, `grid2_square`: points of 2-D regression grids;
  `regression_2to1` computes (n, 1) targets from a function of the two coordinates.
- `bands`, `band_image`, `band_probes`: tiny CHW classification images (1 x 4 x 4 by
  default) holding a vertical band (class 0) or a horizontal band (class 1).
- `one_hot`, `labeled`, `classification`: packing inputs with integer or one-hot labels.

Grid coordinates and band pixels are computed as exact rationals and rounded once into
the requested field, so `exact` gets them exactly and every float field gets the nearest
representable value (which may differ from `np.linspace` in the last place).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from ...spec.errors import ShapeError
from ...spec.tensor import Tensor
from ._convert import DType, host_to_tensor, numbers_to_tensor
from .dataset import TensorDataset

__all__ = [
    "BAND_CLASSES",
    "linspace",
    "grid2",
    "grid2_rect",
    "grid2_square",
    "regression_2to1",
    "affine2",
    "band_image",
    "bands",
    "band_probes",
    "one_hot",
    "labeled",
    "classification",
]

Real = int | float | Fraction
Axis = Literal["vertical", "horizontal"]
# Class label of each band orientation: the label is the position in this tuple.
BAND_CLASSES: tuple[Axis, Axis] = ("vertical", "horizontal")


def _count(who: str, name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{who}: {name} must be an int >= 1, got {n!r}")
    return int(n)


def _exact(who: str, name: str, v: object) -> Fraction:
    if isinstance(v, bool) or not isinstance(v, (int, float, Fraction, np.integer, np.floating)):
        raise TypeError(f"{who}: {name} must be a real number, got {v!r}")
    if isinstance(v, (float, np.floating)) and not np.isfinite(v):
        raise ValueError(f"{who}: {name} must be finite, got {v!r}")
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    return Fraction(v) if isinstance(v, Fraction) else Fraction(float(v))


def _linspace_exact(lo: Fraction, hi: Fraction, count: int) -> list[Fraction]:
    if count == 1:
        return [lo]
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def linspace(lo: Real, hi: Real, count: int, dtype: DType = "float") -> Tensor:
    """`count` evenly spaced points from lo to hi, both included (shape (count,));
    [lo] when count is 1."""
    n = _count("linspace", "count", count)
    pts = _linspace_exact(_exact("linspace", "lo", lo), _exact("linspace", "hi", hi), n)
    return numbers_to_tensor(_objects(pts), dtype)


def grid2(
    xs: Sequence[Real] | Tensor, ys: Sequence[Real] | Tensor, dtype: DType | None = None
) -> Tensor:
    """All pairs (x, y) of the points xs and ys, shape (len(xs) * len(ys), 2), row-major:
    x is the outer loop, so pair k is (xs[k // len(ys)], ys[k % len(ys)]).

    The field is `dtype`, else that of xs when it is a tensor, else "float"."""
    if dtype is None:
        dtype = xs.field if isinstance(xs, Tensor) else "float"
    hx, hy = _points("grid2", "xs", xs), _points("grid2", "ys", ys)
    pairs = np.empty((hx.size * hy.size, 2), dtype=object)
    pairs[:, 0] = np.repeat(hx, hy.size)
    pairs[:, 1] = np.tile(hy, hx.size)
    return numbers_to_tensor(pairs, dtype)


def grid2_rect(
    x_lo: Real,
    x_hi: Real,
    y_lo: Real,
    y_hi: Real,
    x_count: int,
    y_count: int,
    dtype: DType = "float",
) -> Tensor:
    """The grid `grid2(linspace(x_lo, x_hi, x_count), linspace(y_lo, y_hi, y_count))`
    over the rectangle [x_lo, x_hi] x [y_lo, y_hi], shape (x_count * y_count, 2)."""
    who = "grid2_rect"
    xs = _linspace_exact(_exact(who, "x_lo", x_lo), _exact(who, "x_hi", x_hi),
                         _count(who, "x_count", x_count))
    ys = _linspace_exact(_exact(who, "y_lo", y_lo), _exact(who, "y_hi", y_hi),
                         _count(who, "y_count", y_count))
    return grid2(xs, ys, dtype)


def grid2_square(n: int, lo: Real = -1.0, hi: Real = 1.0, dtype: DType = "float") -> Tensor:
    """The n x n grid over the square [lo, hi]^2: shape (n * n, 2), x the outer loop.

    TorchLean's `grid2Square lo hi n` (argument order made Pythonic): a square *grid*,
    not squared targets; compute targets with `regression_2to1`."""
    count = _count("grid2_square", "n", n)
    return grid2_rect(lo, hi, lo, hi, count, count, dtype)


def _default_target(x1: Any, x2: Any) -> Any:
    return x1 - 2 * x2


def affine2(w1: Real, w2: Real, b: Real = 0) -> Callable[[Any, Any], Any]:
    """The target function (x1, x2) -> w1 * x1 + w2 * x2 + b, for `regression_2to1`."""

    def f(x1: Any, x2: Any) -> Any:
        return w1 * x1 + w2 * x2 + b

    return f


def regression_2to1(
    points: Tensor,
    f: Callable[[Any, Any], Any] | None = None,
    dtype: DType | None = None,
) -> Tensor:
    """Targets of shape (n, 1) for points of shape (n, 2): row i is f(x1, x2) of point i.

    f defaults to x1 - 2 * x2. It is called with the point's coordinates as Python numbers
    of its field (floats for the float fields, Fractions for `exact`, mpmath intervals
    for `interval`); its result is rounded once into `dtype` (default: the points' field)."""
    if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != 2:
        got = points.shape if isinstance(points, Tensor) else type(points).__name__
        raise ShapeError(f"regression_2to1: points must be a tensor of shape (n, 2), got {got}")
    fn = _default_target if f is None else f
    host = points.numpy().tolist()
    out = np.empty((len(host), 1), dtype=object)
    for i, (x1, x2) in enumerate(host):
        out[i, 0] = fn(x1, x2)
    return numbers_to_tensor(out, points.field if dtype is None else dtype)


def band_image(
    axis: Axis,
    offset: int,
    *,
    height: int = 4,
    width: int = 4,
    thickness: int = 2,
    on: Real = 1,
    off: Real = 0,
    dtype: DType = "float",
) -> Tensor:
    """A 1 x height x width (CHW) image of `off` pixels with a band of `on` pixels:
    columns offset .. offset+thickness-1 for a "vertical" band, rows for "horizontal"."""
    host = _band_host("band_image", axis, offset, height, width, thickness, on, off)
    return numbers_to_tensor(host, dtype)


def _band_host(
    who: str, axis: str, offset: int, height: int, width: int, thickness: int,
    on: Real, off: Real,
) -> np.ndarray[Any, Any]:
    if axis not in BAND_CLASSES:
        raise ValueError(f"{who}: axis must be 'vertical' or 'horizontal', got {axis!r}")
    h, w = _count(who, "height", height), _count(who, "width", width)
    t = _count(who, "thickness", thickness)
    span = w if axis == "vertical" else h
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= span - t:
        raise ValueError(
            f"{who}: a {axis} band of thickness {t} needs an int offset in [0, {span - t}], "
            f"got {offset!r}"
        )
    img = np.full((1, h, w), _exact(who, "off", off), dtype=object)
    if axis == "vertical":
        img[0, :, offset : offset + t] = _exact(who, "on", on)
    else:
        img[0, offset : offset + t, :] = _exact(who, "on", on)
    return img


def bands(
    offsets: Sequence[int] = (0, 1, 2),
    *,
    height: int = 4,
    width: int = 4,
    thickness: int = 2,
    dtype: DType = "float",
) -> TensorDataset:
    """TorchLean's band training set: for each class of `BAND_CLASSES` (vertical = 0,
    horizontal = 1) and each offset, the 0/1 `band_image` of that band.

    Inputs have shape (N, 1, height, width), targets are the integer labels, shape (N,),
    N = 2 * len(offsets): first every vertical band, then every horizontal one. The
    defaults give TorchLean's six 1 x 4 x 4 images with bands two pixels thick; thickness=1
    with offsets range(4) gives all eight one-pixel lines."""
    if not offsets:
        raise ValueError("bands: offsets must not be empty")
    images, labels = [], []
    for label, axis in enumerate(BAND_CLASSES):
        for off in offsets:
            images.append(_band_host("bands", axis, off, height, width, thickness, 1, 0))
            labels.append(label)
    x = numbers_to_tensor(np.stack(images), dtype)
    y = host_to_tensor(np.asarray(labels, dtype=np.int64), dtype, "bands")
    return TensorDataset(x, y)


def band_probes(dtype: DType = "float") -> list[tuple[str, Tensor, int]]:
    """TorchLean's named probe images for reports: (name, 1 x 4 x 4 image, label) for the
    vertical and horizontal bands at offsets 1 and 2 ("vertical-1", ...)."""
    return [
        (f"{axis}-{off}", band_image(axis, off, dtype=dtype), label)
        for label, axis in enumerate(BAND_CLASSES)
        for off in (1, 2)
    ]


def one_hot(
    labels: Sequence[Real] | np.ndarray[Any, Any] | Tensor, num_classes: int, dtype: DType = "float"
) -> Tensor:
    """0/1 rows, shape labels.shape + (num_classes,), with a one at each label. A label that
    is not an integer in [0, num_classes) raises ValueError naming it and its index."""
    c = _count("one_hot", "num_classes", num_classes)
    idx = _label_array("one_hot", labels, c)
    host = (idx[..., None] == np.arange(c)).astype(np.uint8)
    return host_to_tensor(host, dtype, "one_hot")


def labeled(samples: Iterable[tuple[object, int]], dtype: DType = "float") -> TensorDataset:
    """A dataset of (x, label) pairs: inputs stacked to (N, *x.shape), targets the integer
    labels (N,). Each x is a tensor, an array or nested lists of numbers; all of one shape."""
    xs: list[np.ndarray[Any, Any]] = []
    labels: list[object] = []
    for i, pair in enumerate(samples):
        try:
            x, label = pair
        except (TypeError, ValueError):
            raise ValueError(f"labeled: sample {i} must be an (x, label) pair, got {pair!r}") \
                from None
        host = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        if xs and host.shape != xs[0].shape:
            raise ShapeError(
                f"labeled: sample {i} has shape {host.shape}, but sample 0 has {xs[0].shape}"
            )
        xs.append(host)
        labels.append(label)
    if not xs:
        raise ValueError("labeled: no samples")
    stacked = np.stack(xs)
    x_t = host_to_tensor(stacked, dtype, "labeled")
    y_t = host_to_tensor(_label_array("labeled", labels, None), dtype, "labeled")
    return TensorDataset(x_t, y_t)


def classification(
    data: TensorDataset | Iterable[tuple[object, int]],
    num_classes: int,
    dtype: DType | None = None,
) -> TensorDataset:
    """Inputs with one-hot targets (N, num_classes): from (x, label) pairs, or from a
    dataset whose targets are integer labels (N,) (such as `bands()`). The field is
    `dtype`, else the dataset's, else "float"."""
    c = _count("classification", "num_classes", num_classes)
    if isinstance(data, TensorDataset):
        ds = data if dtype is None else data.to(dtype)
        if ds.targets.ndim != 1:
            raise ShapeError(
                "classification: a dataset's targets must be integer labels of shape (N,), "
                f"got {ds.targets.shape}"
            )
    else:
        ds = labeled(data, "float" if dtype is None else dtype)
    return TensorDataset(ds.inputs, one_hot(ds.targets, c, ds.field))


def _points(who: str, name: str, v: Sequence[Real] | Tensor) -> np.ndarray[Any, Any]:
    if isinstance(v, Tensor):
        if v.ndim != 1 or v.shape[0] == 0:
            raise ShapeError(f"{who}: {name} must be a non-empty 1-D tensor, got {v.shape}")
        return _objects(v.numpy().tolist())
    values = list(v)
    if not values:
        raise ValueError(f"{who}: {name} must not be empty")
    return _objects([_exact(who, f"{name}[{i}]", x) for i, x in enumerate(values)])


def _objects(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _label_array(who: str, labels: object, num_classes: int | None) -> np.ndarray[Any, Any]:
    """Labels as an int64 array; each must be an integer value in [0, num_classes)."""
    host = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels, dtype=object)
    flat = host.reshape(-1)
    out = np.empty(flat.shape, dtype=np.int64)
    for i, v in enumerate(flat.tolist()):
        iv = _as_int(v)
        if iv is None or iv < 0 or (num_classes is not None and iv >= num_classes):
            wanted = "a non-negative integer" if num_classes is None else (
                f"an integer in [0, {num_classes})")
            shown = v if iv is None else iv  # 2.0 from a float field is the label 2
            raise ValueError(f"{who}: label {shown!r} at index {i} is not {wanted}")
        out[i] = iv
    return out.reshape(host.shape)


def _as_int(v: object) -> int | None:
    """The int equal to v, or None (booleans, non-integral or non-finite values, others)."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    return None
