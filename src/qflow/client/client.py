"""A read API over the metadata and artifact stores: runs, steps, outputs, metrics."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.project import existing_project
from qflow.errors import ArtifactNotFoundError, did_you_mean
from qflow.runtime.reads import (
    CLIENT_LOAD,
    CLIENT_RUN,
    CLIENT_RUNS,
    note_client_read,
    runs_digest,
)

if TYPE_CHECKING:
    import pandas as pd

    from qflow.store.artifacts import ArtifactStore
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import LoggedArtifact, Metric, Run, StepRun


def _note(record: str, sha256: str, size: int) -> None:
    """Inside a running step, what the step read through the client is recorded with its
    file reads: an input of the step (lineage) and a condition of its cache hits."""
    note_client_read(record, sha256, size)


class MetricHistory(list["Metric"]):
    """Metric points in logging order."""

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [(m.key, m.value, m.step, m.timestamp) for m in self],
            columns=["key", "value", "step", "timestamp"],
        )


class StepView:
    """One step run; ``load()`` reads its output back from the artifact store."""

    def __init__(self, record: StepRun, artifacts: ArtifactStore) -> None:
        self.record = record
        self._artifacts = artifacts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    def __repr__(self) -> str:
        return f"<StepView {self.record.run_id}/{self.record.name} {self.record.status}>"

    def load(self, output: str | None = None) -> Any:
        """The step's output value: the only one, or the one named ``output``."""
        outputs = self.record.outputs
        if output is None:
            if len(outputs) != 1:
                raise ArtifactNotFoundError(
                    f"Step {self.record.name!r} has outputs {', '.join(outputs) or '(none)'}; "
                    "say which one: load('name')."
                )
            output = next(iter(outputs))
        if output not in outputs:
            raise ArtifactNotFoundError(
                f"Step {self.record.name!r} has no output {output!r}; it has "
                f"{', '.join(outputs) or '(none)'}.{did_you_mean(output, outputs)}"
            )
        ref = outputs[output]
        _note(f"{CLIENT_LOAD}{self.record.run_id}/{self.record.name}.{output}", ref.key, ref.size)
        return self._artifacts.get(ref)


class RunView:
    """One run with its steps, metrics and logged artifacts."""

    def __init__(self, record: Run, metadata: MetadataStore, artifacts: ArtifactStore) -> None:
        self.record = record
        self._metadata = metadata
        self._artifacts = artifacts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    def __repr__(self) -> str:
        return f"<RunView {self.record.id} {self.record.workflow} {self.record.status}>"

    @functools.cached_property
    def steps(self) -> list[StepView]:
        return [StepView(s, self._artifacts) for s in self._metadata.step_runs(self.record.id)]

    def step(self, name: str) -> StepView:
        """A step run by run name (``3_fit``) or step name (``fit``) when unique."""
        return StepView(self._metadata.get_step_run(self.record.id, name), self._artifacts)

    def metric_history(self, key: str | None = None) -> MetricHistory:
        return MetricHistory(self._metadata.metrics(self.record.id, key=key))

    @property
    def artifacts(self) -> list[LoggedArtifact]:
        return self._metadata.run_artifacts(self.record.id)


class RunTable(list[RunView]):
    """Runs, newest first; ``to_pandas()`` gives one row per run with config and metrics."""

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for run in self:
            row: dict[str, Any] = {
                "run_id": run.id,
                "workflow": run.workflow,
                "status": run.status,
                "created_at": pd.to_datetime(run.created_at, unit="s"),
                "duration": (run.ended_at - run.created_at) if run.ended_at else None,
            }
            row.update({f"config.{k}": v for k, v in _flatten(run.config).items()})
            row.update({f"metrics.{k}": v for k, v in run.metrics_summary.items()})
            row.update({f"tags.{k}": v for k, v in run.tags.items()})
            rows.append(row)
        return pd.DataFrame(rows)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


class Client:
    """Read access to a project's runs. ``Client()`` uses the project around the current
    folder (and ``QFLOW_STORE`` / ``QFLOW_ARTIFACTS`` when set)."""

    def __init__(self, project_dir: str | Path | None = None) -> None:
        from qflow.store import open_stores

        self.project = existing_project(Path(project_dir) if project_dir else None)
        self.metadata, self.artifacts = open_stores(self.project.root, create=False)
        self.metadata.mark_crashed_runs()

    def runs(
        self,
        workflow: str | None = None,
        *,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        filter: str | None = None,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> RunTable:
        """Runs newest first; ``filter`` is the runs filter language, e.g.
        ``"metrics.accuracy > 0.9 and params.C = 0.5"`` (see ``qflow.store.filters``).
        Archived and deleted runs are left out unless ``include_archived``/``include_deleted``."""
        shown = {"include_archived": include_archived, "include_deleted": include_deleted}
        if filter:
            records = self.metadata.runs_matching(
                filter, workflow=workflow, status=status, tags=tags, limit=limit, **shown
            )
        else:
            records = self.metadata.list_runs(
                workflow=workflow, status=status, tags=tags, limit=limit, **shown
            )
        asked = {"workflow": workflow, "status": status, "tags": tags, "filter": filter, **shown}
        query = {"limit": limit, **{k: v for k, v in asked.items() if v not in (None, False)}}
        found = [(r.id, r.status) for r in records]
        _note(CLIENT_RUNS + json.dumps(query, sort_keys=True), runs_digest(found), len(found))
        return RunTable(RunView(r, self.metadata, self.artifacts) for r in records)

    def delete_runs(self, *run_ids: str) -> list[RunView]:
        """Delete runs (ids or unique prefixes): hidden at once, their rows and the blobs only
        they used removed by the next ``qflow gc`` (``restore_runs`` undoes it until then).
        A running run, or one a model version was registered from, refuses the whole call."""
        return self._lifecycle(run_ids, "deleted")

    def archive_runs(self, *run_ids: str) -> list[RunView]:
        """Archive runs: hidden from listings (``include_archived=True`` shows them), kept."""
        return self._lifecycle(run_ids, "archived")

    def restore_runs(self, *run_ids: str) -> list[RunView]:
        """Bring deleted (before ``qflow gc``) or archived runs back into listings."""
        return self._lifecycle(run_ids, "active")

    def _lifecycle(self, run_ids: tuple[str, ...], lifecycle: str) -> list[RunView]:
        records = self.metadata.set_run_lifecycle(list(run_ids), lifecycle)
        return [RunView(r, self.metadata, self.artifacts) for r in records]

    def run(self, run_id: str) -> RunView:
        """A run by id or unique id prefix."""
        record = self.metadata.get_run(run_id)
        _note(f"{CLIENT_RUN}{record.id}", runs_digest([(record.id, record.status)]), 1)
        return RunView(record, self.metadata, self.artifacts)

    def workflows(self) -> list[str]:
        return self.metadata.workflows()
