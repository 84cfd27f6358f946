"""``qf.models``: the model registry from Python.

```python
import qflow as qf

run = qf.run(train, config)
qf.models.register(run, "fit", name="churn")          # STEP[.OUTPUT] of the run
qf.models.set_alias("churn", "production", 1)
model = qf.models.load("churn@production")           # or "churn/1", or "churn" (latest)
```

Every function takes ``project_dir`` (default: the project around the current folder).

``configured`` picks the registry the command line uses: the MLflow Model Registry when the
project's MLflow tracker config (``conf/tracker/*.yaml`` with ``name: mlflow``) sets a
``registry_uri`` (as ``qflow new`` writes it), or when asked for with ``registry="mlflow"``;
QFlow's built-in registry otherwise (or with ``registry="qflow"``).
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
    "configured",
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


REGISTRIES = ("qflow", "mlflow")


def mlflow_settings(project_root: Path) -> dict[str, Any] | None:
    """``tracking_uri`` and ``registry_uri`` of the project's MLflow tracker config, if any."""
    import yaml

    folder = project_root / "conf" / "tracker"
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, dict) and data.get("name") == "mlflow":
            return {k: data.get(k) for k in ("tracking_uri", "registry_uri")}
    return None


def configured(
    project_dir: str | Path | None = None, registry: str | None = None
) -> QFlowRegistry | MlflowRegistry:
    """The registry the project is configured for (see the module docstring)."""
    from qflow.config.project import existing_project
    from qflow.errors import ConfigError, did_you_mean

    if registry is not None and registry not in REGISTRIES:
        raise ConfigError(
            f"Unknown registry {registry!r}; it must be one of {', '.join(REGISTRIES)}."
            f"{did_you_mean(registry, list(REGISTRIES))}"
        )
    builtin = QFlowRegistry.for_project(project_dir)
    if registry == "qflow":
        return builtin
    root = existing_project(Path(project_dir) if project_dir else None).root
    settings = mlflow_settings(root)
    if registry is None and not (settings and settings.get("registry_uri")):
        return builtin
    from qflow.integrations.mlflow import resolve_tracking_uri
    from qflow.registry.mlflow_registry import MlflowRegistry

    settings = settings or {}
    tracking, _ = resolve_tracking_uri(settings.get("tracking_uri"), root)
    registry_uri = settings.get("registry_uri")
    if registry_uri:
        registry_uri, _ = resolve_tracking_uri(str(registry_uri), root)
    return MlflowRegistry(tracking, registry_uri=registry_uri or tracking, source=builtin)


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
