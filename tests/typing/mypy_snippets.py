"""Run mypy over the typing snippets, as installed code is laid out, and read its verdicts.

mypy cannot follow the editable install's import hook, so, like scripts/typecheck.sh, we
lay out a symlinked view (torchlean/ with spec, runtime and verify linked in as
sub-packages) and put it on MYPYPATH. Each snippet states what mypy must say about it: a
line ending in `# expect: <error-code>` must get exactly that error, and no other line
may get any.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import mypy.api

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = Path(__file__).resolve().parent / "snippets"

_EXPECT = re.compile(r"#\s*expect:\s*([a-z, -]+?)\s*$")
_ERROR = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<msg>.*?)(?:  \[(?P<code>[a-z-]+)\])?$"
)


@dataclass(frozen=True)
class Finding:
    """One mypy error: where, its error code and its message."""

    line: int
    code: str
    message: str


def source_view(dest: Path) -> Path:
    """A directory holding `torchlean/` as installed: the front door's files with spec/,
    runtime/ and verify/ linked in (the same view scripts/typecheck.sh builds)."""
    pkg = dest / "torchlean"
    pkg.mkdir(parents=True)
    for entry in (ROOT / "torchlean").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for layer in ("spec", "runtime", "verify"):
        (pkg / layer).symlink_to(ROOT / layer)
    return dest


def expected(path: Path) -> set[tuple[int, str]]:
    """The (line, error code) pairs a snippet's `# expect: code[, code]` markers ask for."""
    out: set[tuple[int, str]] = set()
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if m := _EXPECT.search(text):
            out.update((n, code.strip()) for code in m.group(1).split(","))
    return out


def run_mypy(
    files: list[Path], view: Path, cache_dir: Path
) -> tuple[dict[str, list[Finding]], str]:
    """One mypy --strict run over `files` (imports resolved through `view`, errors in
    imported modules silenced): the errors per file name, and the raw report."""
    args = [
        "--strict",
        "--config-file", str(ROOT / "pyproject.toml"),
        "--follow-imports", "silent",
        "--cache-dir", str(cache_dir),
        "--no-error-summary",
        "--show-error-codes",
        "--no-pretty",
        "--hide-error-context",
        *map(str, files),
    ]
    old = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(view)
    try:
        stdout, stderr, _ = mypy.api.run(args)
    finally:
        if old is None:
            del os.environ["MYPYPATH"]
        else:
            os.environ["MYPYPATH"] = old
    found: dict[str, list[Finding]] = {}
    for text in stdout.splitlines():
        if m := _ERROR.match(text):
            finding = Finding(int(m["line"]), m["code"] or "", m["msg"])
            found.setdefault(Path(m["path"]).name, []).append(finding)
    return found, stdout + stderr
