"""Walk a traced graph: check the cache, submit ready steps, record results, notify hooks.

The scheduler is the coordinator: it alone writes the metadata store. Mapped steps are
expanded here, once the list they map over exists, into one task per item.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.dsl.tracing import StepOutput, substitute, walk_handles
from qflow.dsl.values import Failed
from qflow.errors import QFlowError, QFlowInternalError
from qflow.graph.model import NodeKind
from qflow.runtime.cachekey import CacheDecision, StepIdentity
from qflow.runtime.context import MetricRow, RunSinks
from qflow.runtime.task import StepTask, TaskResult, forget_steps, handle_key, register_steps
from qflow.runtime.worker import INLINE_MAX

if TYPE_CHECKING:
    import pluggy

    from qflow.dsl.tracing import TracedWorkflow
    from qflow.graph.model import Node
    from qflow.runtime.executor import Executor
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.metadata.records import StepRun
    from qflow.store.metadata.store import MetadataStore

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """How the run ended and which step calls failed (with their error)."""

    status: str
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _MapState:
    """Progress of a mapped step: its item tasks and their outputs, in item order."""

    pending: deque[int]
    outputs: list[dict[str, ArtifactRef] | None]
    running: int = 0
    failed: str | None = None


Verdict = tuple[str, str | None]
"""How a node ended: ("ok" | "failed" | "skipped", error or reason)."""

OK: Verdict = ("ok", None)


@dataclass(frozen=True)
class _Work:
    """A submitted unit: a node, or one item of a mapped node."""

    node: str
    item: int | None = None


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
        reuse: Mapping[str, StepRun] | None = None,
        project_root: str = "",
    ) -> None:
        self.traced = traced
        self.graph = traced.graph
        self.metadata = metadata
        self.artifacts = artifacts
        self.executor = executor
        self.hooks = hooks
        self.project_root = project_root
        self.identity = StepIdentity(
            metadata,
            artifacts,
            traced.graph.workflow,
            use_cache=use_cache,
            rerun=rerun,
            reuse=reuse,
        )
        self.refs: dict[str, ArtifactRef] = {}
        self.values: dict[str, Any] = {}
        self.step_run_ids: dict[str, int] = {}
        self.maps: dict[str, _MapState] = {}
        self._consumers = {name: len(users) for name, users in self.graph.downstream.items()}
        self._warned: set[str] = set()
        self._submitted: dict[Future[TaskResult], _Work] = {}
        self._item_runs: dict[tuple[str, int], int] = {}

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
        def step_name(step_run_id: int | None) -> str | None:
            for name, known in self.step_run_ids.items():
                if known == step_run_id:
                    return name
            for (name, index), known in self._item_runs.items():
                if known == step_run_id:
                    return f"{name}[{index}]"
            return None

        def metrics(rows: list[MetricRow]) -> None:
            self.metadata.log_metrics(rows)
            if rows and self.hooks.hook.on_metrics.get_hookimpls():
                self.notify(
                    "on_metrics",
                    run_id=run_id,
                    step=step_name(rows[0][1]),
                    rows=[(r[2], r[3], r[4], r[5]) for r in rows],
                )

        def params(run: str, step_run_id: int | None, values: Mapping[str, Any]) -> None:
            self.metadata.log_params(run, dict(values), step_run_id=step_run_id)
            self.notify("on_params", run_id=run, step=step_name(step_run_id), params=values)

        def tags(run: str, values: Mapping[str, str]) -> None:
            self.metadata.set_tags(run, dict(values))
            self.notify("on_tags", run_id=run, tags=values)

        def artifact(run: str, step_run_id: int | None, name: str, source: Any) -> None:
            if isinstance(source, bytes):
                ref = self.artifacts.put_bytes(source)
            elif isinstance(source, str | bytes) or hasattr(source, "__fspath__"):
                ref = self.artifacts.put_path(source)
            else:
                ref = source
            self.metadata.log_run_artifact(run, name, ref, step_run_id=step_run_id)
            path = self.artifacts.local_path(ref.key)
            self.notify(
                "on_artifact",
                run_id=run,
                step=step_name(step_run_id),
                name=name,
                path=str(path or ""),
            )

        return RunSinks(metrics, params, tags, artifact)

    # -- the loop ------------------------------------------------------------------------

    def run(self, run_id: str) -> RunOutcome:
        graph = self.graph
        self.identity.run_id = run_id
        ids = self.metadata.create_step_runs(
            run_id,
            [
                {
                    "name": node.name,
                    "step": node.step,
                    "position": node.position,
                    "params": dict(node.params),
                    "source": self.traced.calls[node.name].step.source,
                }
                for node in graph.nodes
            ],
        )
        self.step_run_ids = dict(zip((n.name for n in graph.nodes), ids, strict=True))
        live = register_steps(call.step for call in self.traced.calls.values())
        self.executor.start(self.artifacts, self.sinks(run_id))
        waiting = {name: set(sources) for name, sources in graph.upstream.items()}
        order = {name: index for index, name in enumerate(graph.topological_order())}
        ready = deque(sorted((n for n, deps in waiting.items() if not deps), key=order.__getitem__))
        outcome = RunOutcome("succeeded")

        def finished(name: str, verdict: Verdict) -> None:
            state, error = verdict
            if state == "ok":
                released = self._release(name, waiting)
                ready.extend(sorted(released, key=order.__getitem__))
                return
            if state == "failed":
                outcome.failed[name] = error or "failed"
            verb = "failed" if state == "failed" else "was skipped"
            self._skip_downstream(run_id, name, waiting, f"skipped because {name} {verb}")

        try:
            while ready or self._submitted or self.maps:
                while ready and self.executor.can_submit():
                    name = ready.popleft()
                    verdict = self._start(run_id, name)
                    if verdict is not None:
                        finished(name, verdict)
                for name, verdict in self._submit_map_items(run_id):
                    finished(name, verdict)
                if not self._submitted:
                    continue
                done, _ = wait(list(self._submitted), return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: order[self._submitted[f].node]):
                    work = self._submitted.pop(future)
                    verdict = self._complete(run_id, work, future.result())
                    if verdict is not None:
                        finished(work.node, verdict)
        finally:
            self.executor.shutdown()
            forget_steps(live)
        if outcome.failed:
            outcome.status = "failed"
        return outcome

    # -- starting a node -----------------------------------------------------------------

    def _inputs(self, arguments: Mapping[str, Any]) -> dict[str, ArtifactRef]:
        """Input artifacts by handle (``0_load.return``): what a worker loads."""
        refs: dict[str, ArtifactRef] = {}
        for arg, value in arguments.items():
            for _, handle in walk_handles(value, arg):
                key = handle_key(handle.node, handle.output)
                refs[key] = self.refs[key]
        return refs

    def _arg_inputs(self, arguments: Mapping[str, Any]) -> dict[str, ArtifactRef]:
        """Input artifacts by argument path (``X``, ``scores[0]``): what is recorded and
        keyed, independent of the upstream steps' numbering."""
        return {
            path: self.refs[handle_key(handle.node, handle.output)]
            for arg, value in arguments.items()
            for path, handle in walk_handles(value, arg)
        }

    def _value(self, handle: StepOutput) -> Any:
        key = handle_key(handle.node, handle.output)
        if key in self.values:
            return self.values[key]
        return self.artifacts.get(self.refs[key])

    def _condition_blocks(self, name: str) -> str | None:
        """The reason to skip ``name`` when one of its ``qf.when`` conditions is false."""
        for edge in self.graph.conditions_of(name):
            value = self._value(StepOutput(edge.source, edge.output))
            if not value:
                return f"condition {edge.source}.{edge.output} was {value!r}"
        return None

    def _start(self, run_id: str, name: str) -> Verdict | None:
        """Begin a node. Returns (succeeded, error) when it ended at once (cached, skipped,
        failed before running, or an empty map), None when work was submitted."""
        node = self.graph.by_name[name]
        call = self.traced.calls[name]
        step_run_id = self.step_run_ids[name]
        self.notify("before_step", run_id=run_id, node=node)
        blocked = self._condition_blocks(name)
        if blocked is not None:
            self._record_skip(run_id, node, blocked)
            return ("skipped", blocked)
        if node.kind is NodeKind.MAP:
            return self._start_map(run_id, node)
        try:
            decision = self.identity.decide(
                node, call.step, call.arguments, self._arg_inputs(call.arguments)
            )
        except Exception as exc:
            return self._fail_before_running(run_id, node, step_run_id, exc)
        if decision.hit is not None:
            self._record_hit(run_id, node, step_run_id, decision, call.arguments)
            return OK
        self._submit(run_id, node, step_run_id, call.arguments, decision)
        return None

    def _submit(
        self,
        run_id: str,
        node: Node,
        step_run_id: int,
        arguments: dict[str, Any],
        decision: CacheDecision,
        item: int | None = None,
    ) -> None:
        self.metadata.start_step_run(
            step_run_id,
            cache_key=decision.key,
            fingerprint=decision.fingerprint,
            reason=decision.reason,
        )
        if decision.data_files:
            self.metadata.record_data_files(step_run_id, decision.data_files)
        inputs = self._inputs(arguments)
        shared = self.executor.shares_memory
        values = {k: self.values[k] for k in inputs if k in self.values} if shared else {}
        step = self.traced.calls[node.name].step
        task = StepTask(
            run_id, step_run_id, node, step, arguments, inputs, values, item, self.project_root
        )
        self._submitted[self.executor.submit(task)] = _Work(node.name, item)

    def _fail_before_running(
        self, run_id: str, node: Node, step_run_id: int, exc: Exception
    ) -> Verdict:
        return self._fail(run_id, node, step_run_id, _describe(exc))

    def _fail(self, run_id: str, node: Node, step_run_id: int, error: str) -> Verdict:
        """Record a failure that happened without running the step (or a failed map)."""
        self.metadata.finish_step_run(step_run_id, status="failed", error=error, attempts=0)
        self.notify(
            "after_step",
            run_id=run_id,
            node=node,
            status="failed",
            duration=0.0,
            error=error,
            outputs={},
        )
        return ("failed", error)

    def _record_hit(
        self,
        run_id: str,
        node: Node,
        step_run_id: int,
        decision: CacheDecision,
        arguments: Mapping[str, Any],
        item: int | None = None,
    ) -> None:
        hit = decision.hit
        if hit is None:
            raise QFlowInternalError(f"{node.name}: recording a cache hit without a hit")
        now = time.time()
        self.metadata.finish_step_run(
            step_run_id,
            status="cached",
            outputs=hit.outputs,
            inputs=self._arg_inputs(arguments),
            cached_from=hit.id,
            attempts=0,
            cache_key=decision.key,
            started_at=now,
            ended_at=now,
            fingerprint=decision.fingerprint,
            reason=f"cached from {hit.run_id}/{hit.name}",
            copy_records_from=hit.id,
        )
        if decision.data_files:
            self.metadata.record_data_files(step_run_id, decision.data_files)
        if item is None:
            for output, ref in hit.outputs.items():
                self.refs[handle_key(node.name, output)] = ref
            self.notify(
                "after_step",
                run_id=run_id,
                node=node,
                status="cached",
                duration=0.0,
                error=None,
                outputs=hit.outputs,
            )
        else:
            self.maps[node.name].outputs[item] = dict(hit.outputs)

    # -- mapped steps --------------------------------------------------------------------

    def _start_map(self, run_id: str, node: Node) -> Verdict | None:
        call = self.traced.calls[node.name]
        items = substitute(call.arguments[_mapped(node)], self._value)
        if not isinstance(items, list | tuple):
            error = (
                f"{node.name} maps over {node.map_over!r}, which is a {type(items).__name__}, "
                "not a list. Hint: make the upstream step return a list."
            )
            return self._fail_before_running(
                run_id, node, self.step_run_ids[node.name], TypeError(error)
            )
        self.metadata.start_step_run(self.step_run_ids[node.name], reason=f"{len(items)} items")
        state = _MapState(deque(range(len(items))), [None] * len(items))
        self.maps[node.name] = state
        for index, item in enumerate(items):
            ref = self.artifacts.put(item, name=f"{node.name}[{index}]", inline_max=INLINE_MAX)
            key = handle_key(f"{node.name}[{index}]", "item")
            self.refs[key] = ref
            self.values[key] = item
        ids = self.metadata.create_step_runs(
            run_id,
            [
                {
                    "name": f"{node.name}[{index}]",
                    "step": node.step,
                    "position": node.position,
                    "params": dict(node.params),
                }
                for index in range(len(items))
            ],
        )
        for index, step_run_id in enumerate(ids):
            self._item_runs[(node.name, index)] = step_run_id
        if not items:
            return self._finish_map(run_id, node)
        return None

    def _submit_map_items(self, run_id: str) -> list[tuple[str, Verdict]]:
        """Submit waiting items up to each map's ``max_parallel``; report maps that ended."""
        ended = []
        for name, state in list(self.maps.items()):
            node = self.graph.by_name[name]
            limit = node.max_parallel or len(state.outputs)
            while state.pending and state.failed is None and state.running < limit:
                if not self.executor.can_submit():
                    break
                index = state.pending.popleft()
                if self._start_item(run_id, node, index):
                    state.running += 1
            if self._map_done(state):
                ended.append((name, self._finish_map(run_id, node)))
        return ended

    def _start_item(self, run_id: str, node: Node, index: int) -> bool:
        """Start one item; True if it was submitted, False if the cache answered."""
        call = self.traced.calls[node.name]
        arguments = dict(call.arguments)
        arguments[_mapped(node)] = StepOutput(f"{node.name}[{index}]", "item")
        step_run_id = self._item_runs[(node.name, index)]
        try:
            decision = self.identity.decide(
                node, call.step, arguments, self._arg_inputs(arguments), item=index
            )
        except Exception as exc:
            error = _describe(exc)
            self.metadata.finish_step_run(step_run_id, status="failed", error=error, attempts=0)
            self.maps[node.name].failed = f"item {index} failed: {error}"
            return False
        if decision.hit is not None:
            self._record_hit(run_id, node, step_run_id, decision, arguments, item=index)
            return False
        self._submit(run_id, node, step_run_id, arguments, decision, item=index)
        return True

    def _map_done(self, state: _MapState) -> bool:
        if state.running:
            return False
        return state.failed is not None or all(o is not None for o in state.outputs)

    def _finish_map(self, run_id: str, node: Node) -> Verdict:
        state = self.maps.pop(node.name)
        step_run_id = self.step_run_ids[node.name]
        if state.failed is not None:
            for index in state.pending:
                self.metadata.finish_step_run(
                    self._item_runs[(node.name, index)],
                    status="skipped",
                    attempts=0,
                    reason="an earlier item failed",
                )
            return self._fail(run_id, node, step_run_id, state.failed)
        outputs: dict[str, ArtifactRef] = {}
        for output in node.outputs:
            members = [item_outputs[output] for item_outputs in state.outputs if item_outputs]
            outputs[output] = self.artifacts.put_collection(members)
            self.refs[handle_key(node.name, output)] = outputs[output]
        self.metadata.finish_step_run(step_run_id, status="succeeded", outputs=outputs, attempts=0)
        self.notify(
            "after_step",
            run_id=run_id,
            node=node,
            status="succeeded",
            duration=0.0,
            error=None,
            outputs=outputs,
        )
        return OK

    # -- finishing -----------------------------------------------------------------------

    def _caught(self, node: Node, result: TaskResult) -> dict[str, ArtifactRef]:
        """Outputs standing in for a caught failure: a ``qf.Failed`` per output."""
        failure = Failed(node.name, result.error or "failed")
        return {
            output: self.artifacts.put(failure, inline_max=INLINE_MAX) for output in node.outputs
        }

    def _complete(self, run_id: str, work: _Work, result: TaskResult) -> Verdict | None:
        node = self.graph.by_name[work.node]
        call = self.traced.calls[work.node]
        catch = call.step.options.catch
        outputs = result.outputs
        if result.status == "failed" and catch:
            outputs = self._caught(node, result)
        arguments = dict(call.arguments)
        if work.item is not None and node.map_over is not None:
            arguments[node.map_over] = StepOutput(f"{work.node}[{work.item}]", "item")
        self.metadata.finish_step_run(
            result.step_run_id,
            status=result.status,
            outputs=outputs,
            inputs=self._arg_inputs(arguments),
            error=result.error,
            traceback=result.traceback,
            stdout=result.stdout,
            stderr=result.stderr,
            attempts=result.attempts,
            started_at=result.started_at,
            ended_at=result.ended_at,
        )
        if work.item is not None:
            state = self.maps[work.node]
            state.running -= 1
            if result.status == "failed" and not catch:
                state.failed = f"item {work.item} failed: {result.error}"
            else:
                state.outputs[work.item] = outputs
            return None
        for output, ref in outputs.items():
            self.refs[handle_key(work.node, output)] = ref
        self.values.update(result.values)
        self._forget_inputs(work.node)
        self.notify(
            "after_step",
            run_id=run_id,
            node=node,
            status=result.status,
            duration=result.ended_at - result.started_at,
            error=result.error,
            outputs=outputs,
        )
        if result.status == "failed" and catch:
            return OK
        return OK if result.status == "succeeded" else ("failed", result.error)

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

    def _record_skip(self, run_id: str, node: Node, reason: str) -> None:
        """Skip a node whose ``qf.when`` condition is false."""
        self.metadata.finish_step_run(
            self.step_run_ids[node.name], status="skipped", attempts=0, reason=reason
        )
        self.notify(
            "after_step",
            run_id=run_id,
            node=node,
            status="skipped",
            duration=0.0,
            error=None,
            outputs={},
        )

    def _skip_downstream(
        self, run_id: str, name: str, waiting: dict[str, set[str]], reason: str
    ) -> None:
        for target in sorted(
            self.graph.descendants(name), key=lambda n: self.graph.by_name[n].position
        ):
            if waiting.pop(target, None) is not None:
                self.metadata.finish_step_run(
                    self.step_run_ids[target],
                    status="skipped",
                    attempts=0,
                    error=reason,
                    reason=reason,
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


def _mapped(node: Node) -> str:
    """The parameter a map node's items go to."""
    if node.map_over is None:
        raise QFlowInternalError(f"{node.name} is not a mapped step")
    return node.map_over


def _describe(exc: Exception) -> str:
    """An error as users read it: QFlow's own message, or ``Type: message``."""
    return str(exc) if isinstance(exc, QFlowError) else f"{type(exc).__name__}: {exc}"
