"""The MLflow Model Registry as a ``ModelRegistry``: QFlow step outputs become MLflow versions.

``register`` registers the model the MLflow tracker already logged for that step output (found
by its ``qflow.artifact_key`` tag on the training step's child run), with source
``runs:/<child run>/<model>``, so MLflow's UI links the version to the run that trained it.
When no tracker logged it, the QFlow step output is loaded (hash-checked), saved in MLflow's
sklearn format with the QFlow signature converted to MLflow's and logged to a run of the
``qflow-models`` experiment first. Each version is tagged with the QFlow run, step, artifact
key, environment and a sha256 of the model folder. ``load("NAME@alias")`` (also
``models:/NAME@alias``) downloads the version, checks that sha256 and only then loads it.

Alias moves are kept as registered-model tags ``qflow.alias_history.<n>`` (JSON: alias,
version, previous version, who, when), since MLflow keeps only where an alias points now;
``alias_history`` reads them back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import MissingExtraError, ModelIntegrityError, ModelNotFoundError
from qflow.registry.builtin import _who, environment_hash
from qflow.registry.reference import ModelRef, check_model_name, parse_ref
from qflow.registry.signature import Signature
from qflow.store.metadata.records import AliasChange, ModelVersion, RegisteredModel

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry

_TAG = "qflow."
_HISTORY = "qflow.alias_history."
_DTYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
}
# Written by MLflow into a downloaded registered model; not part of what was registered.
_ADDED_ON_DOWNLOAD = {"registered_model_meta"}
_KINDS = {"float": "double", "integer": "long", "boolean": "boolean", "datetime": "datetime"}


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise MissingExtraError.for_extra("mlflow", "mlflow") from exc
    return mlflow


def folder_hash(root: Path) -> str:
    """sha256 over a folder's files: relative path and bytes of each, in sorted order."""
    digest = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and p.name not in _ADDED_ON_DOWNLOAD)
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _model_root(folder: Path) -> Path:
    """The folder holding ``MLmodel``: a version registered from ``runs:/RUN/model``
    downloads into a ``model/`` subfolder."""
    if (folder / "MLmodel").is_file():
        return folder
    found = sorted(folder.rglob("MLmodel"))
    return found[0].parent if found else folder


def to_mlflow_signature(signature: Signature | None) -> Any:
    """QFlow's signature as an ``mlflow.models.ModelSignature`` (inputs only)."""
    if signature is None:
        return None
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    if signature.is_tensor:
        spec = TensorSpec(np.dtype(signature.dtype), tuple(signature.shape or ()))
        return ModelSignature(inputs=Schema([spec]))
    columns: list[Any] = [
        ColSpec(_DTYPES.get(c.dtype, _KINDS.get(c.kind, "string")), c.name, required=True)
        for c in signature.columns
    ]
    return ModelSignature(inputs=Schema(columns))


