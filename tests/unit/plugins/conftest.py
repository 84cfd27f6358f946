"""The real plugin package under tests/plugin_pkg, pip-installed into the test environment.

scripts/test.sh installs it; when it is missing (a bare `pytest` in a fresh venv) the session
installs it here, then puts its source on sys.path since a new .pth is read only at start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_PKG = Path(__file__).resolve().parents[2] / "plugin_pkg"


@pytest.fixture(scope="session")
def test_plugin() -> str:
    try:
        importlib.metadata.distribution("qflow-test-plugin")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", PLUGIN_PKG],
            check=True,
        )
        # The process scans the entry points once: forget what it found before the install.
        from qflow.plugins import manager, registry

        manager._entry_point_plugins.cache_clear()
        manager.default_plugin_manager.cache_clear()
        registry.plugin_registry.cache_clear()
    source = str(PLUGIN_PKG / "src")
    if source not in sys.path:
        sys.path.append(source)
    importlib.invalidate_caches()
    return "testplugin"
