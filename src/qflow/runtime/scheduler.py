"""Walk a traced graph: check the cache, submit ready steps, record results, notify hooks.

The scheduler is the coordinator: it alone writes the metadata store. It is event-driven:
each completion is recorded the moment the executor reports it, before anything else is
dispatched, and every step whose inputs exist is dispatched at once, so a crash loses no
finished step and no ready step waits for an unrelated one. Mapped steps are expanded here,
once the list they map over exists, into one task per item (``runtime.mapping``); items'
starts and finishes are written in batches (``runtime.journal``), a step's at once.

Every node ends in exactly one final status. A node whose upstream failed or was skipped is
skipped with the reason; its siblings go on, and what they produce is kept.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.dsl.tracing import StepOutput, walk_handles
from qflow.errors import QFlowError, QFlowInternalError
from qflow.graph.model import NodeKind
from qflow.plugins.notify import HookNotifier
from qflow.runtime import mapping, reads
from qflow.runtime.cachekey import CacheDecision, StepIdentity
from qflow.runtime.context import MetricRow, RunSinks
from qflow.runtime.journal import StepJournal
from qflow.runtime.task import StepTable, StepTask, TaskResult, handle_key
from qflow.store.metadata.records import RunStatus, StepOutcome, StepStart, StepStatus

if TYPE_CHECKING:
    import pluggy

    from qflow.dsl.step import Step
    from qflow.dsl.tracing import TracedWorkflow
    from qflow.graph.model import Node
    from qflow.runtime.executor import Executor
    from qflow.runtime.partial import Binding
    from qflow.runtime.reads import FileAccess
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import DataFileRecord, StepRun


ITEM_DECISIONS = 500
"""Mapped items whose cache decisions are made together, with one store query for all."""


@dataclass
class RunOutcome:
    """How the run ended and which step calls failed (with their error)."""

    status: RunStatus
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _MapState:
    """Progress of a mapped step: its item tasks and their outputs, in item order."""

    pending: deque[int]
    outputs: list[dict[str, ArtifactRef] | None]
    started: float
    """When the map started (its items were stored)."""
    running: int = 0
    failures: dict[int, str] = field(default_factory=dict)
    """Errors of failed items by index; after the first, no new item starts."""
    stored: int = 0
    """Items before this index all have outputs (an output, once set, stays): ``done`` scans
    on from here, so checking it after every completion is not quadratic in the items."""
    decided: dict[int, CacheDecision | Exception] = field(default_factory=dict)
    """Cache decisions made ahead for waiting items (or why one could not be made)."""

    @property
    def done(self) -> bool:
        if self.running:
            return False
        if self.failures:
            return True
        outputs = self.outputs
        while self.stored < len(outputs) and outputs[self.stored] is not None:
            self.stored += 1
        return self.stored == len(outputs)


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
        bound: Mapping[str, Binding] | None = None,
    ) -> None:
        self.traced = traced
        self.graph = traced.graph
        self.metadata = metadata
        self.artifacts = artifacts
        self.executor = executor
        self.notify = HookNotifier(hooks)
        self.project_root = project_root
        self.bound = dict(bound or {})
        """Calls answered by an earlier run's step runs (a partial run: ``runtime.partial``)."""
        self.identity = StepIdentity(
            metadata,
            artifacts,
            traced.graph.workflow,
            use_cache=use_cache,
            rerun=rerun,
            reuse=reuse,
            project_root=project_root,
        )
        self.refs: dict[str, ArtifactRef] = {}
        self.step_run_ids: dict[str, int] = {}
        self.journal = StepJournal(metadata)
        self.maps: dict[str, _MapState] = {}
        self._item_runs: dict[tuple[str, int], int] = {}
        self._names: dict[int, str] = {}
        """Step-run ids to names (``3_fit``, ``2_score[7]``), for what workers log."""
        self._submitted: dict[Future[TaskResult], _Work] = {}
        self._finished: deque[Future[TaskResult]] = deque()
        """Submitted tasks that finished, not yet recorded (appended by the executor's threads:
        nothing scans every task in flight, of which a Ray map has hundreds)."""
        self._wake = threading.Event()
        self._decisions: dict[int, CacheDecision] = {}
        """Why each submitted step run runs (by step-run id), for its outcome."""
        self._order = {name: index for index, name in enumerate(traced.graph.topological_order())}
        self._waiting: dict[str, set[str]] = {}
        self._ready: deque[str] = deque()
        self._outcome = RunOutcome(RunStatus.SUCCEEDED)
        self._run_id = ""

    def sinks(self, run_id: str) -> RunSinks:
        """Where workers' records go: the metadata store, then the plugins."""

        def step_name(step_run_id: int | None) -> str | None:
            return None if step_run_id is None else self._names.get(step_run_id)

        def metrics(rows: list[MetricRow]) -> None:
            self.metadata.log_metrics(rows)
            if rows and self.notify.has_listeners("on_metrics"):
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
            elif isinstance(source, str) or hasattr(source, "__fspath__"):
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

        return RunSinks(metrics, params, tags, artifact, self.metadata.record_step_output)

    # -- the loop ------------------------------------------------------------------------

    def run(self, run_id: str) -> RunOutcome:
        """Run every node; returns when each has a final status."""
        graph = self.graph
        self._run_id = self.identity.run_id = run_id
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
        self._names = {i: name for name, i in self.step_run_ids.items()}
        self._waiting = {name: set(sources) for name, sources in graph.upstream.items()}
        self._release([name for name, sources in self._waiting.items() if not sources])
        bind_steps = getattr(self.executor, "bind_steps", None)
        if bind_steps is not None:  # its workers are other processes: they get the steps
            steps = (call.step for call in self.traced.calls.values())
            bind_steps(StepTable(steps, graph.nodes))
        self.executor.start(self.artifacts, self.sinks(run_id))
        self.journal.open()
        try:
            while True:
                self._advance()
                if not self._submitted:
                    break
                self._wake.clear()
                if not self._finished:
                    self._wake.wait()
            self.journal.close()
        except BaseException:
            # What finished before an interrupt or a failure is kept; a store that fails
            # here too must not hide the first error.
            with contextlib.suppress(Exception):
                self.journal.close()
            raise
        finally:
            self.executor.shutdown()
            self.identity.save()
        if self._waiting or self._ready or self.maps:
            raise QFlowInternalError(
                f"run {run_id} ended with steps not finished: "
                f"{sorted({*self._waiting, *self._ready, *self.maps})}"
            )
        if self._outcome.failed:
            self._outcome.status = RunStatus.FAILED
        return self._outcome

    def _advance(self) -> None:
        """Do everything that can be done now: record finished work, then start ready nodes
        and map items while the executor takes more, recording each completion before the
        next dispatch."""
        while True:
            moved = self._collect_done()
            while self._ready and self.executor.can_submit():
                self._start(self._ready.popleft())
                self._collect_done()
                moved = True
            for name in list(self.maps):
                if name in self.maps:  # a completion above may have finished it
                    moved |= self._submit_items(name)
            if not moved:
                return

    def _collect_done(self) -> bool:
        """Record every finished task (in graph order); True if there was any."""
        done = []
        while self._finished:
            future = self._finished.popleft()
            done.append((self._submitted.pop(future), future))
        if len({work.node for work, _ in done}) > 1:
            done.sort(key=lambda finished: self._order[finished[0].node])
        for work, future in done:
            self._complete(work, future.result())
        return bool(done)

    def _release(self, names: Collection[str]) -> None:
        """Queue nodes whose inputs all exist, in graph order."""
        self._ready.extend(sorted(names, key=self._order.__getitem__))
        for name in names:
            self._waiting.pop(name, None)

    def _ended(self, name: str, status: StepStatus, error: str | None = None) -> None:
        """Node ``name`` reached a final status: release or skip what depends on it."""
        if status in (StepStatus.SUCCEEDED, StepStatus.CACHED):
            freed = []
            for target in self.graph.downstream[name]:
                sources = self._waiting.get(target)
                if sources is None:  # already skipped because another input failed
                    continue
                sources.discard(name)
                if not sources:
                    freed.append(target)
            self._release(freed)
            return
        if status is StepStatus.FAILED:
            self._outcome.failed[name] = error or "failed"
        verb = "failed" if status is StepStatus.FAILED else "was skipped"
        self._skip_descendants(name, f"skipped because {name} {verb}")

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

    def _client_inputs(
        self, reads_: Iterable[FileAccess | DataFileRecord]
    ) -> dict[str, ArtifactRef]:
        """Outputs of other runs a step loaded through ``qf.Client``, as inputs named
        ``RUN/STEP.OUTPUT``: lineage leads from the step to the run it read."""
        found: dict[str, ArtifactRef] = {}
        for access in reads_:
            if not access.path.startswith(reads.CLIENT_LOAD):
                continue
            name = access.path.removeprefix(reads.CLIENT_LOAD)
            run_id, _, rest = name.partition("/")
            step, _, output = rest.rpartition(".")
            try:
                ref = self.metadata.get_step_run(run_id, step).outputs.get(output)
            except QFlowError:
                ref = None
            if ref is not None and ref.key == access.sha256:
                found[name] = ref
        return found

    def _value(self, handle: StepOutput) -> Any:
        return self.artifacts.get(self.refs[handle_key(handle.node, handle.output)])

    def _condition_blocks(self, name: str) -> str | None:
        """The reason to skip ``name`` when one of its ``qf.when`` conditions is false."""
        for edge in self.graph.conditions_of(name):
            value = self._value(StepOutput(edge.source, edge.output))
            if not value:
                return f"condition {edge.source}.{edge.output} was {value!r}"
        return None

    def _start(self, name: str) -> None:
        """Begin a node: skip it, answer it from the cache, expand its map, or submit it."""
        node = self.graph.by_name[name]
        call = self.traced.calls[name]
        step_run_id = self.step_run_ids[name]
        self.notify("before_step", run_id=self._run_id, node=node)
        started = time.time()
        items: dict[str, ArtifactRef] = {}
        decision: CacheDecision | None = None
        binding = self.bound.get(name)
        if binding is not None:
            self._record_bound(node, step_run_id, binding)
            self._ended(name, StepStatus.CACHED)
            return
        try:
            blocked = self._condition_blocks(name)
            if blocked is None and node.kind is NodeKind.MAP:
                items = mapping.expand(node, call.arguments, self._value, self.artifacts)
            elif blocked is None:
                decision = self.identity.decide(
                    node, call.step, call.arguments, self._arg_inputs(call.arguments)
                )
        except Exception as exc:
            self._finish_without_running(node, StepStatus.FAILED, error=_describe(exc))
            return
        if blocked is not None:
            self._finish_without_running(node, StepStatus.SKIPPED, reason=blocked)
        elif decision is None:  # a map: its items are stored, each is decided on its own
            self._start_map(node, items, started)
        elif decision.hit is not None:
            self._record_hit(node, step_run_id, decision)
            self._ended(name, StepStatus.CACHED)
        else:
            self._submit(node, step_run_id, call.arguments, decision)

    def _submit(
        self,
        node: Node,
        step_run_id: int,
        arguments: dict[str, Any],
        decision: CacheDecision,
        item: int | None = None,
    ) -> None:
        self.journal.start(
            StepStart(step_run_id, decision.key, decision.fingerprint, decision.reason, time.time())
        )
        self.journal.files(step_run_id, decision.data_files)
        if item is None:  # a step shows as running while it runs; items within the interval
            self.journal.flush()
        self._decisions[step_run_id] = decision
        step = self.traced.calls[node.name].step
        task = StepTask(
            self._run_id,
            step_run_id,
            node,
            step,
            arguments,
            self._inputs(arguments),
            item=item,
            project_root=self.project_root,
        )
        future = self.executor.submit(task)
        self._submitted[future] = _Work(node.name, item)
        future.add_done_callback(self._on_done)

    def _on_done(self, future: Future[TaskResult]) -> None:
        """A task finished (called in the executor's thread, or at once if it is done)."""
        self._finished.append(future)
        self._wake.set()

    def _finish_without_running(
        self,
        node: Node,
        status: StepStatus,
        *,
        error: str | None = None,
        reason: str | None = None,
        outputs: dict[str, ArtifactRef] | None = None,
        started_at: float | None = None,
    ) -> None:
        """Record a node that ended here, in the coordinator: skipped by its condition,
        failed before running (a bad input, a map over a non-list), or a whole map (which
        ran from ``started_at`` until now)."""
        outcome = StepOutcome(
            status,
            outputs=outputs or {},
            error=error,
            reason=reason,
            attempts=0,
            started_at=started_at,
            ended_at=None if started_at is None else time.time(),
        )
        self.journal.finish(self.step_run_ids[node.name], outcome)
        self._after_step(node, outcome)
        self._ended(node.name, status, error)

    def _after_step(self, node: Node, outcome: StepOutcome) -> None:
        """Tell the plugins a node ended, once it is recorded. The old keyword arguments stay
        for plugins written before ``outcome`` existed; ``error`` is given only for a failed
        step."""
        self.journal.flush()
        self.notify(
            "after_step",
            run_id=self._run_id,
            node=node,
            status=outcome.status,
            duration=outcome.duration,
            error=outcome.failure,
            outputs=outcome.outputs,
            outcome=outcome,
        )

    def _record_hit(
        self, node: Node, step_run_id: int, decision: CacheDecision, item: int | None = None
    ) -> None:
        hit = decision.hit
        if hit is None:
            raise QFlowInternalError(f"{node.name}: recording a cache hit without a hit")
        now = time.time()
        outcome = StepOutcome(
            StepStatus.CACHED,
            outputs=dict(hit.outputs),
            inputs={**decision.inputs, **self._client_inputs(decision.data_files)},
            cached_from=hit.id,
            attempts=0,
            cache_key=decision.key,
            started_at=now,
            ended_at=now,
            fingerprint=decision.fingerprint,
            reason=f"cached from {hit.run_id}/{hit.name}",
            copy_records_from=hit.id,
        )
        self.journal.finish(step_run_id, outcome, decision.data_files)
        if item is not None:
            self.maps[node.name].outputs[item] = dict(hit.outputs)
            return
        for output, ref in hit.outputs.items():
            self.refs[handle_key(node.name, output)] = ref
        self._after_step(node, outcome)

    def _record_bound(self, node: Node, step_run_id: int, binding: Binding) -> None:
        """A call taken from an earlier run: recorded as cached from that run's step run
        (its outputs, inputs, metrics and files), so lineage leads to the earlier run."""
        earlier = binding.step_run
        now = time.time()
        outcome = StepOutcome(
            StepStatus.CACHED,
            outputs=dict(binding.outputs),
            inputs=dict(earlier.inputs) if binding.same_call else {},
            cached_from=earlier.id,
            attempts=0,
            started_at=now,
            ended_at=now,
            fingerprint=earlier.fingerprint,
            reason=f"taken from run {earlier.run_id} ({earlier.name}, --from)",
            copy_records_from=earlier.id if binding.same_call else None,
        )
        self.journal.finish(step_run_id, outcome)
        for output, ref in binding.outputs.items():
            self.refs[handle_key(node.name, output)] = ref
        self._after_step(node, outcome)

    # -- mapped steps --------------------------------------------------------------------

    def _start_map(self, node: Node, items: Mapping[str, ArtifactRef], started: float) -> None:
        """Create one step run per item (stored by ``mapping.expand``) and start them."""
        self.refs.update(items)
        self.journal.start(
            StepStart(
                self.step_run_ids[node.name], reason=f"{len(items)} items", started_at=started
            )
        )
        ids = self.metadata.create_step_runs(
            self._run_id,
            [
                {
                    "name": mapping.item_name(node.name, index),
                    "step": node.step,
                    "position": node.position,
                    "params": dict(node.params),
                }
                for index in range(len(items))
            ],
        )
        for index, step_run_id in enumerate(ids):
            self._item_runs[(node.name, index)] = step_run_id
            self._names[step_run_id] = mapping.item_name(node.name, index)
        self.maps[node.name] = _MapState(deque(range(len(items))), [None] * len(items), started)
        self._submit_items(node.name)

    def _submit_items(self, name: str) -> bool:
        """Start waiting items up to the map's ``max_parallel``, recording each completion
        before the next start; finish the map when all items ended. True if anything moved."""
        state = self.maps[name]
        node = self.graph.by_name[name]
        limit = node.max_parallel or len(state.outputs)
        moved = False
        while state.pending and not state.failures and state.running < limit:
            if not self.executor.can_submit():
                break
            self._start_item(node, state, state.pending.popleft())
            self._collect_done()
            moved = True
            if name not in self.maps:  # the last completion finished the map
                return True
        if state.done:
            self._finish_map(node)
            moved = True
        return moved

    def _start_item(self, node: Node, state: _MapState, index: int) -> None:
        step_run_id = self._item_runs[(node.name, index)]
        try:
            decision = self._item_decision(node, state, index)
        except Exception as exc:
            error = _describe(exc)
            self.journal.finish(
                step_run_id, StepOutcome(StepStatus.FAILED, error=error, attempts=0)
            )
            state.failures[index] = error
            return
        if decision.hit is not None:
            self._record_hit(node, step_run_id, decision, item=index)
            return
        state.running += 1
        arguments = mapping.item_arguments(node, self.traced.calls[node.name].arguments, index)
        self._submit(node, step_run_id, arguments, decision, item=index)

    def _item_decision(self, node: Node, state: _MapState, index: int) -> CacheDecision:
        """Item ``index``'s cache decision, made together with the next waiting items' (up
        to ``ITEM_DECISIONS``): the store is asked once for all of them."""
        if index not in state.decided:
            call = self.traced.calls[node.name]
            batch = [index, *itertools.islice(state.pending, ITEM_DECISIONS - 1)]
            calls = []
            for item in batch:
                arguments = mapping.item_arguments(node, call.arguments, item)
                calls.append((arguments, self._arg_inputs(arguments), item))
            decided: list[CacheDecision | Exception]
            try:
                decided = list(self.identity.decide_many(node, call.step, calls))
            except Exception:  # one item's bad input (a missing DataFile) fails that item only
                decided = [self._decide_alone(node, call.step, *c) for c in calls]
            state.decided.update(zip(batch, decided, strict=True))
        decision = state.decided.pop(index)
        if isinstance(decision, Exception):
            raise decision
        return decision

    def _decide_alone(
        self,
        node: Node,
        step: Step[..., Any],
        arguments: Mapping[str, Any],
        inputs: Mapping[str, ArtifactRef],
        item: int | None,
    ) -> CacheDecision | Exception:
        try:
            return self.identity.decide(node, step, arguments, inputs, item)
        except Exception as exc:
            return exc

    def _finish_map(self, node: Node) -> None:
        state = self.maps.pop(node.name)
        if state.failures:
            skipped = StepOutcome(StepStatus.SKIPPED, attempts=0, reason="an earlier item failed")
            for index in state.pending:
                self.journal.finish(self._item_runs[(node.name, index)], skipped)
            error = self._map_error(node, state.failures)
            self._finish_without_running(
                node, StepStatus.FAILED, error=error, started_at=state.started
            )
            return
        items = [outputs for outputs in state.outputs if outputs is not None]
        outputs = mapping.collect(node, items, self.artifacts)
        for output, ref in outputs.items():
            self.refs[handle_key(node.name, output)] = ref
        self._finish_without_running(
            node, StepStatus.SUCCEEDED, outputs=outputs, started_at=state.started
        )

    def _map_error(self, node: Node, failures: Mapping[int, str]) -> str:
        """The map's error: the failed item of lowest index (the same on every executor,
        whatever finished first), with its input."""
        index = min(failures)
        try:
            item = StepOutput(mapping.item_name(node.name, index), "item")
            shown = f" ({self._value(item)!r:.60})"
        except Exception:  # the error must not hide behind a failing load
            shown = ""
        more = f" ({len(failures) - 1} more items failed)" if len(failures) > 1 else ""
        return f"item {index}{shown} failed: {failures[index]}{more}"

    # -- finishing -----------------------------------------------------------------------

    def _complete(self, work: _Work, result: TaskResult) -> None:
        """Record a task's result the moment it is known, then move the graph on."""
        node = self.graph.by_name[work.node]
        call = self.traced.calls[work.node]
        catch = call.step.options.catch
        failed = result.status == StepStatus.FAILED
        outputs = result.outputs
        if failed and catch:
            outputs = mapping.caught(node, result.error or "failed", self.artifacts)
        decision = self._decisions.pop(result.step_run_id)
        outcome = StepOutcome(
            StepStatus(result.status),
            outputs=outputs,
            inputs={**decision.inputs, **self._client_inputs(result.files)},
            error=result.error,
            traceback=result.traceback,
            stdout=result.stdout,
            stderr=result.stderr,
            attempts=result.attempts,
            started_at=result.started_at,
            ended_at=result.ended_at,
            # as start_step_run recorded them: the outcome is the whole record
            cache_key=decision.key,
            fingerprint=decision.fingerprint,
            reason=decision.reason,
        )
        self.journal.finish(result.step_run_id, outcome, [f.to_record() for f in result.files])
        if result.files:
            self.identity.learn(result.files, result.started_at)
        if work.item is not None:
            state = self.maps[work.node]
            state.running -= 1
            if failed and not catch:
                state.failures[work.item] = result.error or "failed"
            else:
                state.outputs[work.item] = outputs
            if state.done:
                self._finish_map(node)
            return
        for output, ref in outputs.items():
            self.refs[handle_key(work.node, output)] = ref
        self._after_step(node, outcome)
        if failed and not catch:
            self._ended(work.node, StepStatus.FAILED, result.error)
        else:
            self._ended(work.node, StepStatus.SUCCEEDED)

    def _skip_descendants(self, name: str, reason: str) -> None:
        """Skip every node below ``name`` that has not started; started ones finish."""
        for target in sorted(self.graph.descendants(name), key=self._order.__getitem__):
            if self._waiting.pop(target, None) is None:
                continue
            outcome = StepOutcome(StepStatus.SKIPPED, attempts=0, error=reason, reason=reason)
            self.journal.finish(self.step_run_ids[target], outcome)
            self._after_step(self.graph.by_name[target], outcome)


def _describe(exc: Exception) -> str:
    """An error as users read it: QFlow's own message, or ``Type: message``."""
    return str(exc) if isinstance(exc, QFlowError) else f"{type(exc).__name__}: {exc}"
