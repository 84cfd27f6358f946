"""Replay a recorded run to trackers: ``qflow sync RUN --tracker mlflow``.

QFlow's own store keeps everything a run logged, whichever trackers were on and whether they
were up. ``sync_run`` reads the run back through :class:`qflow.client.Client` and calls the
trackers' hooks in the order a live run does (``before_run``; per step ``before_step``,
params, metrics, files, ``after_step``; run-level records; ``after_run``), with the recorded
start and end times where the tracker can use them. Trackers run in strict mode here: a failure
raises ``TrackerError`` instead of being skipped with a warning.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError
from qflow.graph.model import Edge, Graph, Node
from qflow.runtime.trackers import BUILTIN_TRACKER, tracker_specs, trackers_from_config
from qflow.store.metadata.records import RunStatus, StepStatus

if TYPE_CHECKING:
    from qflow.client.client import Client, RunView
    from qflow.store.artifacts import ArtifactRef
    from qflow.store.metadata.records import Metric

_BATCH = 1000


@dataclass
class SyncReport:
    """What was sent, per tracker."""

    run_id: str
    trackers: list[str]
    steps: int = 0
    metrics: int = 0
    params: int = 0
    artifacts: int = 0
    replaced: int = 0
    skipped: list[str] = field(default_factory=list)
    """Trackers that already held the whole run (nothing sent there)."""


def sync_run(
    run_id: str,
    *,
    tracker: str | None = None,
    tracking_uri: str | None = None,
    replace: bool = False,
    project_dir: str | Path | None = None,
) -> SyncReport:
    """Send run ``run_id`` (or a unique prefix) to ``tracker``, or to the trackers its config
    named. ``tracking_uri`` overrides where an MLflow tracker sends it.

    Idempotent: a tracker already holding the whole run is skipped (``replace`` sends it
    again); a partial copy (left by an outage mid-run: runs still RUNNING, no final status) is
    deleted there and the run sent whole."""
    from qflow.client import Client

    client = Client(project_dir)
    run = client.run(run_id)
    specs = _specs(run.config, tracker, tracking_uri)
    trackers = trackers_from_config({"tracker": specs}, client.project.root, strict=True)
    if not trackers:
        raise ConfigError(
            f"Run {run.id} has no tracker to sync to: its config names only {BUILTIN_TRACKER!r}, "
            "which already has everything.\nHint: qflow sync RUN --tracker mlflow"
        )
    report = SyncReport(run.id, [s["name"] for s in specs if s["name"] != BUILTIN_TRACKER])
    sent = 0
    try:
        for spec, plugin in zip(_named(specs), trackers, strict=True):
            cleared = _clear_previous(plugin, run, replace)
            if cleared is None:
                report.skipped.append(str(spec["name"]))
                continue
            report.replaced += cleared
            _replay(plugin, client, run, report)
            sent += 1
    finally:
        for plugin in trackers:
            close = getattr(plugin, "close", None)
            if callable(close):
                close()
        client.metadata.dispose()
    if sent:
        report.steps //= sent
        report.metrics //= sent
        report.params //= sent
        report.artifacts //= sent
    return report


def _specs(config: Mapping[str, Any], tracker: str | None, uri: str | None) -> list[dict[str, Any]]:
    configured = tracker_specs(config.get("tracker"))
    if tracker is not None:
        same = [s for s in configured if s["name"] == tracker]
        specs = [same[0] if same else {"name": tracker}]
    else:
        specs = [s for s in configured if s["name"] != BUILTIN_TRACKER]
    if uri is not None:
        for spec in specs:
            if spec["name"] != "mlflow":
                raise ConfigError(
                    f"--tracking-uri is an MLflow option; tracker {spec['name']!r} has none. "
                    "Hint: add --tracker mlflow."
                )
            spec["tracking_uri"] = uri
    return specs


def _clear_previous(plugin: Any, run: RunView, replace: bool) -> int | None:
    """Delete a partial (or, with ``replace``, any) copy of the run in the tracker; return
    how many runs went, or None when the tracker already holds the whole run."""
    find = getattr(plugin, "synced_runs", None)
    if find is None:
        return 0
    if "steps" in inspect.signature(find).parameters:
        previous: list[str] = find(run.id, run.workflow, [s.record.name for s in run.steps])
    else:
        previous = find(run.id, run.workflow)
    if not previous:
        return 0
    complete = getattr(plugin, "synced_complete", None)
    if not replace and complete is not None and complete(run.id, run.workflow, previous):
        return None
    plugin.delete_runs(previous)
    return len(previous)


def _graph(run: RunView) -> Graph:
    """The run's graph, rebuilt from its step runs (edges matched by artifact key)."""
    nodes, edges = [], []
    made_by = {
        ref.key: (s.record.name, output) for s in run.steps for output, ref in s.outputs.items()
    }
    for step in run.steps:
        r = step.record
        params = tuple((k, v if isinstance(v, str) else json.dumps(v)) for k, v in r.params.items())
        nodes.append(Node(r.name, r.step, r.position, tuple(r.outputs), params))
        for argument, ref in r.inputs.items():
            if ref.key in made_by:
                edges.append(Edge(*made_by[ref.key], r.name, argument))
    return Graph(run.workflow, tuple(nodes), tuple(edges))


