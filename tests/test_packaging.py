"""The distribution's layout: pyproject.toml lists every package, and `torchlean` imports.

spec/, runtime/ and verify/ at the repository root are mapped by setuptools' package-dir
to torchlean.spec, torchlean.runtime and torchlean.verify; every package must also be
listed by name in `[tool.setuptools] packages`, or an install silently leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS: dict[str, Any] = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]
PACKAGES: list[str] = SETUPTOOLS["packages"]
LAYERS = {"torchlean": "torchlean", "torchlean.spec": "spec", "torchlean.runtime": "runtime",
          "torchlean.verify": "verify"}


def source_dir(package: str) -> Path:
    """Where `package` lives in the repository, by the longest package-dir prefix."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in PACKAGE_DIR:
            return ROOT / PACKAGE_DIR[prefix] / Path(*parts[n:])
    return ROOT / Path(*parts)


def discovered_packages() -> dict[str, Path]:
    """Every directory with an __init__.py under the mapped roots, by its installed name."""
    found: dict[str, Path] = {}
    for top, rel in PACKAGE_DIR.items():
        base = ROOT / rel
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            if "__pycache__" in parts:
                continue
            found[".".join((top, *parts))] = init.parent
    return found


def test_layers_are_mapped_as_designed() -> None:
    assert PACKAGE_DIR == LAYERS


def test_every_package_directory_is_listed() -> None:
    missing = sorted(set(discovered_packages()) - set(PACKAGES))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_exists() -> None:
    absent = [p for p in PACKAGES if not (source_dir(p) / "__init__.py").is_file()]
    assert not absent, f"listed in pyproject.toml but no __init__.py on disk: {absent}"
    assert len(set(PACKAGES)) == len(PACKAGES), "a package is listed twice"


def test_module_directories_are_packages() -> None:
    """A directory of modules without __init__.py would be skipped by the install."""
    loose = [
        str(d.relative_to(ROOT))
        for rel in PACKAGE_DIR.values()
        for d in [ROOT / rel, *(ROOT / rel).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
        and not (d / "__init__.py").is_file()
    ]
    assert not loose, f"directories with modules but no __init__.py: {loose}"


@pytest.mark.parametrize("rel", sorted(set(LAYERS.values())))
def test_py_typed_is_shipped(rel: str) -> None:
    assert (ROOT / rel / "py.typed").is_file()
    assert "py.typed" in SETUPTOOLS["package-data"]["*"]


def requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_dependencies_are_the_declared_few() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == "torchlean"
    # tqdm: the fit loops' progress bar (README says why it earns its place).
    assert requirement_names(project["dependencies"]) == {
        "numpy", "mpmath", "hypothesis", "tqdm"}
    extras = project["optional-dependencies"]
    # matplotlib in dev: report.plot works after the README's dev install.
    assert {"pytest", "mypy", "ruff", "matplotlib"} <= requirement_names(extras["dev"])
    assert requirement_names(extras["plot"]) == {"matplotlib"}
    assert any(name.startswith("cupy") for name in requirement_names(extras["cuda"]))


FRONT_DOOR = """
import importlib, json, sys
import torchlean, torchlean.spec
result = {
    "spec_name": torchlean.spec.__name__,
    "spec_file": torchlean.spec.__file__,
    "same_tensor": torchlean.Tensor is torchlean.spec.Tensor,
    "version": torchlean.__version__,
    "failed": {},
}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as e:
        result["failed"][name] = f"{type(e).__name__}: {e}"
try:
    import spec
    result["bare_spec"] = spec.__file__
except ModuleNotFoundError:
    result["bare_spec"] = None
print(json.dumps(result))
"""


def test_front_door_imports_outside_the_repository(tmp_path: Path) -> None:
    """Run from an empty directory, so the source tree cannot shadow the install."""
    done = subprocess.run(
        [sys.executable, "-c", FRONT_DOOR, *PACKAGES], cwd=tmp_path, capture_output=True,
        text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["spec_name"] == "torchlean.spec"
    spec_file = Path(result["spec_file"]).resolve()
    # The editable install maps torchlean.spec to the repository's spec/; a plain install
    # copies it to site-packages/torchlean/spec/.
    assert spec_file == ROOT / "spec" / "__init__.py" or spec_file.parts[-3:] == (
        "torchlean", "spec", "__init__.py")
    assert result["same_tensor"] is True
    assert result["version"] == PYPROJECT["project"]["version"]
    assert result["failed"] == {}, "listed packages that do not import"
    assert result["bare_spec"] is None, "spec/ must not be importable as a top-level `spec`"


# -- importing from the repository root -------------------------------------------------
AT_ROOT = """
import json, torchlean, torchlean.runtime, torchlean.verify
print(json.dumps({"spec": torchlean.spec.__file__, "runtime": torchlean.runtime.__file__,
                  "tensor": torchlean.Tensor is torchlean.spec.Tensor}))
"""


def check_imports_at_root(python: str) -> None:
    """`import torchlean` from the root works three ways: `python -c`, a script saved
    there, and `python -m pytest` (whose torchlean plugin imports torchlean.verify)."""
    for argv in ([python, "-c", AT_ROOT], None):
        script = ROOT / f"_import_check_{os.getpid()}.py"
        if argv is None:
            script.write_text(AT_ROOT)
            argv = [python, str(script)]
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                                  check=False, timeout=120)
        finally:
            script.unlink(missing_ok=True)
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout.strip().splitlines()[-1])
        # From the root the checkout's own files are imported, as for any source tree.
        assert Path(got["spec"]).resolve() == ROOT / "spec" / "__init__.py"
        assert Path(got["runtime"]).resolve() == ROOT / "runtime" / "__init__.py"
        assert got["tensor"] is True
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         "tests/test_packaging.py"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tests/test_packaging.py: " in done.stdout, done.stdout  # its tests were collected


def test_import_from_the_repository_root() -> None:
    check_imports_at_root(sys.executable)


def test_only_a_checkout_gets_its_layers_mapped(tmp_path: Path) -> None:
    from torchlean._checkout import checkout_layers

    assert checkout_layers(ROOT / "torchlean") == {
        layer: ROOT / layer for layer in ("spec", "runtime", "verify")}
    installed = tmp_path / "torchlean"  # an installed package: the layers inside it
    for layer in ("spec", "runtime", "verify"):
        (installed / layer).mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    assert checkout_layers(installed) is None
    bare = tmp_path / "elsewhere" / "torchlean"  # no pyproject.toml beside it
    bare.mkdir(parents=True)
    assert checkout_layers(bare) is None


@pytest.mark.slow
def test_plain_install_imports_from_anywhere(tmp_path: Path) -> None:
    """`pip install .` (not editable) into a fresh venv: imports from an empty folder
    find the installed copy; from the root, the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT), "pytest"],
                   check=True, timeout=600, cwd=tmp_path)
    away = subprocess.run([python, "-c", AT_ROOT], cwd=tmp_path, capture_output=True,
                          text=True, check=True, timeout=120)
    spec_file = Path(json.loads(away.stdout.strip().splitlines()[-1])["spec"])
    assert spec_file.parts[-3:] == ("torchlean", "spec", "__init__.py")
    assert str(spec_file).startswith(str(venv))
    check_imports_at_root(python)
