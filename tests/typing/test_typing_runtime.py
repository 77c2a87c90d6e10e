"""The typing snippets also run: what mypy accepts works at run time, and what it rejects
as a shape mismatch fails at run time with a ShapeError (at construction or when run), so
the static and the run-time checks agree."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from mypy_snippets import SNIPPETS

from torchlean.spec.errors import ShapeError

ACCEPT = sorted(SNIPPETS.glob("accept_*.py"))
# Rejected only statically: a matrix-typed input the run time can still treat as a batch of
# vectors, a wrong annotation, and mismatches inside functions the snippet never calls.
STATIC_ONLY = {
    "reject_apply_wrong_rank.py", "reject_layer_annotation.py", "reject_runtime_to_literal.py",
}
REJECT = [p for p in sorted(SNIPPETS.glob("reject_*.py")) if p.name not in STATIC_ONLY]


@pytest.mark.parametrize("path", ACCEPT, ids=lambda p: p.stem)
def test_accepted_snippets_run(path: Path) -> None:
    runpy.run_path(str(path), run_name="snippet")


@pytest.mark.parametrize("path", REJECT, ids=lambda p: p.stem)
def test_rejected_snippets_fail_at_run_time(path: Path) -> None:
    with pytest.raises(ShapeError):
        runpy.run_path(str(path), run_name="snippet")


def test_static_only_cases_exist() -> None:
    assert STATIC_ONLY <= {p.name for p in SNIPPETS.glob("reject_*.py")}
