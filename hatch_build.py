"""Hatch build hook: build the dashboard (``frontend/``) into ``src/qflow/web/static/app``.

Runs ``npm ci`` (when ``node_modules`` is missing or older than ``package-lock.json``) and
``npm run build`` (type-check with tsc, then Vite) when the built files are missing or older
than any front-end source, so ``pip install .`` and ``pip install -e .`` ship a working
dashboard. The built files are git-ignored and listed as wheel artifacts. Needs Node 18+ and
npm (Debian: ``apt-get install nodejs npm``); ``QFLOW_SKIP_FRONTEND=1`` skips the build (the
dashboard then answers 503 "not built").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCES = (
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
)


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                newest = max(newest, file.stat().st_mtime)
    return newest


class FrontendBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        frontend = root / "frontend"
        built = root / "src" / "qflow" / "web" / "static" / "app" / "index.html"
        if not (frontend / "package.json").is_file() or os.environ.get("QFLOW_SKIP_FRONTEND"):
            return  # an sdist without sources, or asked to skip
        sources = _newest([frontend / name for name in SOURCES])
        if built.is_file() and built.stat().st_mtime >= sources:
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "Building QFlow's dashboard needs Node and npm, which are not installed. "
                "Hint: apt-get install nodejs npm (or set QFLOW_SKIP_FRONTEND=1 to install "
                "without the dashboard)."
            )
        modules = frontend / "node_modules" / ".package-lock.json"
        lock = frontend / "package-lock.json"
        if not modules.is_file() or modules.stat().st_mtime < lock.stat().st_mtime:
            self.app.display_info("qflow: npm ci (frontend/)")
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=frontend, check=True
            )
        self.app.display_info("qflow: npm run build (frontend/ -> src/qflow/web/static/app)")
        subprocess.run([npm, "run", "build", "--silent"], cwd=frontend, check=True)
