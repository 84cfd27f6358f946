"""The one worker entry point of every remote path: Ray tasks, ``qflow run-step`` and the pods
of an exported Argo manifest all call ``run_step(spec) -> result``.

A task spec is JSON: the workflow (``module:function`` or ``/abs/file.py:function``), the run's
resolved config, the workflow parameters the run takes from an earlier run's outputs (so the
worker traces the same graph as the driver), the node name (and the item index for one call of
a mapped step), its input artifact refs by handle key (small ones with their bytes inline,
base64), the run id, the step run id, the artifact store URL and the driver's working folder
(where the step runs when the worker's machine has it). The worker re-imports and re-traces
the workflow (once per process, config and bound parameters), loads inputs from the artifact
store, runs the step with its retry policy and timeout, writes outputs to the store and returns
only metadata: output refs, logged metrics, params, tags and files, stdout, stderr, status and
attempts. It never touches the metadata store; the coordinator replays the result into it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.dsl.tracing import StepOutput
from qflow.errors import QFlowError
from qflow.graph.model import NodeKind
from qflow.runtime import mapping
from qflow.runtime.context import MetricRow, RunSinks
from qflow.runtime.reads import FileAccess
from qflow.runtime.task import StepTask, TaskResult, handle_key
from qflow.runtime.worker import execute
from qflow.store.artifacts import ArtifactRef, ArtifactStore
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from qflow.dsl.tracing import TracedWorkflow

SPEC_VERSION = 1

MetricsSink = Callable[[list[MetricRow]], None]
OutputSink = Callable[[int, str, str], None]


@dataclass(frozen=True)
class WorkflowSpec:
    """How a worker on another machine finds the run's workflow again."""

    ref: str
    config: Mapping[str, Any]
    project_dir: str = ""
    bound_parameters: tuple[str, ...] = ()
    """Workflow parameters no config value gives, bound to an earlier run's outputs
    (``qflow run data_science --from RUN``): the worker traces them as the driver did, as
    inputs of their own, so the steps that read them find their input refs in the task."""
    working_dir: str = field(default_factory=os.getcwd)
    """The driver's working folder (where ``qflow run`` started), which local and parallel
    steps run in: a worker that has it runs its steps there too."""

    def check_importable(self, executor: str) -> None:
        if ":" not in self.ref:
            raise QFlowError(
                f"Workflow {self.ref!r} cannot run on the {executor} executor: it is defined "
                "inside a function, and remote workers import workflows by module:function.\n"
                "Hint: define the workflow at module level in an importable module or file."
            )


# -- refs and records as JSON --------------------------------------------------------------


_REF_FIELDS = tuple(f.name for f in dataclasses.fields(ArtifactRef) if f.name != "inline")


def ref_to_json(ref: ArtifactRef) -> dict[str, Any]:
    """Every field of the ref (so it comes back equal), small values' bytes as base64."""
    inline = base64.b64encode(ref.inline).decode() if ref.inline is not None else None
    return {**{name: getattr(ref, name) for name in _REF_FIELDS}, "inline": inline}


def ref_from_json(data: Mapping[str, Any]) -> ArtifactRef:
    inline = data.get("inline")
    fields = {name: data[name] for name in _REF_FIELDS if name in data}
    return ArtifactRef(**fields, inline=base64.b64decode(inline) if inline is not None else None)


def task_spec(workflow: WorkflowSpec, task: StepTask, artifacts_url: str) -> dict[str, Any]:
    """The JSON spec of ``task`` for a worker anywhere."""
    return {
        "version": SPEC_VERSION,
        "workflow_ref": workflow.ref,
        "config": dict(workflow.config),
        "project_dir": workflow.project_dir,
        "bound_parameters": list(workflow.bound_parameters),
        "working_dir": workflow.working_dir,
        "node": task.node.name,
        "item": task.item,
        "inputs": {key: ref_to_json(ref) for key, ref in task.inputs.items()},
        "run_id": task.run_id,
        "step_run_id": task.step_run_id,
        "artifacts_url": artifacts_url,
    }


