"""The MLflow Model Registry as a ``ModelRegistry``: QFlow step outputs become MLflow versions.

``register`` loads the QFlow step output (hash-checked), saves it in MLflow's sklearn format
with the QFlow signature converted to MLflow's, logs it to an MLflow run and creates a model
version tagged with the QFlow run, step, artifact key, environment and a sha256 of the saved
model folder. ``load("NAME@alias")`` (also ``models:/NAME@alias``) downloads the version,
checks that sha256 and only then loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import MissingExtraError, ModelIntegrityError, ModelNotFoundError
from qflow.registry.builtin import _who, environment_hash
from qflow.registry.reference import check_model_name, parse_ref
from qflow.registry.signature import Signature
from qflow.store.metadata.records import AliasChange, ModelVersion

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry

_TAG = "qflow."
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
        mlflow = _mlflow()
        tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            yield mlflow
        finally:
            mlflow.set_tracking_uri(tracking)
            mlflow.set_registry_uri(registry)

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
        model = self.source.load_verified(ref, f"{record.id}/{step_run.name}.{output_name}")
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
        with self._uris() as mlflow, tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            mlflow.sklearn.save_model(model, str(folder), signature=to_mlflow_signature(signature))
            qflow_tags["model_sha256"] = folder_hash(folder)
            # MLflow 3 saves scikit-learn models with skops (no pickle) when it can.
            skops = (folder / "model.skops").exists()
            qflow_tags["serialization"] = "skops" if skops else "cloudpickle"
            mlflow.set_experiment(self.experiment)
            with mlflow.start_run(run_name=f"qflow-{record.id}") as active:
                mlflow.set_tags({_TAG + k: v for k, v in qflow_tags.items() if len(v) < 5000})
                mlflow.log_artifacts(str(folder), "model")
                run_id = active.info.run_id
        with contextlib.suppress(Exception):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(
            name,
            f"runs:/{run_id}/model",
            run_id=run_id,
            tags={**{_TAG + k: v for k, v in qflow_tags.items()}, **dict(tags or {})},
            description=description,
        )
        return self._record(self.client.get_model_version(name, version.version))

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

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        check_model_name(alias, "alias")
        from mlflow.exceptions import MlflowException

        previous: int | None = None
        with contextlib.suppress(MlflowException):
            previous = int(self.client.get_model_version_by_alias(name, alias).version)
        self.client.set_registered_model_alias(name, alias, str(version))
        import time

        return AliasChange(name, alias, version, previous, _who(), time.time())

    def load(self, ref: str) -> Any:
        """The model, after checking the downloaded folder hashes to the registered sha256."""
        record = self.get(ref)
        expected = record.tags.get(_TAG + "model_sha256")
        with self._uris() as mlflow, tempfile.TemporaryDirectory() as tmp:
            uri = f"models:/{record.name}/{record.version}"
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
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
