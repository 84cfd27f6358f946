"""The metadata-store contract: one ``Protocol`` per aggregate, and ``MetadataStore``, all of them.

Two stores implement it: the SQL store (``qflow.store.metadata.store.SqlMetadataStore``, on
SQLite or PostgreSQL) and the HTTP store (``qflow.store.remote.RemoteMetadataStore``, a client
of ``qflow server``). Both pass the same contract tests (``tests/integration/store_contract``).
``qflow.store.methods`` lists every method with its wire codecs; the server's routes and the
HTTP client are both built from that table, so the three stay one.

Everything here is typing only: importing this module loads neither SQLAlchemy nor httpx.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef
    from qflow.store.metadata.records import (
        AliasChange,
        DataFileRecord,
        Experiment,
        LoggedArtifact,
        Metric,
        ModelVersion,
        RegisteredModel,
        Run,
        RunsPage,
        StepOutcome,
        StepRun,
        StepStart,
    )

MAX_PAGE = 500
"""The most runs one ``runs_page`` returns."""
CHART_POINTS = 1000
"""About how many points ``metric_history`` keeps by default."""

MetricRow = tuple[str, int | None, str, float, int | None, float]
"""``(run_id, step_run_id, key, value, step, timestamp)``: one logged metric value."""


class RunStore(Protocol):
    """Runs: create, finish, find, list, archive, and detect crashed ones."""

    def create_run(
        self,
        *,
        workflow: str,
        config: dict[str, Any],
        run_id: str | None = None,
        parent_run_id: str | None = None,
        resumed_from: str | None = None,
        sweep_id: str | None = None,
        command: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Run:
        """Record a new running run. Idempotent for a given ``run_id``: creating it again with
        the same workflow and config returns the run already recorded."""
        ...

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None: ...

    def heartbeat(self, run_id: str) -> None: ...

    def mark_crashed_runs(self) -> list[str]: ...

    def get_run(self, run_id_or_prefix: str, *, summary: bool = True) -> Run:
        """A run by exact id or unique id prefix. ``summary=False`` leaves its
        ``metrics_summary`` empty: that reads every metric of the run, which a write path
        that only checks the run's state should not pay for on each write."""
        ...

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> list[Run]: ...

    def workflows(self) -> list[str]: ...

    def update_run_meta(self, run_id: str, changes: dict[str, Any]) -> None: ...

    def set_run_lifecycle(self, run_ids: Sequence[str], lifecycle: str) -> list[Run]: ...

    def create_experiment(self, name: str, tags: Mapping[str, str]) -> bool:
        """Record workflow name ``name`` as an experiment with ``tags`` before it has runs;
        False, and nothing changed, when it is recorded already. Not idempotent: a second
        call answers False."""
        ...

    def experiments(self) -> list[Experiment]:
        """The recorded experiments, by name (a workflow with runs need not be one)."""
        ...


