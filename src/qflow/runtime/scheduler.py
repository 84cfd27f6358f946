"""Walk a traced graph: check the cache, submit ready steps, record results, notify hooks.

The scheduler is the coordinator: it alone writes the metadata store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.dsl.tracing import walk_handles
from qflow.graph.fingerprint import cache_key, code_fingerprint
from qflow.runtime.context import MetricRow, RunSinks
from qflow.runtime.task import StepTask, TaskResult, handle_key

if TYPE_CHECKING:
    import pluggy

    from qflow.dsl.step import Step
    from qflow.dsl.tracing import TracedWorkflow
    from qflow.runtime.executor import Executor
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.metadata.store import MetadataStore

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    status: str
    failed: dict[str, str] = field(default_factory=dict)


class Scheduler:
    """Runs one traced workflow as one run."""

    def __init__(
        self,
        traced: TracedWorkflow,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        executor: Executor,
        hooks: pluggy.PluginManager,
        *,
        use_cache: bool = True,
        rerun: Collection[str] = (),
    ) -> None:
        self.traced = traced
        self.graph = traced.graph
        self.metadata = metadata
        self.artifacts = artifacts
        self.executor = executor
        self.hooks = hooks
        self.use_cache = use_cache
        self.rerun = set(rerun)
        self.refs: dict[str, ArtifactRef] = {}
        self.values: dict[str, Any] = {}
        self.step_run_ids: dict[str, int] = {}
        self._fingerprints: dict[int, str] = {}
        self._serializer_versions: Mapping[str, str] | None = None
        self._consumers = {name: len(users) for name, users in self.graph.downstream.items()}
        self._warned: set[str] = set()

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a hook; a failing plugin is reported once and never fails the run."""
        try:
            getattr(self.hooks.hook, hook)(**kwargs)
        except Exception as exc:
            if hook not in self._warned:
                self._warned.add(hook)
                logger.warning(
                    "plugin hook %s failed (%s: %s); the run goes on", hook, type(exc).__name__, exc
                )

    def sinks(self, run_id: str) -> RunSinks:
        names = {v: k for k, v in self.step_run_ids.items()}

        def metrics(rows: list[MetricRow]) -> None:
            self.metadata.log_metrics(rows)
            if rows:
                self.notify(
                    "on_metrics",
                    run_id=run_id,
                    step=names.get(rows[0][1] or -1),
                    rows=[(r[2], r[3], r[4], r[5]) for r in rows],
                )

        def params(run: str, step_run_id: int | None, values: Mapping[str, Any]) -> None:
            self.metadata.log_params(run, dict(values), step_run_id=step_run_id)
            self.notify("on_params", run_id=run, step=names.get(step_run_id or -1), params=values)

        def tags(run: str, values: Mapping[str, str]) -> None:
            self.metadata.set_tags(run, dict(values))
            self.notify("on_tags", run_id=run, tags=values)

        def artifact(run: str, step_run_id: int | None, name: str, source: Any) -> None:
            ref = (
                self.artifacts.put_bytes(source)
                if isinstance(source, bytes)
                else self.artifacts.put_path(source)
            )
            self.metadata.log_run_artifact(run, name, ref, step_run_id=step_run_id)
            path = self.artifacts.local_path(ref.key)
            self.notify(
                "on_artifact",
                run_id=run,
                step=names.get(step_run_id or -1),
                name=name,
                path=str(path or ""),
            )

        return RunSinks(metrics, params, tags, artifact)

    def fingerprint(self, step: Step[..., Any]) -> str:
        key = id(step.fn) if not step.fixed_params else hash(step.source)
        if key not in self._fingerprints:
            if self._serializer_versions is None:
                from qflow.store.serializers import serializer_versions

                self._serializer_versions = serializer_versions()
            self._fingerprints[key] = code_fingerprint(
                step.source, step.options.version, self._serializer_versions
            )
        return self._fingerprints[key]

    def run(self, run_id: str) -> RunOutcome:
        graph = self.graph
        for node in graph.nodes:
            self.step_run_ids[node.name] = self.metadata.create_step_run(
                run_id=run_id,
                name=node.name,
                step=node.step,
                position=node.position,
                params=dict(node.params),
            )
        self.executor.start(self.artifacts, self.sinks(run_id))
        waiting = {name: set(sources) for name, sources in graph.upstream.items()}
        order = {name: index for index, name in enumerate(graph.topological_order())}
        ready = sorted((n for n, deps in waiting.items() if not deps), key=order.__getitem__)
        running: dict[Future[TaskResult], str] = {}
        outcome = RunOutcome("succeeded")
        try:
            while ready or running:
                while ready and self.executor.can_submit():
                    name = ready.pop(0)
                    future = self._start(run_id, name)
                    if future is None:
                        ready.extend(self._release(name, waiting))
                        ready.sort(key=order.__getitem__)
                    else:
                        running[future] = name
                if not running:
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: order[running[f]]):
                    name = running.pop(future)
                    result = future.result()
                    if self._finish(run_id, name, result):
                        ready.extend(self._release(name, waiting))
                        ready.sort(key=order.__getitem__)
                    else:
                        outcome.failed[name] = result.error or "failed"
                        self._skip_downstream(run_id, name, waiting)
        finally:
            self.executor.shutdown()
        if outcome.failed:
            outcome.status = "failed"
        return outcome

    def _inputs(self, name: str) -> dict[str, ArtifactRef]:
        call = self.traced.calls[name]
        refs: dict[str, ArtifactRef] = {}
        for arg, value in call.arguments.items():
            for _, handle in walk_handles(value, arg):
                key = handle_key(handle.node, handle.output)
                refs[key] = self.refs[key]
        return refs

    def _start(self, run_id: str, name: str) -> Future[TaskResult] | None:
        """Submit the step, or complete it from the cache and return None."""
        node = self.graph.by_name[name]
        call = self.traced.calls[name]
        inputs = self._inputs(name)
        key = cache_key(
            self.fingerprint(call.step),
            {k: ref.key for k, ref in inputs.items()},
            dict(node.params),
        )
        step_run_id = self.step_run_ids[name]
        self.notify("before_step", run_id=run_id, node=node)
        if (
            self.use_cache
            and call.step.options.cache
            and node.step not in self.rerun
            and name not in self.rerun
        ):
            hit = self.metadata.find_cached(key)
            if hit is not None and all(
                r.inline is not None or self.artifacts.exists(r.key) for r in hit.outputs.values()
            ):
                now = time.time()
                self.metadata.finish_step_run(
                    step_run_id,
                    status="cached",
                    outputs=hit.outputs,
                    inputs=inputs,
                    cached_from=hit.id,
                    attempts=0,
                    cache_key=key,
                    started_at=now,
                    ended_at=now,
                )
                self.metadata.copy_step_records(hit.id, run_id, step_run_id)
                for output, ref in hit.outputs.items():
                    self.refs[handle_key(name, output)] = ref
                self.notify(
                    "after_step",
                    run_id=run_id,
                    node=node,
                    status="cached",
                    duration=0.0,
                    error=None,
                    outputs=hit.outputs,
                )
                return None
        self.metadata.start_step_run(step_run_id, cache_key=key)
        values = (
            {k: self.values[k] for k in inputs if k in self.values}
            if self.executor.shares_memory
            else {}
        )
        task = StepTask(run_id, step_run_id, node, call.step, call.arguments, inputs, values)
        return self.executor.submit(task)

    def _finish(self, run_id: str, name: str, result: TaskResult) -> bool:
        node = self.graph.by_name[name]
        self.metadata.finish_step_run(
            result.step_run_id,
            status=result.status,
            outputs=result.outputs,
            inputs=self._inputs(name),
            error=result.error,
            traceback=result.traceback,
            stdout=result.stdout,
            stderr=result.stderr,
            attempts=result.attempts,
            started_at=result.started_at,
            ended_at=result.ended_at,
        )
        for output, ref in result.outputs.items():
            self.refs[handle_key(name, output)] = ref
        self.values.update(result.values)
        self._forget_inputs(name)
        self.notify(
            "after_step",
            run_id=run_id,
            node=node,
            status=result.status,
            duration=result.ended_at - result.started_at,
            error=result.error,
            outputs=result.outputs,
        )
        return result.status == "succeeded"

    def _forget_inputs(self, name: str) -> None:
        """Drop in-memory values nobody else will read; the store keeps them."""
        for source in self.graph.upstream[name]:
            self._consumers[source] -= 1
            if self._consumers[source] == 0:
                for output in self.graph.by_name[source].outputs:
                    self.values.pop(handle_key(source, output), None)

    def _release(self, name: str, waiting: dict[str, set[str]]) -> list[str]:
        freed = []
        for target in self.graph.downstream[name]:
            waiting[target].discard(name)
            if not waiting[target]:
                freed.append(target)
        return freed

    def _skip_downstream(self, run_id: str, name: str, waiting: dict[str, set[str]]) -> None:
        for target in sorted(
            self.graph.descendants(name), key=lambda n: self.graph.by_name[n].position
        ):
            if waiting.pop(target, None) is not None:
                self.metadata.finish_step_run(
                    self.step_run_ids[target],
                    status="skipped",
                    attempts=0,
                    error=f"skipped because {name} failed",
                )
                self.notify(
                    "after_step",
                    run_id=run_id,
                    node=self.graph.by_name[target],
                    status="skipped",
                    duration=0.0,
                    error=None,
                    outputs={},
                )