def _logged_params(client: Client, run_id: str) -> dict[int | None, dict[str, Any]]:
    """Params logged with ``qf.log_param`` by step run id (None: run level)."""
    found: dict[int | None, dict[str, Any]] = {}
    for step_run_id, key, value in client.metadata.param_rows(run_id):
        found.setdefault(step_run_id, {})[key] = value
    return found


def replay_cached_step(tracker: Any, client: Client, run_id: str, step: str) -> None:
    """Send a cached step's copied records (params, metrics, files) to ``tracker``'s hooks.

    A step served from the cache does not run, so no ``on_*`` hook fires for it; the store
    copied what its source logged into this run, and this reads that back.
    """
    record = client.metadata.get_step_run(run_id, step)
    params = _logged_params(client, run_id).get(record.id, {})
    if params:
        tracker.on_params(run_id=run_id, step=step, params=params)
    rows = [
        (m.key, m.value, m.step, m.timestamp)
        for m in client.metadata.metrics(run_id, step_run_id=record.id)
    ]
    for start in range(0, len(rows), _BATCH):
        tracker.on_metrics(run_id=run_id, step=step, rows=rows[start : start + _BATCH])
    for artifact in client.metadata.run_artifacts(run_id):
        path = client.artifacts.local_path(artifact.ref.key)
        if artifact.step_run_id == record.id and path is not None:
            tracker.on_artifact(run_id=run_id, step=step, name=artifact.name, path=str(path))


def _replay(plugin: object, client: Client, run: RunView, report: SyncReport) -> None:
    from qflow.plugins.manager import create_plugin_manager

    hook = create_plugin_manager([plugin], entry_points=False).hook
    record = run.record
    steps = sorted(run.steps, key=lambda s: s.record.position)
    times: dict[str | None, tuple[float | None, float | None]] = {
        None: (record.created_at, record.ended_at)
    }
    times.update({s.record.name: (s.record.started_at, s.record.ended_at) for s in steps})
    if hasattr(plugin, "times"):
        plugin.times = times
    if hasattr(plugin, "replaying"):
        plugin.replaying = True
    graph = _graph(run)
    metrics: dict[int | None, list[Metric]] = {}
    for metric in client.metadata.metrics(record.id):
        metrics.setdefault(metric.step_run_id, []).append(metric)
    params = _logged_params(client, record.id)
    files: dict[int | None, list[tuple[str, ArtifactRef]]] = {}
    for artifact in run.artifacts:
        files.setdefault(artifact.step_run_id, []).append((artifact.name, artifact.ref))
    report.params += _leaves({k: v for k, v in record.config.items() if k != "tracker"})
    report.params += sum(len(node.params) for node in graph.nodes)
    hook.before_run(
        run_id=record.id,
        workflow=record.workflow,
        graph=graph,
        config=record.config,
        meta=record.meta,
        artifacts=client.artifacts,
    )
    with tempfile.TemporaryDirectory(prefix="qflow-sync-") as tmp:
        for step in steps:
            r = step.record
            node = graph.by_name[r.name]
            if r.status != StepStatus.SKIPPED:
                hook.before_step(run_id=record.id, node=node)
            _records(
                hook, client, record.id, r.name, r.id, metrics, params, files, Path(tmp), report
            )
            hook.after_step(
                run_id=record.id,
                node=node,
                status=r.status,
                duration=r.duration or 0.0,
                error=r.error if r.status == StepStatus.FAILED else None,
                outputs=r.outputs,
                outcome=r.outcome(),
            )
            report.steps += 1
        _records(hook, client, record.id, None, None, metrics, params, files, Path(tmp), report)
    if record.tags:
        hook.on_tags(run_id=record.id, tags=record.tags)
    ended = (RunStatus.SUCCEEDED, RunStatus.FAILED)
    status = record.status if record.status in ended else RunStatus.FAILED
    hook.after_run(run_id=record.id, status=status, error=record.error)


def _records(
    hook: Any,
    client: Client,
    run_id: str,
    step: str | None,
    step_run_id: int | None,
    metrics: Mapping[int | None, Sequence[Metric]],
    params: Mapping[int | None, Mapping[str, Any]],
    files: Mapping[int | None, Sequence[tuple[str, ArtifactRef]]],
    tmp: Path,
    report: SyncReport,
) -> None:
    """Send one step's (or the run's) params, metrics and files."""
    if params.get(step_run_id):
        hook.on_params(run_id=run_id, step=step, params=params[step_run_id])
        report.params += len(params[step_run_id])
    rows = [(m.key, m.value, m.step, m.timestamp) for m in metrics.get(step_run_id, ())]
    for start in range(0, len(rows), _BATCH):
        hook.on_metrics(run_id=run_id, step=step, rows=rows[start : start + _BATCH])
    report.metrics += len(rows)
    for name, ref in files.get(step_run_id, ()):
        path = client.artifacts.local_path(ref.key)
        if path is None:  # a remote artifact store: fetch the bytes first
            path = tmp / ref.key
            value = client.artifacts.get(ref)
            path.write_bytes(value if isinstance(value, bytes) else Path(str(value)).read_bytes())
        hook.on_artifact(run_id=run_id, step=step, name=name, path=str(path))
        report.artifacts += 1


def _named(specs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The specs that make a tracker plugin (all but the built-in filetracker)."""
    return [s for s in specs if s["name"] != BUILTIN_TRACKER]


def _leaves(data: Mapping[str, Any]) -> int:
    """How many params a config becomes once flattened to dotted keys (as trackers log it)."""
    return sum(_leaves(v) if isinstance(v, Mapping) else 1 for v in data.values())