class StepRunStore(Protocol):
    """Step runs: their lifecycle, lineage, cache lookups and the data files they read."""

    def create_step_run(
        self,
        *,
        run_id: str,
        name: str,
        step: str,
        position: int,
        params: dict[str, Any],
        cache_key: str | None = None,
        status: str = "pending",
        source: str | None = None,
    ) -> int:
        """Record one step run; idempotent for a given ``(run_id, name)``."""
        ...

    def create_step_runs(self, run_id: str, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        """Record pending step runs; ids in entry order. Idempotent: a batch whose names are
        all recorded already in ``run_id`` returns their ids."""
        ...

    def start_step_run(
        self,
        step_run_id: int,
        *,
        cache_key: str | None = None,
        fingerprint: str | None = None,
        reason: str | None = None,
    ) -> None: ...

    def record_step_output(self, step_run_id: int, stdout: str, stderr: str) -> None:
        """Replace a running step run's output with what it printed so far; a step run that
        is not running (finished, or not started) keeps its own."""
        ...

    def finish_step_run(self, step_run_id: int, outcome: StepOutcome) -> None: ...

    def record_step_runs(
        self,
        started: Sequence[StepStart] = (),
        finished: Sequence[tuple[int, StepOutcome]] = (),
    ) -> None:
        """``start_step_run`` and ``finish_step_run`` for many step runs in one transaction
        (starts first); as idempotent as they are."""
        ...

    def step_runs(self, run_id: str) -> list[StepRun]: ...

    def step_run_by_id(self, step_run_id: int) -> StepRun | None: ...

    def get_step_run(self, run_id: str, name: str) -> StepRun: ...

    def close_step_runs(self, run_id: str, status: str, error: str) -> None: ...

    def previous_step_run(self, workflow: str, name: str, before_run: str) -> StepRun | None:
        """The latest succeeded or cached run of step call ``name`` in a run of ``workflow``
        older than ``before_run``: what a cache miss is compared against."""
        ...

    def previous_step_runs(
        self, workflow: str, names: Sequence[str], before_run: str
    ) -> dict[str, StepRun]:
        """``previous_step_run`` for each of ``names`` at once (a mapped step's items), by
        name; a name with none is left out."""
        ...

    def find_cached(self, cache_key: str) -> StepRun | None:
        """The latest succeeded step run with ``cache_key`` whose outputs are all recorded, in
        a run that is not deleted."""
        ...

    def find_cached_many(self, cache_keys: Sequence[str]) -> dict[str, StepRun]:
        """``find_cached`` for each of ``cache_keys`` at once (a mapped step's items), by key;
        a key with no hit is left out."""
        ...

    def record_data_files(self, step_run_id: int, files: Sequence[DataFileRecord]) -> None:
        """Remember the data files a step run read; recording the same files again for the
        same step run adds nothing."""
        ...

    def data_files(self, run_id: str, step_run_id: int | None = None) -> list[DataFileRecord]: ...

    def data_files_of(self, step_run_ids: Sequence[int]) -> list[DataFileRecord]:
        """The data files of these step runs, whatever their runs (the earlier runs a mapped
        step's items are compared with), by step run, each in the order it was recorded;
        unknown ids are left out."""
        ...


class LogStore(Protocol):
    """What steps log: metrics, params, tags and artifacts."""

    def log_metrics(self, rows: Sequence[MetricRow], *, retry: bool = False) -> None:
        """Append metric rows; ``retry=True`` stores a batch only if its last row is not
        stored already (a batch re-sent after its answer was lost)."""
        ...

    def metrics(
        self, run_id: str, key: str | None = None, step_run_id: int | None = None
    ) -> list[Metric]: ...

    def log_params(
        self, run_id: str, params: dict[str, object], step_run_id: int | None = None
    ) -> None: ...

    def param_rows(self, run_id: str) -> list[tuple[int | None, str, Any]]:
        """Every param logged in a run, in logging order: ``(step_run_id, key, value)``,
        ``step_run_id`` None for run-level params."""
        ...

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    def log_run_artifact(
        self, run_id: str, name: str, ref: ArtifactRef, step_run_id: int | None = None
    ) -> None: ...

    def run_artifacts(self, run_id: str) -> list[LoggedArtifact]: ...

    def get_artifact(self, key: str) -> ArtifactRef: ...


class EnvironmentStore(Protocol):
    """Provenance: installed-package lists, step sources, where artifacts and files were used."""

    def save_environment(self, hash: str, packages: dict[str, str]) -> None: ...

    def environment(self, hash: str) -> dict[str, str] | None: ...

    def save_sources(self, texts: Sequence[str]) -> list[str]: ...

    def source(self, key: str) -> str | None: ...

    def artifact_uses(self, key: str) -> list[tuple[str, str, str, str]]: ...

    def data_file_uses(self, path_or_sha256: str) -> list[DataFileRecord]: ...

    def data_file_reads(
        self, *, paths: Sequence[str] = (), sha256_prefix: str | None = None
    ) -> list[DataFileRecord]: ...


class RegistryStore(Protocol):
    """The model registry: models, their numbered versions, tags, aliases and alias history."""

    def create_model_version(self, fields: Mapping[str, Any], tags: Mapping[str, str]) -> int:
        """Record the next version of model ``fields["name"]`` (creating the model); its number.
        Not idempotent: each call is a new version."""
        ...

    def model_version(self, name: str, version: int) -> ModelVersion: ...

    def model_versions(self, name: str) -> list[ModelVersion]: ...

    def model_version_numbers(self, name: str) -> list[int]: ...

    def latest_model_version(self, name: str) -> int: ...

    def model_names(self) -> list[str]: ...

    def require_model(self, name: str) -> None:
        """Raise ``ModelNotFoundError`` unless a model ``name`` is registered."""
        ...

    def models(self) -> list[RegisteredModel]: ...

    def set_model_description(self, name: str, version: int | None, text: str) -> None: ...

    def set_model_tags(self, name: str, version: int | None, tags: Mapping[str, str]) -> None: ...

    def model_tags(self, name: str) -> dict[str, str]: ...

    def alias_version(self, name: str, alias: str) -> int | None: ...

    def model_aliases(self, name: str) -> dict[str, int]: ...

    def move_alias(self, name: str, alias: str, version: int | None, who: str) -> AliasChange:
        """Point ``alias`` at ``version`` (None removes it) and record the move in the alias
        history. Not idempotent: each call records a move."""
        ...

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]: ...


class RunQueryStore(Protocol):
    """Reads over many runs: the filter language, the dashboard's runs page, metric histories."""

    def runs_matching(
        self,
        filter_text: str,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching the filter language (``qflow.store.filters``), newest first."""
        ...

    def runs_page(
        self,
        *,
        filter_text: str | None = None,
        workflow: str | None = None,
        sort: str = "created_at",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> RunsPage: ...

    def workflow_stats(self) -> list[dict[str, Any]]: ...

    def metric_keys(self, run_id: str) -> list[dict[str, Any]]: ...

    def metric_history(
        self,
        run_id: str,
        key: str,
        *,
        full: bool = False,
        points: int = CHART_POINTS,
        after: int = 0,
    ) -> dict[str, Any]: ...


class MetadataStore(
    RunStore, StepRunStore, LogStore, EnvironmentStore, RegistryStore, RunQueryStore, Protocol
):
    """Every aggregate: what the runtime, the CLI, ``qf.Client`` and the dashboard use."""

    url: str
    """Where the store is (a database URL or the tracking server's address)."""

    def dispose(self) -> None:
        """Release connections; the store reconnects on next use."""
        ...
