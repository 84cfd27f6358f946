"""Frozen records the metadata store returns; callers never see SQL rows or cursors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from qflow.store.artifacts import ArtifactRef


class RunStatus(StrEnum):
    """How a run stands. The store keeps the value; a finished run never changes status."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    CRASHED = "crashed"


class RunLifecycle(StrEnum):
    """Whether a run shows in listings. Archived runs are hidden but kept; deleted runs are
    hidden until ``qflow gc`` removes them and reclaims what only they used."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    DELETED = "deleted"


class StepStatus(StrEnum):
    """How a step run stands. PENDING and RUNNING are open; the others are final."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    KILLED = "killed"


OPEN = (StepStatus.PENDING, StepStatus.RUNNING)
"""Step-run statuses that may still change."""
REUSABLE = (StepStatus.SUCCEEDED, StepStatus.CACHED)
"""Step-run statuses whose outputs exist: a cache source, a resume's finished work."""


@dataclass(frozen=True)
class Run:
    """One execution of a workflow, with its run-level params, tags and latest metrics."""

    id: str
    workflow: str
    status: RunStatus
    created_at: float
    ended_at: float | None
    config: dict[str, Any]
    parent_run_id: str | None
    resumed_from: str | None
    sweep_id: str | None
    host: str | None
    user: str | None
    pid: int | None
    command: str | None
    heartbeat_at: float | None
    error: str | None
    meta: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    metrics_summary: dict[str, float] = field(default_factory=dict)
    archived_at: float | None = None
    deleted_at: float | None = None

    def __post_init__(self) -> None:
        # Rows and wire payloads carry the status as text; the record always holds the enum.
        object.__setattr__(self, "status", RunStatus(self.status))

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.created_at

    @property
    def lifecycle(self) -> RunLifecycle:
        """Deleted wins over archived: a deleted run goes at the next ``qflow gc``."""
        if self.deleted_at is not None:
            return RunLifecycle.DELETED
        if self.archived_at is not None:
            return RunLifecycle.ARCHIVED
        return RunLifecycle.ACTIVE


@dataclass(frozen=True)
class StepRun:
    """One step's execution inside a run, with the artifacts it read and wrote (lineage)."""

    id: int
    run_id: str
    name: str
    step: str
    position: int
    status: StepStatus
    started_at: float | None
    ended_at: float | None
    cache_key: str | None
    cached_from: int | None
    params: dict[str, Any]
    error: str | None
    traceback: str | None
    stdout: str | None
    stderr: str | None
    attempts: int
    fingerprint: str | None = None
    reason: str | None = None
    source_key: str | None = None
    inputs: dict[str, ArtifactRef] = field(default_factory=dict)
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", StepStatus(self.status))

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def outcome(self) -> StepOutcome:
        """How this step run ended, as ``finish_step_run`` was given it (a replay to a tracker
        sees what the live run's ``after_step`` saw)."""
        return StepOutcome(
            self.status,
            outputs=dict(self.outputs),
            inputs=dict(self.inputs),
            error=self.error,
            traceback=self.traceback,
            stdout=self.stdout,
            stderr=self.stderr,
            attempts=self.attempts,
            cached_from=self.cached_from,
            cache_key=self.cache_key,
            fingerprint=self.fingerprint,
            reason=self.reason,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )


@dataclass(frozen=True)
class StepStart:
    """A step run that starts running: what is known only now (its cache key, code fingerprint
    and why it runs). ``record_step_runs`` writes many in one transaction."""

    step_run_id: int
    cache_key: str | None = None
    fingerprint: str | None = None
    reason: str | None = None
    started_at: float | None = None
    """When it started; None: when the store records it."""


@dataclass(frozen=True)
class StepOutcome:
    """How one step run ended: what ``finish_step_run`` records and ``after_step`` reports.

    A step that ran has its times, attempts and captured output; one served from the cache or
    taken from an earlier run names that step run (``cached_from``, ``copy_records_from``);
    one that never ran (skipped, failed before running, a finished map) has only its status
    and ``error`` or ``reason``. Times left None are set by the store to now.
    """

    status: StepStatus
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    inputs: dict[str, ArtifactRef] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    attempts: int = 1
    cached_from: int | None = None
    """The step run whose outputs were reused (a cache hit, or a call taken by ``--from``)."""
    cache_key: str | None = None
    fingerprint: str | None = None
    reason: str | None = None
    """Why the step ran, was cached or was skipped, as ``qflow show`` prints it."""
    started_at: float | None = None
    ended_at: float | None = None
    copy_records_from: int | None = None
    """A step run whose metrics, params and files this one takes over (a cache hit)."""

    @property
    def duration(self) -> float:
        """Seconds the step ran: 0 when it did not run here."""
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.started_at

    @property
    def failure(self) -> str | None:
        """The error as hooks receive it: only a failed step has one (a skipped step's
        ``error`` holds its skip reason)."""
        return self.error if self.status == StepStatus.FAILED else None


@dataclass(frozen=True)
class DataFileRecord:
    """A data file a step read (a ``qf.DataFile`` argument): where it was and its hash."""

    name: str
    path: str
    sha256: str
    size: int
    step_run_id: int | None = None
    step_name: str | None = None


@dataclass(frozen=True)
class Metric:
    """One logged metric value, exact as logged (NaN, ±inf and -0.0 included)."""

    key: str
    value: float
    step: int | None
    timestamp: float
    step_run_id: int | None


@dataclass(frozen=True)
class LoggedArtifact:
    """An artifact logged by label (``log_artifact``/``log_figure``) rather than as step output."""

    name: str
    ref: ArtifactRef
    step_run_id: int | None


@dataclass(frozen=True)
class RunsPage:
    """One page of the dashboard's runs table: JSON-able run rows (``RunQueryStore.runs_page``)
    with the param and metric keys found on the page."""

    runs: list[dict[str, Any]]
    offset: int
    limit: int
    has_more: bool
    param_keys: list[str] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: a step output of a run, with how to check and use it.

    ``signature`` is the JSON form of ``qflow.registry.signature.Signature`` (or None);
    ``environment`` is the training run's recorded environment and ``environment_hash`` its
    sha256; ``artifact_key`` is the sha256 the model's bytes must hash to before it is loaded.
    """

    name: str
    version: int
    run_id: str
    step_run_id: int
    step: str
    output: str
    artifact_key: str
    signature: dict[str, Any] | None
    environment: dict[str, Any]
    environment_hash: str
    description: str | None
    created_at: float
    created_by: str | None
    pickled: bool
    serializer: str = ""
    type_name: str = ""
    size: int = 0
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its versions' summary, aliases and tags."""

    name: str
    description: str | None
    created_at: float
    created_by: str | None
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias: to ``version`` (None when removed) from ``previous_version``."""

    name: str
    alias: str
    version: int | None
    previous_version: int | None
    who: str | None
    changed_at: float


@dataclass(frozen=True)
class Experiment:
    """A workflow name recorded before any run: MLflow's API creates an experiment first and
    its runs later, and an experiment with no run must still be found by name."""

    name: str
    tags: dict[str, str]
    created_at: float
