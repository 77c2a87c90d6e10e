"""Shared setup of the gradient-check tests: the `gradcheck` fixture of the pytest plugin.

pytest >= 8 refuses `pytest_plugins` outside the root conftest, so the fixture is
imported here; the plugin as a whole (`-p torchlean.verify.pytest_plugin`, its option)
is exercised in a child pytest run by test_pytest_plugin.py.
"""

from torchlean.verify.pytest_plugin import gradcheck  # noqa: F401  (the fixture)
