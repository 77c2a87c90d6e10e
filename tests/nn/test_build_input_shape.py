"""nn.build(..., input_shape=...): shapes mypy cannot type are checked at build time."""

from __future__ import annotations

import pytest

from torchlean.spec import ShapeError, nn


def cnn() -> object:
    return (nn.conv2d(1, 4, 3) >> nn.relu() >> nn.max_pool2d(2) >> nn.conv2d(4, 8, 3)
            >> nn.relu() >> nn.max_pool2d(2) >> nn.flatten() >> nn.linear(8 * 5 * 5, 3))


@pytest.mark.parametrize("dtype", ["float", "float32", "ieee32exec", "exact"])
def test_a_fitting_input_shape_builds_and_gives_the_output_shape(dtype: str) -> None:
    built = nn.build(cnn(), seed=0, dtype=dtype, input_shape=(2, 1, 28, 28))
    assert built.field.name == dtype
    assert nn.check_input_shape(built, (5, 1, 28, 28)) == (5, 3)


@pytest.mark.parametrize(("shape", "names"), [
    ((1, 1, 32, 32), ["(1, 1, 32, 32)", "layer 7 (linear 200->3)", "(..., 200)"]),
    ((1, 3, 28, 28), ["(1, 3, 28, 28)", "layer 0 (conv2d 1->4 3x3)"]),
    ((1, 1, 2, 2), ["(1, 1, 2, 2)", "layer 0", "kernel span 3"]),
])
def test_a_wrong_input_shape_fails_at_build_naming_the_layer(shape, names) -> None:
    with pytest.raises(ShapeError) as info:
        nn.build(cnn(), seed=0, dtype="exact", input_shape=shape)
    for name in names:
        assert name in str(info.value), (name, str(info.value))


def test_a_bad_input_shape_value_is_refused() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        nn.build(cnn(), seed=0, input_shape=(1, -1, 28, 28))