@dataclass
class Records:
    """What a step logged in a worker, to be replayed into the coordinator's sinks."""

    metrics: list[MetricRow] = field(default_factory=list)
    params: list[tuple[str, int | None, dict[str, Any]]] = field(default_factory=list)
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    artifacts: list[tuple[str, int | None, str, ArtifactRef]] = field(default_factory=list)

    def sinks(
        self,
        artifacts: ArtifactStore,
        live_metrics: MetricsSink | None = None,
        live_output: OutputSink | None = None,
    ) -> RunSinks:
        """Sinks that keep everything for the result, except metrics when ``live_metrics``
        sends them to the coordinator as they are flushed (the Ray executor's channel). If the
        channel fails, the remaining metrics travel with the result instead. ``live_output``
        takes the step's output so far (the full output travels with the result)."""
        live = [live_metrics]

        def metrics(rows: list[MetricRow]) -> None:
            send = live[0]
            if send is not None:
                try:
                    send(rows)
                    return
                except Exception:  # the channel is gone: nothing may be lost
                    live[0] = None
            self.metrics.extend(rows)

        def artifact(run_id: str, step_run_id: int | None, name: str, source: Any) -> None:
            ref = (
                artifacts.put_bytes(source)
                if isinstance(source, bytes)
                else artifacts.put_path(source)
            )
            self.artifacts.append((run_id, step_run_id, name, ref))

        return RunSinks(
            metrics,
            lambda run, sr, values: self.params.append((run, sr, dict(values))),
            lambda run, values: self.tags.append((run, dict(values))),
            artifact,
            live_output,
        )

    def replay(self, sinks: RunSinks) -> None:
        """Send the records to the coordinator's sinks (which write the metadata store)."""
        if self.metrics:
            sinks.metrics(self.metrics)
        for run, step_run_id, values in self.params:
            sinks.params(run, step_run_id, values)
        for run, tags in self.tags:
            sinks.tags(run, tags)
        for run, step_run_id, name, ref in self.artifacts:
            sinks.artifact(run, step_run_id, name, ref)

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": [list(row) for row in self.metrics],
            "params": [list(p) for p in self.params],
            "tags": [list(t) for t in self.tags],
            "artifacts": [[r, s, n, ref_to_json(ref)] for r, s, n, ref in self.artifacts],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Records:
        return cls(
            [tuple(row) for row in data.get("metrics", [])],
            [(r, s, dict(v)) for r, s, v in data.get("params", [])],
            [(r, dict(v)) for r, v in data.get("tags", [])],
            [(r, s, n, ref_from_json(ref)) for r, s, n, ref in data.get("artifacts", [])],
        )


def result_to_json(result: TaskResult, records: Records, node: str) -> dict[str, Any]:
    return {
        "version": SPEC_VERSION,
        "node": node,
        "step_run_id": result.step_run_id,
        "status": result.status,
        "outputs": {name: ref_to_json(ref) for name, ref in result.outputs.items()},
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "attempts": result.attempts,
        "error": result.error,
        "traceback": result.traceback,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "records": records.to_json(),
        "files": [dataclasses.asdict(f) for f in result.files],
    }


def result_from_json(data: Mapping[str, Any]) -> tuple[TaskResult, Records]:
    result = TaskResult(
        int(data["step_run_id"]),
        StepStatus(data["status"]),
        {name: ref_from_json(ref) for name, ref in data["outputs"].items()},
        float(data["started_at"]),
        float(data["ended_at"]),
        int(data["attempts"]),
        error=data.get("error"),
        traceback=data.get("traceback"),
        stdout=data.get("stdout") or "",
        stderr=data.get("stderr") or "",
        files=[FileAccess(**f) for f in data.get("files", [])],
    )
    return result, Records.from_json(data.get("records", {}))


# -- the worker side ------------------------------------------------------------------------

_TRACED: dict[str, TracedWorkflow] = {}
_STORES: dict[str, ArtifactStore] = {}


def traced_workflow(
    ref: str, config: Mapping[str, Any], project_dir: str = "", bound: Sequence[str] = ()
) -> TracedWorkflow:
    """The workflow ``ref`` traced with ``config`` and the parameters ``bound`` to an earlier
    run's outputs, as the driver traced it; traced once per process."""
    key = json.dumps([ref, config, project_dir, list(bound)], sort_keys=True, default=str)
    traced = _TRACED.get(key)
    if traced is None:
        from qflow.config.project import find_project
        from qflow.runtime import reads

        reads.install()
        from qflow.runtime.discovery import load_workflow

        folder = Path(project_dir) if project_dir and Path(project_dir).is_dir() else None
        traced = load_workflow(ref, find_project(folder)).trace(dict(config), inputs=bound)
        _TRACED[key] = traced
    return traced


def _store(url: str) -> ArtifactStore:
    store = _STORES.get(url)
    if store is None:
        store = _STORES[url] = ArtifactStore(url)
    return store


def build_task(spec: Mapping[str, Any], traced: TracedWorkflow) -> StepTask:
    """The StepTask a spec describes, with the step found in the re-traced workflow."""
    name = str(spec["node"])
    if name not in traced.graph.by_name:
        raise QFlowError(
            f"Step {name!r} is not in workflow {spec['workflow_ref']!r} traced with the run's "
            "config. Hint: the code on the worker differs from the driver's; deploy the same "
            "version on every node."
        )
    node = traced.graph.by_name[name]
    call = traced.calls[name]
    arguments = dict(call.arguments)
    item = spec.get("item")
    if item is not None and node.map_over is not None:
        arguments = mapping.item_arguments(node, arguments, int(item))
    inputs = {key: ref_from_json(ref) for key, ref in spec.get("inputs", {}).items()}
    return StepTask(
        str(spec["run_id"]),
        int(spec["step_run_id"]),
        node,
        call.step,
        arguments,
        inputs,
        item=None if item is None else int(item),
        project_root=str(spec.get("project_dir") or ""),
    )


