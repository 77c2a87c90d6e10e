"""Run the eager tests on NumPy arrays and on array-api-strict arrays.

array-api-strict stands in for CuPy on CPU: code that passes with it uses only the Array
API namespace of its inputs, never NumPy directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from torchlean.spec import float64
from torchlean.spec.tensor import Tensor

BACKENDS = ["numpy", "array_api_strict"]


@pytest.fixture(params=BACKENDS, scope="module")
def make(request: pytest.FixtureRequest) -> Callable[[Any], Tensor]:
    """Build a float64 Tensor from a NumPy array in the parametrised array namespace."""
    if request.param == "numpy":
        return lambda a: Tensor(np.asarray(a, dtype=np.float64), float64)
    xp = pytest.importorskip("array_api_strict")
    dev = xp.Device("device1")
    return lambda a: Tensor(xp.asarray(np.asarray(a, dtype=np.float64), device=dev), float64)
