"""The method table of the metadata-store contract: every method, with how its arguments and
result travel (``qflow.store.wire`` codecs) and whether a request may be sent again.

``StoreMethods`` is that table. Its attributes are ``Method`` descriptors made from the
``qflow.store.contract`` Protocols' own functions, so each keeps the exact signature the
Protocol declares (mypy checks callers against it). Two things are built from it and nothing
else: the HTTP client (``qflow.store.remote.RemoteMetadataStore`` subclasses ``StoreMethods``
and supplies only the transport) and the server's routes (``qflow.web.routes.api_store`` makes
one ``POST /api/store/NAME`` per method and answers with ``Method.serve``).

A method is safe to send again after a request that may have reached the server
(``repeatable``) when its write is idempotent in the SQL store (``create_run`` with the id the
client chose, ``create_step_runs`` by step-run name, ``finish_*`` only while open, upserts) or
says so on a re-send (``log_metrics(retry=True)``). The two registry writes that record a new
event per call (``create_model_version``, ``move_alias``) and ``create_experiment`` (whose
answer says whether this call recorded it) are not: they are retried only while the request
cannot have been sent (connection refused).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from qflow.errors import (
    ArtifactNotFoundError,
    ModelNotFoundError,
    NotFoundError,
    RunNotFoundError,
    StepNotFoundError,
)
from qflow.store import wire
from qflow.store.contract import (
    EnvironmentStore,
    LogStore,
    MetadataStore,
    RegistryStore,
    RunQueryStore,
    RunStore,
    StepRunStore,
)

if TYPE_CHECKING:
    from typing import Self

METRIC_BATCH_ROWS = 20_000
"""Metric rows per request to a tracking server (about 2 MB of JSON); the server takes at
most ``5 * METRIC_BATCH_ROWS``, and checking a batch holds its worker for a moment only."""

P = ParamSpec("P")
R = TypeVar("R")


class Method(Generic[P, R]):
    """One contract method: its name and signature (taken from the Protocol's function), the
    codecs of the arguments that are not plain JSON, and the codec of its result.

    On a ``StoreMethods`` instance the attribute is a bound call with the Protocol's
    signature that goes through ``StoreMethods.invoke``.
    """

    def __init__(
        self,
        protocol_function: Callable[Concatenate[Any, P], R],
        result: wire.Codec[R],
        *,
        args: Mapping[str, wire.Codec[Any]] | None = None,
        empty: tuple[str, Any] | None = None,
        resend: Mapping[str, Any] | None = None,
        prepare: Callable[[dict[str, Any]], None] | None = None,
        not_found: type[NotFoundError] = RunNotFoundError,
        repeatable: bool = True,
        split: tuple[str, int] | None = None,
    ) -> None:
        self.name: str = protocol_function.__name__
        parameters = list(inspect.signature(protocol_function).parameters.values())[1:]
        self.signature = inspect.Signature(parameters)
        self.args: Mapping[str, wire.Codec[Any]] = args or {}
        self.result = result
        self.empty = empty
        """``(argument, result)``: when that argument is empty the answer is known."""
        self.resend: Mapping[str, Any] = resend or {}
        """Arguments changed when a request that may have reached the server is sent again."""
        self.prepare = prepare
        """Fills in what the client chooses before the first send (e.g. a new run's id)."""
        self.not_found = not_found
        self.repeatable = repeatable
        """Whether a request that may have reached the server can be sent again. Only calls
        that record a new event every time (a model version, an alias move) cannot."""
        self.split = split
        """``(argument, size)``: a longer list in that argument is sent as several calls of at
        most ``size`` items, so no request nears the server's body or batch limit."""
        unknown = set(self.args) - {p.name for p in parameters}
        if unknown:
            raise TypeError(f"{self.name}: codecs for unknown arguments {sorted(unknown)}")

    def __repr__(self) -> str:
        return f"<store method {self.name}{self.signature}>"

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, obj: StoreMethods, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, obj: StoreMethods | None, owner: type[Any]) -> Any:
        if obj is None:
            return self

        def call(*args: Any, **kwargs: Any) -> Any:
            return obj.invoke(self, args, kwargs)

        call.__name__ = self.name
        call.__doc__ = f"``{self.name}{self.signature}`` on the HTTP store."
        return call

    def encode_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The JSON body for a call with these arguments (defaults filled in)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        body = {n: self._codec(n).encode(v) for n, v in bound.arguments.items()}
        if self.prepare is not None:
            self.prepare(body)
        return body

    def is_empty(self, body: Mapping[str, Any]) -> bool:
        return self.empty is not None and not body[self.empty[0]]

    def decode_call(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments a JSON body stands for."""
        return {n: self._codec(n).decode(v) for n, v in body.items()}

    def serve(
        self,
        store: MetadataStore,
        body: Mapping[str, Any],
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Run the method on ``store`` with a JSON body (decoded, then given to ``check``,
        which may refuse it); the result as JSON."""
        arguments = self.decode_call(body)
        if check is not None:
            check(arguments)
        return self.result.encode(getattr(store, self.name)(**arguments))

    def _codec(self, name: str) -> wire.Codec[Any]:
        return self.args.get(name, wire.PLAIN)


def _new_run_id(body: dict[str, Any]) -> None:
    """The client names a new run, so a re-sent ``create_run`` finds it instead of a twin."""
    if body.get("run_id") is None:
        from qflow.ids import new_run_id

        body["run_id"] = new_run_id()


class StoreMethods(abc.ABC):
    """The table: one ``Method`` per contract method. A subclass supplies ``invoke``."""

    # -- runs ---------------------------------------------------------------------------------
    create_run = Method(
        RunStore.create_run,
        wire.RUN,
        args={"config": wire.JSON, "meta": wire.JSON},
        prepare=_new_run_id,
    )
    finish_run = Method(RunStore.finish_run, wire.NOTHING)
    heartbeat = Method(RunStore.heartbeat, wire.NOTHING)
    mark_crashed_runs = Method(RunStore.mark_crashed_runs, wire.PLAIN)
    get_run = Method(RunStore.get_run, wire.RUN)
    list_runs = Method(RunStore.list_runs, wire.listed(wire.RUN))
    workflows = Method(RunStore.workflows, wire.PLAIN)
    update_run_meta = Method(RunStore.update_run_meta, wire.NOTHING, args={"changes": wire.JSON})
    set_run_lifecycle = Method(
        RunStore.set_run_lifecycle, wire.listed(wire.RUN), args={"run_ids": wire.Codec(list, list)}
    )
    create_experiment = Method(
        RunStore.create_experiment,
        wire.PLAIN,
        args={"tags": wire.Codec(dict, dict)},
        repeatable=False,
    )
    experiments = Method(RunStore.experiments, wire.listed(wire.EXPERIMENT))

    # -- step runs ----------------------------------------------------------------------------
    create_step_run = Method(StepRunStore.create_step_run, wire.INT, args={"params": wire.JSON})
    create_step_runs = Method(
        StepRunStore.create_step_runs,
        wire.listed(wire.INT),
        args={"entries": wire.entries()},
        empty=("entries", []),
    )
    start_step_run = Method(StepRunStore.start_step_run, wire.NOTHING)
    record_step_output = Method(StepRunStore.record_step_output, wire.NOTHING)
    finish_step_run = Method(
        StepRunStore.finish_step_run, wire.NOTHING, args={"outcome": wire.OUTCOME}
    )
    record_step_runs = Method(
        StepRunStore.record_step_runs,
        wire.NOTHING,
        args={"started": wire.listed(wire.STEP_START), "finished": wire.listed(wire.FINISHED)},
    )
    step_runs = Method(StepRunStore.step_runs, wire.listed(wire.STEP))
    step_run_by_id = Method(StepRunStore.step_run_by_id, wire.optional(wire.STEP))
    get_step_run = Method(StepRunStore.get_step_run, wire.STEP, not_found=StepNotFoundError)
    close_step_runs = Method(StepRunStore.close_step_runs, wire.NOTHING)
    previous_step_run = Method(StepRunStore.previous_step_run, wire.optional(wire.STEP))
    previous_step_runs = Method(
        StepRunStore.previous_step_runs,
        wire.keyed(wire.STEP),
        args={"names": wire.Codec(list, list)},
    )
    find_cached = Method(StepRunStore.find_cached, wire.optional(wire.STEP))
    find_cached_many = Method(
        StepRunStore.find_cached_many,
        wire.keyed(wire.STEP),
        args={"cache_keys": wire.Codec(list, list)},
    )
    record_data_files = Method(
        StepRunStore.record_data_files,
        wire.NOTHING,
        args={"files": wire.listed(wire.DATA_FILE)},
        empty=("files", None),
    )
    data_files = Method(StepRunStore.data_files, wire.listed(wire.DATA_FILE))
    data_files_of = Method(StepRunStore.data_files_of, wire.listed(wire.DATA_FILE))

    # -- metrics and logs ---------------------------------------------------------------------
    log_metrics = Method(
        LogStore.log_metrics,
        wire.NOTHING,
        args={"rows": wire.listed(wire.METRIC_ROW)},
        empty=("rows", None),
        resend={"retry": True},
        split=("rows", METRIC_BATCH_ROWS),
    )
    metrics = Method(LogStore.metrics, wire.listed(wire.METRIC))
    log_params = Method(LogStore.log_params, wire.NOTHING, args={"params": wire.JSON})
    param_rows = Method(LogStore.param_rows, wire.TUPLES)
    set_tags = Method(LogStore.set_tags, wire.NOTHING)
    log_run_artifact = Method(LogStore.log_run_artifact, wire.NOTHING, args={"ref": wire.REF})
    run_artifacts = Method(LogStore.run_artifacts, wire.listed(wire.LOGGED))
    get_artifact = Method(LogStore.get_artifact, wire.REF, not_found=ArtifactNotFoundError)

    # -- environments and provenance ----------------------------------------------------------
    save_environment = Method(EnvironmentStore.save_environment, wire.NOTHING)
    environment = Method(EnvironmentStore.environment, wire.PLAIN)
    save_sources = Method(
        EnvironmentStore.save_sources, wire.PLAIN, args={"texts": wire.Codec(list, list)}
    )
    source = Method(EnvironmentStore.source, wire.PLAIN)
    artifact_uses = Method(EnvironmentStore.artifact_uses, wire.TUPLES)
    data_file_uses = Method(EnvironmentStore.data_file_uses, wire.listed(wire.DATA_FILE))
    data_file_reads = Method(
        EnvironmentStore.data_file_reads,
        wire.listed(wire.DATA_FILE),
        args={"paths": wire.Codec(list, list)},
    )

    # -- model registry -----------------------------------------------------------------------
    create_model_version = Method(
        RegistryStore.create_model_version,
        wire.INT,
        args={"fields": wire.JSON, "tags": wire.Codec(dict, dict)},
        repeatable=False,
        not_found=ModelNotFoundError,
    )
    model_version = Method(
        RegistryStore.model_version, wire.MODEL_VERSION, not_found=ModelNotFoundError
    )
    model_versions = Method(
        RegistryStore.model_versions, wire.listed(wire.MODEL_VERSION), not_found=ModelNotFoundError
    )
    model_version_numbers = Method(RegistryStore.model_version_numbers, wire.PLAIN)
    latest_model_version = Method(
        RegistryStore.latest_model_version, wire.INT, not_found=ModelNotFoundError
    )
    model_names = Method(RegistryStore.model_names, wire.PLAIN)
    require_model = Method(RegistryStore.require_model, wire.NOTHING, not_found=ModelNotFoundError)
    models = Method(RegistryStore.models, wire.listed(wire.REGISTERED_MODEL))
    set_model_description = Method(RegistryStore.set_model_description, wire.NOTHING)
    set_model_tags = Method(
        RegistryStore.set_model_tags, wire.NOTHING, args={"tags": wire.Codec(dict, dict)}
    )
    model_tags = Method(RegistryStore.model_tags, wire.PLAIN)
    alias_version = Method(RegistryStore.alias_version, wire.PLAIN)
    model_aliases = Method(RegistryStore.model_aliases, wire.PLAIN)
    move_alias = Method(RegistryStore.move_alias, wire.ALIAS_CHANGE, repeatable=False)
    alias_history = Method(RegistryStore.alias_history, wire.listed(wire.ALIAS_CHANGE))

    # -- run queries --------------------------------------------------------------------------
    runs_matching = Method(RunQueryStore.runs_matching, wire.listed(wire.RUN))
    runs_page = Method(RunQueryStore.runs_page, wire.RUNS_PAGE)
    workflow_stats = Method(RunQueryStore.workflow_stats, wire.PLAIN)
    metric_keys = Method(RunQueryStore.metric_keys, wire.PLAIN)
    metric_history = Method(RunQueryStore.metric_history, wire.PLAIN)

    @abc.abstractmethod
    def invoke(
        self, method: Method[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Carry out one call of ``method``."""


def table() -> Iterator[Method[Any, Any]]:
    """Every method of the table, in declaration order."""
    for value in vars(StoreMethods).values():
        if isinstance(value, Method):
            yield value
