"""QFlow's executors as a plugin (entry point ``builtin-executors``): ``local``, ``parallel``
and ``ray``, registered the way a third-party executor is. Each is imported when it is
created, so listing them never imports ray."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qflow.plugins import hookimpl
from qflow.plugins.extensions import LazyFactory


@hookimpl
def register_executors() -> Mapping[str, Callable[..., object]]:
    return {
        "local": LazyFactory("qflow.runtime.executor:LocalExecutor"),
        "parallel": LazyFactory("qflow.runtime.parallel:ParallelExecutor"),
        "ray": LazyFactory("qflow.runtime.ray:RayExecutor"),
    }
