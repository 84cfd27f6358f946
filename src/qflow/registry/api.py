"""``qf.models``: the model registry from Python.

```python
import qflow as qf

run = qf.run(train, config)
qf.models.register(run, "fit", name="churn")          # STEP[.OUTPUT] of the run
qf.models.set_alias("churn", "production", 1)
model = qf.models.load("churn@production")           # or "churn/1", or "churn" (latest)
```

Every function takes ``project_dir`` (default: the project around the current folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.registry.builtin import QFlowRegistry

if TYPE_CHECKING:
    from qflow.registry.mlflow_registry import MlflowRegistry
    from qflow.registry.signature import Signature
    from qflow.store.metadata.records import AliasChange, ModelVersion, RegisteredModel

__all__ = [
    "alias_history",
    "get",
    "list_models",
    "load",
    "mlflow",
    "model_registry",
    "register",
    "registry",
    "set_alias",
    "versions",
]


def registry(project_dir: str | Path | None = None) -> QFlowRegistry:
    """The built-in registry of a project."""
    return QFlowRegistry.for_project(project_dir)


def mlflow(
    tracking_uri: str | None = None,
    *,
    registry_uri: str | None = None,
    project_dir: str | Path | None = None,
) -> MlflowRegistry:
    """The MLflow Model Registry at ``tracking_uri`` (default: MLflow's own default),
    fed from the QFlow project's runs."""
    from qflow.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(
        tracking_uri, registry_uri=registry_uri, source=QFlowRegistry.for_project(project_dir)
    )


def model_registry(name: str = "builtin", **options: Any) -> Any:
    """The model registry ``name`` from the plugin registry (``builtin``, ``mlflow`` or a
    plugin's), built with ``options`` (``project_dir=``, ``tracking_uri=``...); an unknown
    name lists the known ones."""
    from qflow.plugins.registry import plugin_registry

    return plugin_registry().create("model_registries", name, options)


def register(
    run: Any,
    step_output: str,
    *,
    name: str,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    signature: Signature | None = None,
    project_dir: str | Path | None = None,
) -> ModelVersion:
    """Register ``step_output`` (``STEP`` or ``STEP.OUTPUT``) of ``run`` (a run or run id)."""
    run_id = run if isinstance(run, str) else str(run.id)
    return registry(project_dir).register(
        run_id, step_output, name=name, description=description, tags=tags, signature=signature
    )


def load(ref: str, *, project_dir: str | Path | None = None) -> Any:
    """The model ``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME`` (latest), hash-checked."""
    return registry(project_dir).load(ref)


def get(ref: str, *, project_dir: str | Path | None = None) -> ModelVersion:
    """The version record a reference points at (signature, environment, run, aliases…)."""
    return registry(project_dir).get(ref)


def versions(name: str, *, project_dir: str | Path | None = None) -> list[ModelVersion]:
    return registry(project_dir).versions(name)


def list_models(*, project_dir: str | Path | None = None) -> list[RegisteredModel]:
    return registry(project_dir).models()


def set_alias(
    name: str, alias: str, version: int, *, project_dir: str | Path | None = None
) -> AliasChange:
    """Move ``alias`` to ``version``; who moved it, when and from where is kept."""
    return registry(project_dir).set_alias(name, alias, version)


def alias_history(
    name: str, alias: str | None = None, *, project_dir: str | Path | None = None
) -> list[AliasChange]:
    return registry(project_dir).alias_history(name, alias)