class MlflowRegistry:
    """Versions in an MLflow Model Registry, registered from a QFlow project's runs."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        registry_uri: str | None = None,
        source: QFlowRegistry | None = None,
        experiment: str = "qflow-models",
    ) -> None:
        mlflow = _mlflow()
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.registry_uri = registry_uri or self.tracking_uri
        self.source = source
        self.experiment = experiment
        self.client = mlflow.MlflowClient(self.tracking_uri, self.registry_uri)

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.tracking_uri!r})"

    @contextlib.contextmanager
    def _uris(self) -> Iterator[Any]:
        """MLflow's fluent API reads global URIs: point them here, then put them back."""
        import os

        mlflow = _mlflow()
        tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # not under QFlow's output
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            yield mlflow
        finally:
            mlflow.set_tracking_uri(tracking)
            mlflow.set_registry_uri(registry)
            if bar is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar

    def register(
        self,
        run: str,
        output: str,
        *,
        name: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        signature: Signature | None = None,
    ) -> ModelVersion:
        """Register output ``STEP[.OUTPUT]`` of QFlow run ``run`` as a new MLflow version."""
        if self.source is None:
            raise ModelNotFoundError(
                "This MlflowRegistry has no QFlow project to read runs from. "
                "Hint: MlflowRegistry(uri, source=QFlowRegistry.for_project(...))."
            )
        check_model_name(name)
        record = self.source.metadata.get_run(run)
        step_run, output_name = self.source.find_output(record, output)
        ref = step_run.outputs[output_name]
        signature = signature or self.source.infer_signature(step_run)
        qflow_tags = {
            "run_id": record.id,
            "step_run_id": str(step_run.id),
            "step": step_run.name,
            "output": output_name,
            "artifact_key": ref.key,
            "signature": json.dumps(signature.to_dict() if signature else None),
            "environment": json.dumps(record.meta, default=str),
            "environment_hash": environment_hash(record.meta),
        }
        logged = self.logged_model(ref.key)
        with self._uris() as mlflow, tempfile.TemporaryDirectory() as tmp:
            if logged is not None:
                folder = _model_root(
                    Path(
                        mlflow.artifacts.download_artifacts(
                            artifact_uri=logged.artifact_location, dst_path=tmp
                        )
                    )
                )
                run_id, source = logged.source_run_id, f"runs:/{logged.source_run_id}/{logged.name}"
            else:
                folder = Path(tmp) / "model"
                model = self.source.load_verified(ref, f"{record.id}/{step_run.name}.{output_name}")
                mlflow.sklearn.save_model(
                    model, str(folder), signature=to_mlflow_signature(signature)
                )
            qflow_tags["model_sha256"] = folder_hash(folder)
            # MLflow 3 saves scikit-learn models with skops (no pickle) when it can.
            skops = (folder / "model.skops").exists()
            qflow_tags["serialization"] = "skops" if skops else "cloudpickle"
            if logged is None:
                mlflow.set_experiment(self.experiment)
                with mlflow.start_run(run_name=f"qflow-{record.id}") as active:
                    mlflow.set_tags({_TAG + k: v for k, v in qflow_tags.items() if len(v) < 5000})
                    mlflow.log_artifacts(str(folder), "model")
                    run_id = active.info.run_id
                source = f"runs:/{run_id}/model"
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(
            name,
            source,
            run_id=run_id,
            tags={**{_TAG + k: v for k, v in qflow_tags.items()}, **dict(tags or {})},
            description=description,
            model_id=logged.model_id if logged is not None else None,
        )
        return self._record(self.client.get_model_version(name, version.version))

    def logged_model(self, artifact_key: str) -> Any:
        """The MLflow model the tracker logged for QFlow artifact ``artifact_key``, or None."""
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        for start in range(0, len(experiments), 100):
            found = self.client.search_logged_models(
                experiments[start : start + 100],
                filter_string=f"tags.`qflow.artifact_key` = '{artifact_key}'",
                max_results=1,
            )
            if found:
                return found[0]
        return None

    def get(self, ref: str) -> ModelVersion:
        parsed = parse_ref(ref)
        from mlflow.exceptions import MlflowException

        try:
            if parsed.alias is not None:
                found = self.client.get_model_version_by_alias(parsed.name, parsed.alias)
            elif parsed.version is not None:
                found = self.client.get_model_version(parsed.name, str(parsed.version))
            else:
                latest = self.client.search_model_versions(
                    f"name = '{parsed.name}'", order_by=["version_number DESC"], max_results=1
                )
                if not latest:
                    raise ModelNotFoundError(f"MLflow has no versions of model {parsed.name!r}.")
                # search results carry no aliases; fetch the version itself
                found = self.client.get_model_version(parsed.name, latest[0].version)
        except MlflowException as exc:
            raise ModelNotFoundError(
                f"MLflow at {self.registry_uri} has no model {ref!r}: {exc.message}"
            ) from exc
        return self._record(found)

    def versions(self, name: str) -> list[ModelVersion]:
        found = self.client.search_model_versions(f"name = '{name}'")
        return sorted((self._record(v) for v in found), key=lambda v: v.version)

    def resolve(self, ref: str | ModelRef) -> tuple[ModelRef, int]:
        """A reference and the version number it points at now."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        if parsed.version is not None:
            return parsed, parsed.version
        return parsed, self.get(str(parsed) if parsed.alias else parsed.name).version

    def models(self) -> list[RegisteredModel]:
        found = []
        for m in self.client.search_registered_models():
            versions = [int(v.version) for v in m.latest_versions or ()]
            found.append(
                RegisteredModel(
                    name=m.name,
                    description=m.description or None,
                    created_at=(m.creation_timestamp or 0) / 1000,
                    created_by=None,
                    latest_version=max(versions) if versions else None,
                    aliases={a: int(v) for a, v in (m.aliases or {}).items()},
                    tags={k: v for k, v in (m.tags or {}).items() if not k.startswith(_HISTORY)},
                )
            )
        return sorted(found, key=lambda m: m.name)

    def _previous(self, name: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def _keep(self, change: AliasChange) -> AliasChange:
        """Record an alias move as the next ``qflow.alias_history.<n>`` tag of the model."""
        tags = self.client.get_registered_model(change.name).tags or {}
        count = sum(1 for k in tags if k.startswith(_HISTORY))
        value = {
            "alias": change.alias,
            "version": change.version,
            "previous_version": change.previous_version,
            "who": change.who,
            "when": change.changed_at,
        }
        key = f"{_HISTORY}{count:06d}"
        self.client.set_registered_model_tag(change.name, key, json.dumps(value))
        return change

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        check_model_name(alias, "alias")
        self.get(f"{name}/{version}")  # a clear error for a missing model or version
        previous = self._previous(name, alias)
        self.client.set_registered_model_alias(name, alias, str(version))
        return self._keep(AliasChange(name, alias, version, previous, _who(), time.time()))

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        previous = self._previous(name, alias)
        if previous is None:
            raise ModelNotFoundError(f"MLflow model {name!r} has no alias {alias!r}.")
        self.client.delete_registered_model_alias(name, alias)
        return self._keep(AliasChange(name, alias, None, previous, _who(), time.time()))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every alias move made through QFlow, oldest first (MLflow keeps none itself)."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(name).tags or {}
        except MlflowException as exc:
            raise ModelNotFoundError(
                f"MLflow at {self.registry_uri} has no model {name!r}: {exc.message}"
            ) from exc
        changes = []
        for key in sorted(k for k in tags if k.startswith(_HISTORY)):
            item = json.loads(tags[key])
            change = AliasChange(
                name,
                item["alias"],
                item["version"],
                item["previous_version"],
                item["who"],
                item["when"],
            )
            if alias is None or change.alias == alias:
                changes.append(change)
        return changes

    def _is_model(self, ref: str) -> bool:
        parsed = parse_ref(ref)
        return parsed.version is None and parsed.alias is None and "/" not in ref

    def describe(self, ref: str, text: str) -> None:
        """Set the description of a model (``NAME``) or of a version (``NAME/3``, ``NAME@a``)."""
        if self._is_model(ref):
            self.client.update_registered_model(parse_ref(ref).name, description=text)
        else:
            version = self.get(ref)
            self.client.update_model_version(version.name, str(version.version), text)

    def set_tags(self, ref: str, tags: Mapping[str, str]) -> None:
        """Tag a model (``NAME``) or a version (``NAME/3``, ``NAME@alias``)."""
        if self._is_model(ref):
            for key, value in tags.items():
                self.client.set_registered_model_tag(parse_ref(ref).name, key, value)
            return
        version = self.get(ref)
        for key, value in tags.items():
            self.client.set_model_version_tag(version.name, str(version.version), key, value)

    def load_version(self, version: ModelVersion) -> Any:
        return self.load(f"{version.name}/{version.version}")

    def load(self, ref: str) -> Any:
        """The model, after checking the downloaded folder hashes to the registered sha256."""
        record = self.get(ref)
        expected = record.tags.get(_TAG + "model_sha256")
        with self._uris() as mlflow, tempfile.TemporaryDirectory() as tmp:
            uri = f"models:/{record.name}/{record.version}"
            local = _model_root(
                Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            )
            actual = folder_hash(local)
            if expected is None or actual != expected:
                raise ModelIntegrityError(
                    f"MLflow model {record.name}/{record.version}: its files hash to "
                    f"{actual[:12]!r}, not the registered {str(expected)[:12]!r}; not loaded."
                )
            return mlflow.sklearn.load_model(str(local))

    def _record(self, v: Any) -> ModelVersion:
        tags: dict[str, str] = dict(v.tags or {})

        def tag(key: str, default: str = "") -> str:
            return tags.get(_TAG + key, default)

        return ModelVersion(
            name=v.name,
            version=int(v.version),
            run_id=tag("run_id"),
            step_run_id=int(tag("step_run_id", "0")),
            step=tag("step"),
            output=tag("output"),
            artifact_key=tag("artifact_key"),
            signature=json.loads(tag("signature", "null")),
            environment=json.loads(tag("environment", "{}")),
            environment_hash=tag("environment_hash"),
            description=v.description or None,
            created_at=v.creation_timestamp / 1000,
            created_by=v.user_id or None,
            pickled=tag("serialization", "cloudpickle") != "skops",
            serializer=f"mlflow.sklearn/{tag('serialization', 'cloudpickle')}",
            aliases=tuple(v.aliases or ()),
            tags=tags,
        )
