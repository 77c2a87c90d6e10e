"""The pytest plugin as a user gets it, through the package's pytest11 entry point: a
passing check passes, a failing one fails and prints the report, and --gradcheck-method
picks the default method."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_TESTS = '''
import torchlean.spec as S
from torchlean.runtime import autograd as ad
from torchlean.spec import functional as F


def loss(x):
    return F.sum(F.tanh(x) * x)


def test_grads(gradcheck):
    report = gradcheck(loss, S.tensor([0.5, -1.0, 2.0]))
    print("METHOD:", report.method)


def test_wrong_grads(gradcheck):
    def backwards(x):
        (g,) = ad.grad(loss, argnums=(0,))(x)
        return (-g,)

    gradcheck(loss, S.tensor([0.5, -1.0, 2.0]), analytic=backwards)
'''


def run_pytest(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", *extra,
         str(tmp_path / "test_user.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"},
    )


def test_plugin_checks_gradients_and_prints_the_report_of_bad_ones(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--gradcheck-method=central")
    out = result.stdout
    assert result.returncode == 1, out  # exactly the wrong-gradient test fails
    assert "1 failed, 1 passed" in out
    assert "METHOD: central" in out  # the command line picked the default method
    assert "GradientMismatch" in out and "gradcheck FAILED: method central" in out
    assert "worst: x[" in out and "MISMATCH" in out
