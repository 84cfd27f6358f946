"""QFlow's own plugin, registered through the ``qflow`` entry point like any other plugin.

It provides the ``filetracker`` tracker (QFlow's own metadata and artifact store, which records
every run anyway, so the tracker object adds nothing) and the ``local`` executor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from qflow.plugins.markers import hookimpl


class FileTracker:
    """The built-in tracker: runs are recorded in ``.qflow/`` by the scheduler itself."""

    name = "filetracker"

    def __repr__(self) -> str:
        return "FileTracker()"


class LazyFactory:
    """A factory named by ``module:attribute``, imported on first call (as entry points are)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __repr__(self) -> str:
        return self.target

    def __call__(self, **options: Any) -> Any:
        module, _, attribute = self.target.partition(":")
        factory: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
        return factory(**options)


@hookimpl
def register_trackers() -> Mapping[str, Callable[..., object]]:
    return {"filetracker": FileTracker}


@hookimpl
def register_executors() -> Mapping[str, Callable[..., object]]:
    return {"local": LazyFactory("qflow.runtime.executor:LocalExecutor")}
