"""Real VNN-COMP 2021 networks load and agree with onnxruntime.

The ACAS Xu network shipped in tests/data always runs; every network of each category of
../shared/benchmarks/vnncomp2021 (relative to the repository root, or the folder named by
the environment variable TORCHLEAN_VNNCOMP2021) runs when present.

Tolerance: rtol 1e-4 of max(1, max |output|). These networks accumulate up to 784 terms per
dot product over up to 10 layers in binary32 (unit roundoff 6e-8), and onnxruntime's
summation order differs from ours; the differences observed are about 1e-6 of the outputs'
size. A translation error (a transposed weight, a missing normalisation, a wrong pad)
changes outputs by a large fraction of their size.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_testing import agree  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "tests" / "data" / "ACASXU_run2a_1_1_batch_2000.onnx"
BENCH = Path(os.environ.get("TORCHLEAN_VNNCOMP2021",
                           ROOT.parent / "shared" / "benchmarks" / "vnncomp2021"))
CATEGORIES = ("acasxu", "eran", "mnistfc", "verivital")
RTOL = 1e-4


def test_shipped_acasxu_network() -> None:
    model = agree(SHIPPED, rtol=RTOL, fields=("float", "float32", "ieee32exec", "exact"))
    assert model.input_shape == (1, 1, 1, 5) and model.opset == 8
    assert model.graph.inputs[0].name == "input"
    # 15 initializers listed among the 16 graph inputs: all of them are parameters.
    assert len(model.params) == 15 and len(model.graph.inputs) == 1


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_network_of_each_category(category: str) -> None:
    """Every network named in the category's instances.csv (45 ACAS Xu, 2 mnistfc, 1
    verivital, 1 eran) loads and agrees with onnxruntime on three random inputs."""
    table = BENCH / category / "instances.csv"
    if not table.exists():
        pytest.skip(f"{table} is not present")
    rows = [line.split(",")[0].strip() for line in table.read_text().splitlines()
            if line.strip()]
    networks = sorted(set(rows))
    assert networks
    for name in networks:
        for seed in range(3):
            agree(BENCH / category / name, rtol=RTOL, seed=seed)


def test_bounds_on_the_imported_graph_enclose_onnxruntime() -> None:
    """Analyses read the imported graph like any other: CROWN bounds over a small box hold
    for onnxruntime's outputs at points of the box. The slack 1e-5 covers onnxruntime's
    binary32 rounding, which the real-valued bounds do not include (outputs are about
    0.02 here, so binary32 errors are below 1e-8)."""
    import numpy as np
    from onnx_testing import ort_run

    from torchlean.verify import bounds, load_onnx

    model = load_onnx(SHIPPED)
    rng = np.random.default_rng(0)
    centre = rng.uniform(-0.5, 0.5, model.input_shape)
    lo, hi = centre - 0.01, centre + 0.01
    b = bounds.crown(model.graph, model.params, lo, hi)
    for _ in range(20):
        (y,) = ort_run(SHIPPED, {"input": rng.uniform(lo, hi).astype(np.float32)})
        assert np.all(y >= b.lower - 1e-5) and np.all(y <= b.upper + 1e-5)
    assert np.all(b.upper - b.lower < 1.0)  # and they are not vacuous
