"""pytest plugin: the `gradcheck` fixture, so a test reads

    def test_grads(gradcheck):
        gradcheck(model_or_fn, x)

The fixture calls `verify.assert_gradients_match`: a failing check raises
`GradientMismatch`, whose message (shown by pytest) is the full report. It returns the
report when the check passes. Options given to the call go to `gradcheck`; the default
method comes from `--gradcheck-method` (default "auto"). The fixture is session-scoped
and stateless, so it can be used inside hypothesis tests.

Enable it with `pytest_plugins = ["torchlean.verify.pytest_plugin"]` in a conftest.py,
or through the package's `pytest11` entry point.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest

from .gradients.gradcheck import METHODS, assert_gradients_match
from .gradients.report import GradcheckReport

__all__ = ["GradcheckFixture", "gradcheck", "pytest_addoption"]


class GradcheckFixture(Protocol):
    """What the `gradcheck` fixture is: call it with a function/model and its inputs."""

    def __call__(self, f_or_task: Any, *inputs: Any, **options: Any) -> GradcheckReport: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add --gradcheck-method."""
    parser.addoption(
        "--gradcheck-method",
        default="auto",
        choices=METHODS,
        help="default method of the gradcheck fixture (default: auto)",
    )


@pytest.fixture(scope="session")
def gradcheck(request: pytest.FixtureRequest) -> GradcheckFixture:
    """Check gradients: gradcheck(f_or_model, *inputs, **options) -> report; raises
    GradientMismatch (an AssertionError showing the report) on a mismatch. One input is
    passed as is (a tuple there is a tuple of arguments); several form the arguments."""
    # The option exists only where the plugin itself is loaded (not a re-exported fixture).
    default_method = str(request.config.getoption("--gradcheck-method", default="auto"))

    def check(f_or_task: Any, *inputs: Any, **options: Any) -> GradcheckReport:
        if not inputs:
            raise TypeError("gradcheck fixture: pass the inputs after the function or model")
        options.setdefault("method", default_method)
        args = inputs[0] if len(inputs) == 1 else inputs
        __tracebackhide__ = True  # pytest shows the caller's line, then the report
        return assert_gradients_match(f_or_task, args, **options)

    return check
