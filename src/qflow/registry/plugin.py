"""QFlow's model registries as a plugin (entry point ``builtin-registries``): ``builtin``
(the project's metadata store) and ``mlflow`` (an MLflow Model Registry fed from the project's
runs), registered the way a third-party registry is. mlflow is imported only when used."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qflow.plugins import hookimpl
from qflow.plugins.extensions import LazyFactory


@hookimpl
def register_model_registries() -> Mapping[str, Callable[..., object]]:
    return {
        "builtin": LazyFactory("qflow.registry.api:registry"),
        "mlflow": LazyFactory("qflow.registry.api:mlflow"),
    }
