"""Branch-and-bound subdomains spread over a work pool: the same verdict and the same
certificate tree as in one process (the driver keeps the tree; workers only bound boxes),
and the certificate re-checks exactly."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from torchlean.verify.vnn.engine import verify_instance
from torchlean.verify.vnn.tree_certificate import check_tree_certificate
from torchlean.verify.vnn.vnnlib import Property, parse_vnnlib
from torchlean.verify.workers import Shared, WorkPool

pytest.importorskip("distributed")

ACAS = Path(__file__).parents[1] / "data" / "ACASXU_run2a_1_1_batch_2000.onnx"
CENTRE = (-0.3, -0.2, 0.1, 0.2, 0.1)


def acas_prop(width: float, unsafe: str) -> Property:
    """A box of half-width `width` around CENTRE with the unsafe condition `unsafe`."""
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
    text += "".join(f"(declare-const Y_{i} Real)\n" for i in range(5))
    text += "".join(f"(assert (>= X_{i} {c - width}))\n(assert (<= X_{i} {c + width}))\n"
                    for i, c in enumerate(CENTRE))
    text += unsafe
    return parse_vnnlib(iter(enumerate(text.splitlines(keepends=True), start=1)), "t.vnnlib")


class CountingPool(WorkPool):
    """A WorkPool that counts the units it ran (to show the workers bounded boxes)."""

    units = 0

    def run(self, fn: Any, units: Iterable[Sequence[Any]],
            *shared: Shared) -> Iterator[tuple[int, Any]]:
        for i, out in super().run(fn, units, *shared):
            self.units += 1
            yield i, out


def test_subdomains_on_two_processes_give_the_serial_verdict_and_tree(tmp_path: Path) -> None:
    # 31 leaves, a few batches of 16 boxes: the smallest tree here with several batches
    p = acas_prop(0.007, "(assert (>= Y_4 Y_1))")
    serial, spread = tmp_path / "serial.json", tmp_path / "spread.json"
    v1 = verify_instance(ACAS, p, timeout=120, certificate=serial, batch=16)
    pool = CountingPool(workers=2)
    with pool:
        v2 = verify_instance(ACAS, p, timeout=120, certificate=spread, batch=16, pool=pool)
    assert pool.units >= 4  # at least two batches, each split over both workers
    assert v1.status == v2.status == "holds"
    assert "input splitting" in v1.detail  # the tree has splits: the pool bounded boxes
    assert serial.read_bytes() == spread.read_bytes()
    res = check_tree_certificate(spread, ACAS, p)
    assert res.ok, res.reason


def _malloc_trim() -> str | None:
    import os
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_workers_keep_the_adaptive_malloc_threshold() -> None:
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 by default, which made every bounds
    # batch about 1.5x slower in the workers than in process (docs/scale.md)
    with WorkPool(workers=2) as pool:
        assert set(pool.client.run(_malloc_trim).values()) == {None}
