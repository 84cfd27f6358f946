"""QFlow's MLflow and W&B trackers as a plugin (entry point ``builtin-trackers``), registered
the way a third-party tracker is. mlflow and wandb are imported only when a run's config
selects the tracker and the tracker starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qflow.plugins import hookimpl
from qflow.plugins.extensions import LazyFactory


@hookimpl
def register_trackers() -> Mapping[str, Callable[..., object]]:
    return {
        "mlflow": LazyFactory("qflow.integrations.mlflow:MlflowTracker"),
        "wandb": LazyFactory("qflow.integrations.wandb:WandbTracker"),
    }