def run_step(
    spec: Mapping[str, Any],
    live_metrics: MetricsSink | None = None,
    live_output: OutputSink | None = None,
) -> dict[str, Any]:
    """Run the step call ``spec`` describes and return its JSON result (never raises for a
    failure of user code; the result's ``status`` says ``failed``). With ``live_metrics``,
    metrics go there as the step logs them instead of into the result; ``live_output`` gets
    its output so far while it runs."""
    if spec.get("version", SPEC_VERSION) != SPEC_VERSION:
        raise QFlowError(
            f"Task spec version {spec.get('version')!r} is not supported by this QFlow "
            f"(expects {SPEC_VERSION}). Hint: use the same QFlow version on driver and workers."
        )
    traced = traced_workflow(
        str(spec["workflow_ref"]),
        spec.get("config") or {},
        str(spec.get("project_dir") or ""),
        [str(name) for name in spec.get("bound_parameters") or ()],
    )
    artifacts = _store(str(spec["artifacts_url"]))
    node = traced.graph.by_name.get(str(spec["node"]))
    inputs = dict(spec.get("inputs") or {})
    for upstream in spec.get("upstream") or []:
        for output, ref in upstream["outputs"].items():
            inputs[handle_key(upstream["node"], output)] = ref
    spec = {**spec, "inputs": inputs}
    with _in_folder(str(spec.get("working_dir") or "")):
        if node is not None and node.kind is NodeKind.MAP and spec.get("item") is None:
            return _run_all_items(spec, traced, artifacts)
        records = Records()
        task = build_task(spec, traced)
        result = execute(task, artifacts, records.sinks(artifacts, live_metrics, live_output))
        return result_to_json(result, records, task.node.name)


def _in_folder(folder: str) -> contextlib.AbstractContextManager[Any]:
    """In the driver's working folder while the step runs, when this machine has it (one
    machine, or a shared file system), as local and parallel steps run: relative paths and
    ``qf.Client()`` inside the step find the same files and project; elsewhere the process's
    folder is left as it is."""
    if folder and Path(folder).is_dir():
        return contextlib.chdir(folder)
    return contextlib.nullcontext()


def _run_all_items(
    spec: Mapping[str, Any], traced: TracedWorkflow, artifacts: ArtifactStore
) -> dict[str, Any]:
    """A whole mapped step in this process, item after item (exported manifests), with the
    scheduler's mapping rules (``runtime.mapping``): items named and stored alike, ``catch``
    turning a failed item into ``qf.Failed``, results collected in item order."""
    name = str(spec["node"])
    node = traced.graph.by_name[name]
    call = traced.calls[name]
    inputs = {key: ref_from_json(ref) for key, ref in spec["inputs"].items()}

    def lookup(handle: StepOutput) -> Any:
        return artifacts.get(inputs[handle_key(handle.node, handle.output)])

    items = mapping.expand(node, call.arguments, lookup, artifacts)
    records = Records()
    collected: list[dict[str, ArtifactRef]] = []
    started, attempts, log = time.time(), 0, []
    status, error = StepStatus.SUCCEEDED, None
    for index, (key, ref) in enumerate(items.items()):
        item_spec = {**spec, "item": index, "inputs": {**spec["inputs"], key: ref_to_json(ref)}}
        result = execute(build_task(item_spec, traced), artifacts, records.sinks(artifacts))
        attempts += result.attempts
        log.append(result.stdout)
        if result.status == StepStatus.SUCCEEDED:
            collected.append(result.outputs)
        elif call.step.options.catch:
            collected.append(mapping.caught(node, result.error or "failed", artifacts))
        else:
            status, error = StepStatus.FAILED, f"item {index} failed: {result.error}"
            break
    outputs = mapping.collect(node, collected, artifacts) if status == StepStatus.SUCCEEDED else {}
    summary = TaskResult(
        int(spec["step_run_id"]),
        status,
        outputs,
        started,
        time.time(),
        attempts,
        error=error,
        stdout="".join(log),
    )
    return result_to_json(summary, records, name)


def load_spec(text: str) -> dict[str, Any]:
    """A task spec from JSON text, with a clear error for anything else."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QFlowError(f"Task spec is not valid JSON: {exc}.") from None
    if not isinstance(spec, dict):
        raise QFlowError(f"Task spec must be a JSON object, got {type(spec).__name__}.")
    missing = [k for k in ("workflow_ref", "node", "run_id", "artifacts_url") if k not in spec]
    if missing:
        raise QFlowError(
            f"Task spec lacks {', '.join(map(repr, missing))}. Hint: qflow export argo writes "
            "complete specs; see qflow.runtime.remote.task_spec."
        )
    spec.setdefault("step_run_id", 0)
    return spec
