"""The built-in model registry: versions of step outputs in the project's metadata store.

A version points at a step output of a run (so its lineage is the run's) and records the
output's content hash. ``load`` re-hashes the stored bytes (a blob file or the inline bytes
kept in the metadata store) and refuses a model whose bytes are not the ones registered,
before any deserializer (pickle included) runs on them.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
    ModelIntegrityError,
    ModelNotFoundError,
    StepNotFoundError,
)
from qflow.registry.reference import ModelRef, check_model_name, parse_ref
from qflow.registry.signature import Signature, infer
from qflow.registry.store import ModelRegistryStore
from qflow.store.metadata.records import REUSABLE, RunStatus

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import (
        AliasChange,
        ModelVersion,
        RegisteredModel,
        Run,
        StepRun,
    )

_USABLE = REUSABLE
# Training inputs that say "these are the features", best first; else the first table/array.
_FEATURE_NAMES = ("X", "X_train", "x", "x_train", "features", "inputs", "train", "data", "frame")
_TABULAR = ("pandas.DataFrame", "numpy.ndarray", "pyarrow.Table", "numpy.memmap")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def environment_hash(environment: Mapping[str, Any]) -> str:
    """sha256 of the environment's canonical JSON: equal environments, equal hashes."""
    text = json.dumps(environment, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class QFlowRegistry:
    """The ``ModelRegistry`` over a project's metadata and artifact stores."""

    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore) -> None:
        self.metadata = metadata
        self.artifacts = artifacts
        self.store = ModelRegistryStore(metadata)

    @classmethod
    def for_project(cls, project_dir: str | Path | None = None) -> QFlowRegistry:
        """The registry of the project around ``project_dir`` (default: the current folder).
        Outside a project it raises ``NotAProjectError``; it never creates a store, since a
        model is only registered from a run that is already recorded."""
        from qflow.config.project import existing_project
        from qflow.store import open_stores

        project = existing_project(Path(project_dir) if project_dir else None)
        return cls(*open_stores(project.root, create=False))

    def __repr__(self) -> str:
        return f"QFlowRegistry({self.metadata!r}, {self.artifacts!r})"

    # -- registering -----------------------------------------------------------------------

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
        """Register output ``STEP[.OUTPUT]`` of ``run`` as the next version of ``name``.

        The signature is inferred from the step's training inputs unless given; the
        environment is the run's recorded one (Python, platform, packages…).
        """
        check_model_name(name)
        record = self.metadata.get_run(run)
        step_run, output_name = self.find_output(record, output)
        ref = step_run.outputs[output_name]
        if signature is None:
            signature = self.infer_signature(step_run)
        version = self.store.create_version(
            {
                "name": name,
                "run_id": record.id,
                "step_run_id": step_run.id,
                "step": step_run.name,
                "output": output_name,
                "artifact_key": ref.key,
                "signature": signature.to_dict() if signature else None,
                "environment": record.meta,
                "environment_hash": environment_hash(record.meta),
                "description": description,
                "created_by": _who(),
                "pickled": ref.pickled,
            },
            dict(tags or {}),
        )
        return self.store.version(name, version)

    def find_output(self, run: Run, spec: str) -> tuple[StepRun, str]:
        """The step run and output name ``STEP[.OUTPUT]`` means in ``run``."""
        if run.status != RunStatus.SUCCEEDED:
            raise InvalidValueError(
                f"Run {run.id} is {run.status}; only a succeeded run's outputs can be registered."
                f"\nHint: qflow show {run.id} tells what happened."
            )
        try:
            step_run, output = self.metadata.get_step_run(run.id, spec), None
        except StepNotFoundError:
            step, dot, output = spec.rpartition(".")
            if not dot:
                raise
            step_run = self.metadata.get_step_run(run.id, step)
        if step_run.status not in _USABLE:
            raise InvalidValueError(f"Step {step_run.name!r} of run {run.id} is {step_run.status}.")
        outputs = step_run.outputs
        if output is None:
            if len(outputs) != 1:
                raise ArtifactNotFoundError(
                    f"Step {step_run.name!r} has outputs {', '.join(outputs) or '(none)'}; "
                    f"say which one: {step_run.name}.<output>."
                )
            output = next(iter(outputs))
        if output not in outputs:
            from qflow.errors import did_you_mean

            raise ArtifactNotFoundError(
                f"Step {step_run.name!r} has no output {output!r}; it has "
                f"{', '.join(outputs) or '(none)'}.{did_you_mean(output, outputs)}"
            )
        return step_run, output

    def infer_signature(self, step_run: StepRun) -> Signature | None:
        """The signature of the step's feature input (a DataFrame or array it was fit on)."""
        candidates = [
            (name, ref) for name, ref in step_run.inputs.items() if ref.type_name in _TABULAR
        ]
        if not candidates:
            return None

        def rank(item: tuple[str, ArtifactRef]) -> int:
            last = item[0].rpartition(".")[2]
            return _FEATURE_NAMES.index(last) if last in _FEATURE_NAMES else len(_FEATURE_NAMES)

        _, ref = min(candidates, key=rank)
        return infer(self.artifacts.get(ref))

    # -- reading ---------------------------------------------------------------------------

    def resolve(self, ref: str | ModelRef) -> tuple[ModelRef, int]:
        """A reference and the version number it points at now."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        if parsed.version is not None:
            return parsed, parsed.version
        if parsed.alias is None:
            return parsed, self.store.latest_version(parsed.name)
        version = self.store.alias_version(parsed.name, parsed.alias)
        if version is None:
            self.store.require_model(parsed.name)
            from qflow.errors import did_you_mean

            aliases = self.store.aliases(parsed.name)
            raise ModelNotFoundError(
                f"Model {parsed.name!r} has no alias {parsed.alias!r}; it has "
                f"{', '.join(aliases) or '(none)'}.{did_you_mean(parsed.alias, aliases)}\n"
                f"Hint: qflow models alias {parsed.name} {parsed.alias} VERSION"
            )
        return parsed, version

    def get(self, ref: str) -> ModelVersion:
        parsed, version = self.resolve(ref)
        self.store.require_model(parsed.name)
        return self.store.version(parsed.name, version)

    def versions(self, name: str) -> list[ModelVersion]:
        return self.store.versions(name)

    def models(self) -> list[RegisteredModel]:
        return self.store.models()

    # -- changing --------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        check_model_name(alias, "alias")
        self.store.require_model(name)
        self.store.version(name, version)
        return self.store.move_alias(name, alias, version, _who())

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        self.resolve(ModelRef(name, alias=alias))
        return self.store.move_alias(name, alias, None, _who())

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        self.store.require_model(name)
        return self.store.alias_history(name, alias)

    def describe(self, ref: str, text: str) -> None:
        """Set the description of a model (``NAME``) or of a version (``NAME/3``, ``NAME@a``)."""
        parsed = parse_ref(ref)
        self.store.require_model(parsed.name)
        is_model = parsed.version is None and parsed.alias is None and "/" not in ref
        version = None if is_model else self.resolve(parsed)[1]
        self.store.set_description(parsed.name, version, text)

    def set_tags(self, ref: str, tags: Mapping[str, str]) -> None:
        """Tag a model (``NAME``) or a version (``NAME/3``, ``NAME@alias``)."""
        parsed = parse_ref(ref)
        self.store.require_model(parsed.name)
        is_model = parsed.version is None and parsed.alias is None and "/" not in ref
        version = None if is_model else self.resolve(parsed)[1]
        self.store.set_tags(parsed.name, version, tags)

    # -- loading ---------------------------------------------------------------------------

    def load(self, ref: str) -> Any:
        """The model ``ref`` points at, loaded only if its bytes hash to the registered key."""
        return self.load_version(self.get(ref))

    def load_version(self, version: ModelVersion) -> Any:
        step_run = self.metadata.get_step_run(version.run_id, version.step)
        ref = step_run.outputs.get(version.output)
        if ref is None or ref.key != version.artifact_key:
            raise ModelIntegrityError(
                f"Model {version.name}/{version.version}: the run's output {version.output!r} "
                f"of step {version.step!r} is no longer the registered artifact "
                f"{version.artifact_key[:12]!r}. The model is not loaded."
            )
        return self.load_verified(ref, f"{version.name}/{version.version}")

    def load_verified(self, ref: ArtifactRef, label: str) -> Any:
        """Read the artifact's bytes, check their sha256, then deserialize those same bytes."""
        data = self.read_bytes(ref)
        digest = hashlib.sha256(data).hexdigest()
        if digest != ref.key:
            raise ModelIntegrityError(
                f"Model {label}: its stored bytes hash to {digest[:12]!r}, not the registered "
                f"{ref.key[:12]!r}; the artifact was changed or corrupted, so it is not loaded."
                "\nHint: register the model again from a fresh run."
            )
        return self.artifacts.get(dataclasses.replace(ref, inline=data))

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        """The artifact's stored bytes: inline in the metadata store, or its blob."""
        if ref.inline is not None:
            return ref.inline
        path = self.artifacts.local_path(ref.key)
        if path is not None:
            return path.read_bytes()
        if self.artifacts.exists(ref.key):
            import fsspec

            key = ref.key
            url = f"{self.artifacts.url.rstrip('/')}/{key[:2]}/{key[2:4]}/{key}"
            with fsspec.open(url, "rb") as file:
                data: bytes = file.read()
            return data
        raise ArtifactNotFoundError(
            f"Artifact {ref.key[:12]!r} is not in the artifact store at {self.artifacts.url}. "
            "Hint: check QFLOW_ARTIFACTS points at the store the run used."
        )
