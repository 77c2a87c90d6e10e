"""mypy is the judge of the typed shape DSL: each snippet gets exactly its expected verdict.

`snippets/accept_*.py` must type-check with no error (they also pin inferred types with
`assert_type`); `snippets/reject_*.py` must get exactly the errors their `# expect:` markers
name, on those lines and nowhere else; `snippets/limit_*.py` pin known limitations the
same way. All snippets go through one mypy --strict run (mypy is slow to start).
"""

from __future__ import annotations

from pathlib import Path

import mypy.version
import pytest
from mypy_snippets import SNIPPETS, Finding, expected, run_mypy, source_view

FILES = sorted(SNIPPETS.glob("*.py"))
ACCEPT = [f for f in FILES if f.name.startswith("accept_")]
REJECT = [f for f in FILES if f.name.startswith("reject_")]
LIMIT = [f for f in FILES if f.name.startswith("limit_")]


@pytest.fixture(scope="module")
def verdicts(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[dict[str, list[Finding]], str]:
    view = source_view(tmp_path_factory.mktemp("mypy_view"))
    # mypy's incremental cache (kept in pytest's cache dir when there is one) only speeds
    # reruns; mypy invalidates it itself when a source changes.
    pytest_cache = getattr(request.config, "cache", None)
    if pytest_cache is not None:
        cache = Path(pytest_cache.mkdir(f"mypy-{mypy.version.__version__}"))
    else:
        cache = tmp_path_factory.mktemp("mypy_cache")
    return run_mypy(FILES, view, cache)


def _report(path: Path, found: list[Finding]) -> str:
    return "\n".join(f"  {path.name}:{f.line}: [{f.code}] {f.message}" for f in found) or "  none"


def test_there_are_enough_cases() -> None:
    assert len(REJECT) >= 10
    assert len(ACCEPT) >= 5
    assert all(expected(f) for f in REJECT + LIMIT), "every reject snippet marks its error"
    assert not any(expected(f) for f in ACCEPT), "accept snippets carry no error markers"


@pytest.mark.parametrize("path", ACCEPT, ids=lambda p: p.stem)
def test_accepted(path: Path, verdicts: tuple[dict[str, list[Finding]], str]) -> None:
    found = verdicts[0].get(path.name, [])
    assert not found, f"mypy rejected an accepted snippet:\n{_report(path, found)}"


@pytest.mark.parametrize("path", REJECT + LIMIT, ids=lambda p: p.stem)
def test_rejected_exactly(path: Path, verdicts: tuple[dict[str, list[Finding]], str]) -> None:
    found = verdicts[0].get(path.name, [])
    got = {(f.line, f.code) for f in found}
    assert got == expected(path), (
        f"expected errors {sorted(expected(path))}, mypy said:\n{_report(path, found)}"
    )


def test_mypy_ran_cleanly(verdicts: tuple[dict[str, list[Finding]], str]) -> None:
    # A crash or a config problem would otherwise look like "no errors" in the accept cases.
    raw = verdicts[1]
    assert "INTERNAL ERROR" not in raw and "error: Cannot find implementation" not in raw, raw
    assert any(f in verdicts[0] for f in (p.name for p in REJECT)), raw
