"""The remote store: ``POST /api/store/NAME`` runs one metadata-store method for a client on
another machine (``qflow.store.remote.RemoteMetadataStore``).

The routes are made from the store's method table (``qflow.store.methods.StoreMethods``): one
per method, decoded and answered with that method's wire codecs. This module adds only what the
web layer owns: a typed pydantic body per method (sizes, patterns; a method without one fails at
import), and the check of refs against this server's artifact store. Artifact refs carry only
sha256 keys, never locations, and inline bytes are accepted only when they hash to their key and
have their stated size (400 otherwise)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from qflow.errors import InvalidValueError, QFlowError
from qflow.store.artifacts import ArtifactRef
from qflow.store.metadata.records import StepOutcome
from qflow.store.methods import METRIC_BATCH_ROWS, Method, table
from qflow.web.context import Context, context
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api/store", tags=["store"], responses=ERRORS)

Id = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(max_length=1_000_000)]
Name = Annotated[str, Field(min_length=1, max_length=1000)]
Int = Annotated[int, Field(ge=-(2**62), le=2**62)]
Bits = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ref(_Body):
    key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    serializer: Name
    size: Annotated[int, Field(ge=0, le=2**62)]
    type_name: Name
    pickled: bool
    inline: Annotated[str | None, Field(max_length=50_000_000)] = None
    serializer_version: Annotated[str, Field(max_length=100)] = ""


class CreateRun(_Body):
    workflow: Name
    config: dict[str, Any]
    run_id: Id | None = None
    parent_run_id: Id | None = None
    resumed_from: Id | None = None
    sweep_id: Name | None = None
    command: Text = ""
    meta: dict[str, Any] | None = None


class StepEntry(_Body):
    name: Name
    step: Name
    position: Int
    params: dict[str, Any]
    source: Text | None = None


class CreateStepRuns(_Body):
    run_id: Id
    entries: Annotated[list[StepEntry], Field(max_length=100_000)]


class StartStepRun(_Body):
    step_run_id: Int
    cache_key: Name | None = None
    fingerprint: Name | None = None
    reason: Text | None = None


class Outcome(_Body):
    status: Name
    outputs: dict[str, Ref] = Field(default_factory=dict)
    inputs: dict[str, Ref] = Field(default_factory=dict)
    error: Text | None = None
    traceback: Text | None = None
    stdout: Text | None = None
    stderr: Text | None = None
    attempts: Int = 1
    cached_from: Int | None = None
    cache_key: Name | None = None
    fingerprint: Name | None = None
    reason: Text | None = None
    started_at: float | None = None
    ended_at: float | None = None
    copy_records_from: Int | None = None


class FinishStepRun(_Body):
    step_run_id: Int
    outcome: Outcome


class RecordStepOutput(_Body):
    step_run_id: Int
    stdout: Text
    stderr: Text


class StepStart(StartStepRun):
    started_at: float | None = None


class RecordStepRuns(_Body):
    started: Annotated[list[StepStart], Field(max_length=10_000)] = Field(default_factory=list)
    finished: Annotated[list[tuple[Int, Outcome]], Field(max_length=10_000)] = Field(
        default_factory=list
    )


class MetricRow(_Body):
    run_id: Id
    step_run_id: Int | None
    key: Name
    bits: Bits
    step: Int | None
    timestamp: float


class LogMetrics(_Body):
    rows: Annotated[list[MetricRow], Field(max_length=5 * METRIC_BATCH_ROWS)]
    retry: bool = False
    """A re-sent batch: stored only if its last row is not stored already."""


class LogParams(_Body):
    run_id: Id
    params: dict[str, Any]
    step_run_id: Int | None = None


class SetTags(_Body):
    run_id: Id
    tags: dict[str, Text]


class LogRunArtifact(_Body):
    run_id: Id
    name: Name
    ref: Ref
    step_run_id: Int | None = None


class FinishRun(_Body):
    run_id: Id
    status: Name
    error: Text | None = None


class RunOnly(_Body):
    run_id: Id


class Nothing(_Body):
    pass


class CacheKey(_Body):
    cache_key: Name


class PreviousStepRun(_Body):
    workflow: Name
    name: Name
    before_run: Id


class CacheKeys(_Body):
    cache_keys: Annotated[list[Name], Field(max_length=100_000)]


class PreviousStepRuns(_Body):
    workflow: Name
    names: Annotated[list[Name], Field(max_length=100_000)]
    before_run: Id


class DataFiles(_Body):
    run_id: Id
    step_run_id: Int | None = None


class StepRunIds(_Body):
    step_run_ids: Annotated[list[Int], Field(max_length=100_000)]


class DataFile(_Body):
    name: Name
    path: Text
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0, le=2**62)]
    step_run_id: Int | None = None
    step_name: Name | None = None


class RecordDataFiles(_Body):
    step_run_id: Int
    files: Annotated[list[DataFile], Field(max_length=100_000)]


class GetStepRun(_Body):
    run_id: Id
    name: Name


class CloseStepRuns(_Body):
    run_id: Id
    status: Name
    error: Text


class SaveEnvironment(_Body):
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    packages: dict[str, Text]


class UpdateRunMeta(_Body):
    run_id: Id
    changes: dict[str, Any]


class Metrics(_Body):
    run_id: Id
    key: Name | None = None
    step_run_id: Int | None = None


class ListRuns(_Body):
    workflow: Name | None = None
    status: Name | None = None
    tags: dict[str, Text] | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100
    include_archived: bool = False
    include_deleted: bool = False


class RunsMatching(ListRuns):
    filter_text: Annotated[str, Field(max_length=4000)]


class RunsPage(_Body):
    filter_text: Annotated[str | None, Field(max_length=4000)] = None
    workflow: Name | None = None
    sort: Annotated[str, Field(max_length=500)] = "created_at"
    descending: bool = True
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    include_archived: bool = False
    include_deleted: bool = False


class MetricHistory(_Body):
    run_id: Id
    key: Name
    full: bool = False
    points: Annotated[int, Field(ge=10, le=100_000)] = 1000
    after: Annotated[int, Field(ge=0, le=2**62)] = 0


class StepRunOnly(_Body):
    step_run_id: Int


class ModelVersionFields(_Body):
    name: Name
    run_id: Id
    step_run_id: Int
    step: Name
    output: Name
    artifact_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    signature: dict[str, Any] | None = None
    environment: dict[str, Any] = {}
    environment_hash: Annotated[str, Field(max_length=64)] = ""
    description: Text | None = None
    created_by: Text | None = None
    pickled: bool = False


class CreateModelVersion(_Body):
    fields: ModelVersionFields
    tags: dict[str, Text] = {}


class ModelName(_Body):
    name: Name


class ModelVersionNumber(_Body):
    name: Name
    version: Int


class ModelDescription(_Body):
    name: Name
    version: Int | None = None
    text: Text


class ModelTags(_Body):
    name: Name
    version: Int | None = None
    tags: dict[str, Text]


class ModelAlias(_Body):
    name: Name
    alias: Name


class MoveAlias(_Body):
    name: Name
    alias: Name
    version: Int | None = None
    who: Name


class AliasHistory(_Body):
    name: Name
    alias: Name | None = None


class GetRun(_Body):
    run_id_or_prefix: Id
    summary: bool = True


class CreateStepRun(_Body):
    run_id: Id
    name: Name
    step: Name
    position: Int
    params: dict[str, Any]
    cache_key: Name | None = None
    status: Name = "pending"
    source: Text | None = None


class Environment(_Body):
    hash: Annotated[str, Field(min_length=1, max_length=64)]


class DataFileUses(_Body):
    path_or_sha256: Text


class DataFileReads(_Body):
    paths: Annotated[list[Text], Field(max_length=10_000)] = []
    sha256_prefix: Annotated[str | None, Field(max_length=64)] = None


class RunLifecycle(_Body):
    run_ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)]
    lifecycle: Literal["active", "archived", "deleted"]


class CreateExperiment(_Body):
    name: Name
    tags: dict[Name, Text]


class Key(_Body):
    key: Annotated[str, Field(min_length=1, max_length=64)]


class Sources(_Body):
    texts: Annotated[list[Text], Field(max_length=10_000)]


BODIES: dict[str, type[_Body]] = {
    "create_run": CreateRun,
    "finish_run": FinishRun,
    "heartbeat": RunOnly,
    "mark_crashed_runs": Nothing,
    "get_run": GetRun,
    "list_runs": ListRuns,
    "workflows": Nothing,
    "update_run_meta": UpdateRunMeta,
    "set_run_lifecycle": RunLifecycle,
    "create_experiment": CreateExperiment,
    "experiments": Nothing,
    "create_step_run": CreateStepRun,
    "create_step_runs": CreateStepRuns,
    "start_step_run": StartStepRun,
    "record_step_output": RecordStepOutput,
    "finish_step_run": FinishStepRun,
    "record_step_runs": RecordStepRuns,
    "step_runs": RunOnly,
    "step_run_by_id": StepRunOnly,
    "get_step_run": GetStepRun,
    "close_step_runs": CloseStepRuns,
    "previous_step_run": PreviousStepRun,
    "previous_step_runs": PreviousStepRuns,
    "find_cached": CacheKey,
    "find_cached_many": CacheKeys,
    "record_data_files": RecordDataFiles,
    "data_files": DataFiles,
    "data_files_of": StepRunIds,
    "log_metrics": LogMetrics,
    "metrics": Metrics,
    "log_params": LogParams,
    "param_rows": RunOnly,
    "set_tags": SetTags,
    "log_run_artifact": LogRunArtifact,
    "run_artifacts": RunOnly,
    "get_artifact": Key,
    "save_environment": SaveEnvironment,
    "environment": Environment,
    "save_sources": Sources,
    "source": Key,
    "artifact_uses": Key,
    "data_file_uses": DataFileUses,
    "data_file_reads": DataFileReads,
    "create_model_version": CreateModelVersion,
    "model_version": ModelVersionNumber,
    "model_versions": ModelName,
    "model_version_numbers": ModelName,
    "latest_model_version": ModelName,
    "model_names": Nothing,
    "require_model": ModelName,
    "models": Nothing,
    "set_model_description": ModelDescription,
    "set_model_tags": ModelTags,
    "model_tags": ModelName,
    "alias_version": ModelAlias,
    "model_aliases": ModelName,
    "move_alias": MoveAlias,
    "alias_history": AliasHistory,
    "runs_matching": RunsMatching,
    "runs_page": RunsPage,
    "workflow_stats": Nothing,
    "metric_keys": RunOnly,
    "metric_history": MetricHistory,
}
"""The request body each method of the table accepts: its validation schema."""


def _check_refs(ctx: Context, arguments: dict[str, Any]) -> None:
    """A ref to a blob this server's artifact store holds must have that blob's size (inline
    bytes were checked against key and size by ``wire.ref_from`` while decoding)."""
    for ref in _refs_in(list(arguments.values())):
        if ref.inline is None:
            ctx.artifacts.check_blob_size(ref)


def _refs_in(value: Any) -> Iterator[ArtifactRef]:
    """The artifact refs an argument holds: itself, a dict's values, an outcome's inputs and
    outputs, and those of a list's members (``record_step_runs``)."""
    if isinstance(value, ArtifactRef):
        yield value
    elif isinstance(value, StepOutcome):
        yield from (*value.inputs.values(), *value.outputs.values())
    elif isinstance(value, dict):
        yield from (ref for ref in value.values() if isinstance(ref, ArtifactRef))
    elif isinstance(value, list | tuple):
        for member in value:
            yield from _refs_in(member)


def _endpoint(method: Method[Any, Any], model: type[_Body]) -> Callable[..., Any]:
    def endpoint(ctx: Context, body: Any) -> Response:
        try:
            result = method.serve(
                ctx.metadata, body.model_dump(), check=lambda args: _check_refs(ctx, args)
            )
        except QFlowError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:  # values the store cannot take
            raise InvalidValueError(f"{method.name}: {exc}") from exc
        # Serialized here: FastAPI's generic encoder is slow on long lists of metrics. NaN and
        # ±Infinity (a param or config value) are written as Python's json reads them back:
        # this route's only client is the HTTP store.
        content = json.dumps({"result": result}, separators=(",", ":"))
        return Response(content, media_type="application/json")

    endpoint.__name__ = f"store_{method.name}"
    endpoint.__doc__ = f"``{method.name}{method.signature}`` for a remote client."
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "ctx",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[Context, Depends(context)],
            ),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
        ],
        return_annotation=dict[str, Any],
    )
    return endpoint


for _method in table():
    router.post(f"/{_method.name}", name=f"store_{_method.name}", response_model=None)(
        _endpoint(_method, BODIES[_method.name])
    )
