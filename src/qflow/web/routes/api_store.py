"""The remote store: ``POST /api/store/METHOD`` runs one ``MetadataStore`` method for a
client on another machine (``qflow.store.remote.RemoteMetadataStore``). Every body is a typed
pydantic model; artifact refs carry only sha256 keys, never locations, and inline bytes are
accepted only when they hash to their key and have their stated size (400 otherwise)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from qflow.errors import InvalidValueError, QFlowError
from qflow.store import wire
from qflow.store.artifacts import ArtifactRef
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


class FinishStepRun(_Body):
    step_run_id: Int
    status: Name
    outputs: dict[str, Ref] | None = None
    inputs: dict[str, Ref] | None = None
    error: Text | None = None
    traceback: Text | None = None
    stdout: Text | None = None
    stderr: Text | None = None
    attempts: Int = 1
    cached_from: Int | None = None
    cache_key: Name | None = None
    started_at: float | None = None
    ended_at: float | None = None
    fingerprint: Name | None = None
    reason: Text | None = None
    copy_records_from: Int | None = None


class MetricRow(_Body):
    run_id: Id
    step_run_id: Int | None
    key: Name
    bits: Bits
    step: Int | None
    timestamp: float


class LogMetrics(_Body):
    rows: Annotated[list[MetricRow], Field(max_length=1_000_000)]
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


class DataFiles(_Body):
    run_id: Id
    step_run_id: Int | None = None


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
    filter: Annotated[str | None, Field(max_length=4000)] = None
    include_archived: bool = False
    include_deleted: bool = False


class RunLifecycle(_Body):
    run_ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)]
    lifecycle: Literal["active", "archived", "deleted"]


def _list_runs(ctx: Context, body: ListRuns) -> list[dict[str, Any]]:
    fields = body.model_dump(exclude={"filter"})
    if body.filter:
        from qflow.client.queries import runs_matching

        return [wire.run_to(r) for r in runs_matching(ctx.metadata, body.filter, **fields)]
    return [wire.run_to(r) for r in ctx.metadata.list_runs(**fields)]


class Key(_Body):
    key: Annotated[str, Field(min_length=1, max_length=64)]


class Sources(_Body):
    texts: Annotated[list[Text], Field(max_length=10_000)]


def _ref(ctx: Context, ref: Ref) -> ArtifactRef:
    """The ref, its inline bytes checked against key and size (``wire.ref_from``); a ref to a
    blob this server's artifact store holds is checked against that blob's size."""
    checked = wire.ref_from(ref.model_dump())
    if checked.inline is None:
        ctx.artifacts.check_blob_size(checked)
    return checked


def _refs(ctx: Context, refs: dict[str, Ref] | None) -> dict[str, ArtifactRef] | None:
    return None if refs is None else {k: _ref(ctx, v) for k, v in refs.items()}


def _maybe_step(step: Any) -> Any:
    return None if step is None else wire.step_to(step)


# method name → (body model, call(ctx, body) → JSON-able result)
Handler = Callable[[Context, Any], Any]
METHODS: dict[str, tuple[type[_Body], Handler]] = {
    "create_run": (CreateRun, lambda c, b: wire.run_to(c.metadata.create_run(**b.model_dump()))),
    "create_step_runs": (
        CreateStepRuns,
        lambda c, b: c.metadata.create_step_runs(b.run_id, [e.model_dump() for e in b.entries]),
    ),
    "start_step_run": (
        StartStepRun,
        lambda c, b: c.metadata.start_step_run(
            b.step_run_id, cache_key=b.cache_key, fingerprint=b.fingerprint, reason=b.reason
        ),
    ),
    "finish_step_run": (
        FinishStepRun,
        lambda c, b: c.metadata.finish_step_run(
            **{
                **b.model_dump(exclude={"outputs", "inputs"}),
                "outputs": _refs(c, b.outputs),
                "inputs": _refs(c, b.inputs),
            }
        ),
    ),
    "log_metrics": (
        LogMetrics,
        lambda c, b: c.metadata.log_metrics(
            [
                (r.run_id, r.step_run_id, r.key, wire.bits_float(r.bits), r.step, r.timestamp)
                for r in b.rows
            ],
            retry=b.retry,
        ),
    ),
    "log_params": (
        LogParams,
        lambda c, b: c.metadata.log_params(b.run_id, b.params, b.step_run_id),
    ),
    "set_tags": (SetTags, lambda c, b: c.metadata.set_tags(b.run_id, b.tags)),
    "log_run_artifact": (
        LogRunArtifact,
        lambda c, b: c.metadata.log_run_artifact(b.run_id, b.name, _ref(c, b.ref), b.step_run_id),
    ),
    "finish_run": (FinishRun, lambda c, b: c.metadata.finish_run(b.run_id, b.status, b.error)),
    "heartbeat": (RunOnly, lambda c, b: c.metadata.heartbeat(b.run_id)),
    "mark_crashed_runs": (Nothing, lambda c, b: c.metadata.mark_crashed_runs()),
    "find_cached": (CacheKey, lambda c, b: _maybe_step(c.metadata.find_cached(b.cache_key))),
    "previous_step_run": (
        PreviousStepRun,
        lambda c, b: _maybe_step(c.metadata.previous_step_run(b.workflow, b.name, b.before_run)),
    ),
    "data_files": (
        DataFiles,
        lambda c, b: [wire.data_file_to(f) for f in c.metadata.data_files(b.run_id, b.step_run_id)],
    ),
    "record_data_files": (
        RecordDataFiles,
        lambda c, b: c.metadata.record_data_files(
            b.step_run_id, [wire.data_file_from(f.model_dump()) for f in b.files]
        ),
    ),
    "get_run": (RunOnly, lambda c, b: wire.run_to(c.metadata.get_run(b.run_id))),
    "step_runs": (RunOnly, lambda c, b: [wire.step_to(s) for s in c.metadata.step_runs(b.run_id)]),
    "get_step_run": (
        GetStepRun,
        lambda c, b: wire.step_to(c.metadata.get_step_run(b.run_id, b.name)),
    ),
    "close_step_runs": (
        CloseStepRuns,
        lambda c, b: c.metadata.close_step_runs(b.run_id, b.status, b.error),
    ),
    "save_environment": (
        SaveEnvironment,
        lambda c, b: c.metadata.save_environment(b.hash, b.packages),
    ),
    "update_run_meta": (
        UpdateRunMeta,
        lambda c, b: c.metadata.update_run_meta(b.run_id, b.changes),
    ),
    "metrics": (
        Metrics,
        lambda c, b: [
            wire.metric_to(m) for m in c.metadata.metrics(b.run_id, b.key, b.step_run_id)
        ],
    ),
    "run_artifacts": (
        RunOnly,
        lambda c, b: [wire.logged_to(a) for a in c.metadata.run_artifacts(b.run_id)],
    ),
    "list_runs": (ListRuns, _list_runs),
    "set_run_lifecycle": (
        RunLifecycle,
        lambda c, b: [wire.run_to(r) for r in c.metadata.set_run_lifecycle(b.run_ids, b.lifecycle)],
    ),
    "workflows": (Nothing, lambda c, b: c.metadata.workflows()),
    "get_artifact": (Key, lambda c, b: wire.ref_to(c.metadata.get_artifact(b.key))),
    "source": (Key, lambda c, b: c.metadata.source(b.key)),
    "save_sources": (Sources, lambda c, b: c.metadata.save_sources(b.texts)),
    "environment": (Key, lambda c, b: c.metadata.environment(b.key)),
}


def _endpoint(name: str, model: type[_Body], handler: Handler) -> Callable[..., Any]:
    def endpoint(ctx: Context, body: Any) -> dict[str, Any]:
        try:
            return {"result": handler(ctx, body)}
        except QFlowError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:  # values the store cannot take
            raise InvalidValueError(f"{name}: {exc}") from exc

    endpoint.__name__ = f"store_{name}"
    endpoint.__doc__ = f"``MetadataStore.{name}`` for a remote client."
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


for _name, (_model, _handler) in METHODS.items():
    router.post(f"/{_name}", name=f"store_{_name}")(_endpoint(_name, _model, _handler))
