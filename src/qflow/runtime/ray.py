"""Run steps as Ray core tasks on a Ray cluster. The only module that imports ``ray``.

Each step call becomes one Ray task that calls ``remote.run_step(spec)`` in the Ray worker
process. Mapped items are batched: while every task slot is busy, waiting items of the same
step queue up, and a slot that frees takes a batch of them as one task (sized from the step's
measured item time, so a batch runs about ``BATCH_SECONDS``). Trivial items then cost Ray's
per-task overhead once per batch instead of once per item; an idle cluster still gets single
items at once, and a batch's items are recorded when the batch returns. Items of a step with a
``timeout`` always run alone. Only the small JSON spec and result go through Ray; data moves
through the artifact store, which must be shared by every node (an fsspec URL such as
``s3://bucket/prefix``, or a folder every node mounts at the same path). The coordinator
replays each result (metrics, params, tags, files) into the metadata store itself.

What steps print and log reaches the driver's stdout and stderr as whole lines, each prefixed
with the step (``[2_fit[3]] epoch 1``) as on the parallel executor: workers send it through
the run's channel, the Ray queue that carries live metrics, at least every ``ECHO_SECONDS``
while a step runs and when it ends. Ray's own forwarding of worker output stays off: it
prefixes lines with Ray's task names and folds repeated lines across workers.

Rule for local stores: a plain path or ``file://`` URL is refused unless it is declared
shared (``QFLOW_ARTIFACTS_SHARED=1`` or ``shared=True``) or every node of the cluster
registered an address of this machine (loopback, or one of this machine's own interface
addresses), which means the whole cluster runs on this machine.

Failures: a worker or node that dies fails its task with ``WorkerDiedError`` and the step's
``retries`` decide whether it runs again; a step overrunning its ``timeout`` is interrupted in
the worker, and cancelled with ``ray.cancel(force=True)`` if it does not return soon after.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, cast

from qflow.errors import MissingExtraError, QFlowError
from qflow.runtime.capture import LinePrefixer
from qflow.runtime.context import MetricRow
from qflow.runtime.mapping import item_name
from qflow.runtime.remote import WorkflowSpec, result_from_json, run_step, task_spec
from qflow.runtime.task import StepTask, TaskResult
from qflow.store.artifacts import is_local_url
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from collections.abc import Iterator

    from qflow.runtime.context import RunSinks
    from qflow.store.artifacts import ArtifactStore

logger = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05
SHARED_ENV = "QFLOW_ARTIFACTS_SHARED"
BATCH_SECONDS = 0.05
"""Target run time of one batch of mapped items."""
MAX_BATCH = 256
ECHO_SECONDS = 0.2
"""The longest a printed line waits in a worker before it is sent to the driver."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError.for_extra("ray", "ray") from None
    return ray


def ray_entry(specs: list[dict[str, Any]], channel: Any = None) -> list[dict[str, Any]]:
    """The body of every Ray task: the same worker entry point as ``qflow run-step``, once per
    spec of the batch, in order. Metrics and printed lines go to the coordinator through
    ``channel`` (a Ray queue) while the step runs, so they are live and survive the task; the
    rest comes back with the results; a running step's output so far goes through ``channel``
    too. An item whose worker entry raises (a framework error, not the step's) gives
    ``{"error": …}`` and the batch goes on."""
    send = show = None
    if channel is not None:

        def send(rows: list[MetricRow]) -> None:
            channel.put(("metrics", [list(row) for row in rows]))

        def show(step_run_id: int, stdout: str, stderr: str) -> None:
            channel.put(("output", [step_run_id, stdout, stderr]))

    results: list[dict[str, Any]] = []
    with _echoed(channel) as (out, err):
        for spec in specs:
            item = spec.get("item")
            label = str(spec["node"])
            out.label = err.label = label if item is None else item_name(label, int(item))
            try:
                results.append(run_step(spec, send, show))
            except Exception as exc:
                results.append({"error": f"{type(exc).__name__}: {exc}"})
            finally:
                out.flush()
                err.flush()
    return results


class _Echo:
    """Lines a Ray task's steps print, on their way to the driver through the run's channel:
    sent by a thread every ``ECHO_SECONDS`` while they come, and at the end."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qflow-echo", daemon=True)
        self._thread.start()

    def add(self, stream: str, text: str) -> None:
        with self._lock:
            self._pending.append((stream, text))

    def send(self) -> None:
        """Send what is pending (in order: one sender at a time). A channel that is gone
        ends the echo; the step's captured output is kept with its result either way."""
        with self._sending:
            with self._lock:
                pending, self._pending = self._pending, []
            if pending and self.channel is not None:
                try:
                    self.channel.put(("echo", pending))
                except Exception:
                    self.channel = None

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.send()

    def _loop(self) -> None:
        while not self._done.wait(ECHO_SECONDS):
            self.send()


class _EchoStream(io.TextIOBase):
    """``stdout`` or ``stderr`` of a Ray worker while QFlow steps run in it."""

    def __init__(self, echo: _Echo, stream: str) -> None:
        self.echo = echo
        self.stream = stream

    def write(self, text: str) -> int:
        self.echo.add(self.stream, text)
        return len(text)

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def _echoed(channel: Any) -> Iterator[tuple[LinePrefixer, LinePrefixer]]:
    """The worker's ``sys.stdout`` and ``sys.stderr`` send whole, prefixed lines to the
    driver while the task runs (without a channel, they stay Ray's log files)."""
    saved = sys.stdout, sys.stderr
    if channel is None:  # labelled, but not installed: Ray's log files get the lines as printed
        yield LinePrefixer(sys.stdout), LinePrefixer(sys.stderr)
        return
    echo = _Echo(channel)
    out = LinePrefixer(cast("TextIO", _EchoStream(echo, "out")))
    err = LinePrefixer(cast("TextIO", _EchoStream(echo, "err")))
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved
        echo.close()


def ray_options(resources: dict[str, float] | Any) -> dict[str, Any]:
    """Ray resource requests from a step's ``resources`` (cpus, gpus, memory in bytes, and
    any custom resource by name)."""
    options: dict[str, Any] = {"num_cpus": 1}
    custom: dict[str, float] = {}
    for key, value in dict(resources or {}).items():
        if key in ("cpus", "num_cpus"):
            options["num_cpus"] = value
        elif key in ("gpus", "num_gpus"):
            options["num_gpus"] = value
        elif key == "memory":
            options["memory"] = int(value)
        else:
            custom[key] = float(value)
    if custom:
        options["resources"] = custom
    return options


def _metrics_channel(ray: Any) -> Any:
    """The queue workers send metric batches through: an actor on the driver's own node, so
    it lives exactly as long as the run's coordinator can use it."""
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})


def check_shared_store(url: str, node_addresses: list[str], *, shared: bool | None) -> None:
    """Refuse a store the cluster's nodes cannot all reach (see the module docstring)."""
    if url.startswith("memory://"):
        raise QFlowError(
            f"The artifact store {url!r} lives in this process's memory; Ray workers cannot "
            "reach it. Hint: set QFLOW_ARTIFACTS to a shared store (s3://…, gs://…, or a "
            "shared folder)."
        )
    if not is_local_url(url):
        return
    declared = shared if shared is not None else os.environ.get(SHARED_ENV) == "1"
    if declared:
        return
    remote = sorted({a for a in node_addresses if not this_machine(a)})
    if not remote:
        return
    raise QFlowError(
        f"The artifact store {url!r} is a local folder, but the Ray cluster has nodes on other "
        f"machines ({', '.join(remote)}) that cannot read or write it.\n"
        "Hint: set QFLOW_ARTIFACTS to a shared store (s3://bucket/prefix, gs://…), or, if "
        f"this folder is shared storage mounted at the same path on every node, declare it "
        f"with {SHARED_ENV}=1 (or executor option shared=true)."
    )


def this_machine(address: str) -> bool:
    """Whether ``address`` (a node's registered IP) belongs to this machine: loopback, or an
    address one of its interfaces holds, which is exactly when binding a socket to it works
    (a single-machine cluster whose node registered the host's LAN address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address == "localhost"
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


@dataclass
class _Pending:
    """One step call or mapped item, from submit() to its result."""

    task: StepTask
    spec: dict[str, Any]
    options: dict[str, Any]
    future: Future[TaskResult] = field(default_factory=Future)
    attempts_used: int = 0
    started: float = 0.0

    @property
    def batchable(self) -> bool:
        return self.task.item is not None and self.task.step.options.timeout is None

    def same_batch(self, other: _Pending) -> bool:
        return (
            other.batchable
            and other.task.node.name == self.task.node.name
            and other.options == self.options
        )


@dataclass
class _Batch:
    """The calls one Ray task runs, in order (one, or several items of one mapped step)."""

    items: list[_Pending]
    deadline: float | None = None


class RayExecutor:
    """Runs each step call and mapped item as a Ray task on the cluster at ``address``."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        shared: bool | None = None,
        runtime_env: dict[str, Any] | None = None,
        max_in_flight: int | None = None,
        workers: int | None = None,
        workflow: WorkflowSpec | None = None,
    ) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.shared = shared
        self.runtime_env = runtime_env
        self.max_in_flight = max_in_flight or workers
        self.workflow = workflow
        self._ray: Any = None
        self._owns_connection = False
        self._remote: Any = None
        self._channel: Any = None
        self._sinks: RunSinks | None = None
        self._artifacts_url = ""
        self._pending: dict[Any, _Batch] = {}
        """Ray tasks in flight by their object ref."""
        self._backlog: deque[_Pending] = deque()
        """Calls waiting for a task slot, in submit order."""
        self._item_seconds: dict[str, float] = {}
        """Measured time of one item, by mapped step (a moving average)."""
        self._batch_size = 1
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pump: threading.Thread | None = None
        self._limit = 1
        self._totals: dict[str, float] = {}
        self._warned: set[tuple[str, str]] = set()

    def bind_workflow(self, workflow: WorkflowSpec) -> None:
        """Tell the executor how workers find the workflow (called by ``launch``)."""
        workflow.check_importable(self.name)
        self.workflow = workflow

    def start(self, artifacts: ArtifactStore, sinks: RunSinks) -> None:
        if self.workflow is None:
            raise QFlowError(
                "RayExecutor.start() needs the run's workflow; launch() binds it. "
                "Hint: run through qf.run(..., executor='ray') or qflow run --executor ray."
            )
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            if not self.address:
                raise QFlowError(
                    "The ray executor needs the address of a Ray cluster. Hint: qflow run WF "
                    "--executor ray --address HOST:6379, executor.address=HOST:6379 in the "
                    "config, or set RAY_ADDRESS."
                )
            # ray.init replaces the process's SIGTERM handler with sys.exit: keep ours, so
            # SIGTERM stops the run in order (recorded killed, tasks cancelled) as Ctrl-C does.
            main_thread = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
            try:
                ray.init(
                    address=self.address,
                    runtime_env=self.runtime_env,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise QFlowError(
                    f"Cannot connect to the Ray cluster at {self.address!r}: {exc}\n"
                    f"Hint: check it with `ray status --address {self.address}`; with token "
                    "authentication on, set RAY_AUTH_TOKEN to the cluster's token."
                ) from exc
            finally:
                if sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            self._owns_connection = True
        nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]
        check_shared_store(artifacts.url, nodes, shared=self.shared)
        self._totals = dict(ray.cluster_resources())
        cpus = int(self._totals.get("CPU", 1))
        self._limit = self.max_in_flight or max(2 * cpus, 4)
        self._remote = ray.remote(ray_entry)
        self._channel = _metrics_channel(ray)
        self._sinks, self._artifacts_url = sinks, artifacts.url
        self._stopping.clear()
        self._pump = threading.Thread(target=self._pump_loop, name="qflow-ray", daemon=True)
        self._pump.start()

    def can_submit(self) -> bool:
        """Room for more: a free task slot, or a queue shorter than what the free slots of
        the next round take (``limit`` batches of the current batch size)."""
        with self._lock:
            if len(self._pending) < self._limit and not self._backlog:
                return True
            return len(self._backlog) < self._limit * self._batch_size

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if self._remote is None or self.workflow is None:
            raise QFlowError("RayExecutor.submit() called before start().")
        options = ray_options(task.step.options.resources)
        self._warn_if_infeasible(task.node.name, options)
        pending = _Pending(task, task_spec(self.workflow, task, self._artifacts_url), options)
        with self._lock:
            self._backlog.append(pending)
            self._fill()
        return pending.future

    def _warn_if_infeasible(self, step: str, options: dict[str, Any]) -> None:
        """Ray keeps a task no node can run waiting (for an autoscaler); say so, once."""
        wanted = {"CPU": options.get("num_cpus", 0), "GPU": options.get("num_gpus", 0)}
        wanted.update(options.get("resources", {}))
        for resource, amount in wanted.items():
            have = self._totals.get(resource, 0.0)
            if amount and amount > have and (step, resource) not in self._warned:
                self._warned.add((step, resource))
                logger.warning(
                    "step %s asks for %s %s but the Ray cluster has %s; it waits until the "
                    "cluster grows (autoscaling) or the run is stopped",
                    step, amount, resource, have,
                )  # fmt: skip

    def _fill(self) -> None:
        """Start tasks from the queue while slots are free (lock held). A slot takes the
        queue's first call and, when it is a batchable item, the items of the same step
        right behind it, up to the step's batch size."""
        while self._backlog and len(self._pending) < self._limit:
            first = self._backlog.popleft()
            batch = [first]
            if first.batchable:
                size = self._size_for(first.task.node.name)
                while self._backlog and len(batch) < size and first.same_batch(self._backlog[0]):
                    batch.append(self._backlog.popleft())
            self._dispatch(batch)

    def _size_for(self, node: str) -> int:
        """Items per batch for ``node``: about ``BATCH_SECONDS`` of its measured item time;
        1 until an item of it has finished."""
        seconds = self._item_seconds.get(node)
        if seconds is None:
            return 1
        return max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(seconds, 1e-4))))

    def _dispatch(self, items: list[_Pending]) -> None:
        """Start one Ray task for ``items`` (lock held)."""
        first = items[0]
        name = first.task.node.name
        if first.task.item is not None:
            last = "" if len(items) == 1 else f"..{items[-1].task.item}"
            name = f"{name}[{first.task.item}{last}]"
        ref = self._remote.options(**first.options, max_retries=0, name=name).remote(
            [p.spec for p in items], self._channel
        )
        timeout = first.task.step.options.timeout
        now = time.monotonic()
        for pending in items:
            pending.started = now
        deadline = (
            now + float(timeout) + KILL_GRACE_SECONDS if isinstance(timeout, int | float) else None
        )
        self._pending[ref] = _Batch(items, deadline)

    def _pump_loop(self) -> None:
        ray = self._ray
        while not self._stopping.is_set():
            with self._lock:
                refs = list(self._pending)
            if not refs:
                time.sleep(_POLL_SECONDS / 5)
                continue
            try:
                ready, rest = ray.wait(refs, num_returns=1, timeout=_POLL_SECONDS)
                if ready and rest:
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready = [*ready, *more]
                self._drain_channel()  # a finished task's last points and lines first
                for ref in ready:
                    self._collect(ref)
                self._check_deadlines()
            except Exception as exc:  # the cluster went away, or a sink failed
                self._fail_all(f"{type(exc).__name__}: the Ray executor lost its tasks ({exc})")

    def _drain_channel(self) -> None:
        """Record the metric batches and output so far, and print the lines workers sent
        since the last call. A channel that is gone is dropped with a warning: workers then
        send their metrics with their results (and their output stays in each step's log)."""
        if self._channel is None:
            return
        try:
            size = self._channel.qsize()
            messages = self._channel.get_nowait_batch(size) if size else []
        except self._ray.exceptions.RayError as exc:
            logger.warning("the metrics channel of the run is gone (%s); metrics now arrive "
                           "when each step ends", type(exc).__name__)  # fmt: skip
            self._channel = None
            return
        for kind, payload in messages:
            if kind == "metrics" and self._sinks is not None:
                self._sinks.metrics([tuple(row) for row in payload])
            elif kind == "output" and self._sinks is not None and self._sinks.output is not None:
                self._sinks.output(*payload)
            elif kind == "echo":
                _print_lines(payload)

    def _collect(self, ref: Any) -> None:
        ray = self._ray
        with self._lock:
            batch = self._pending.pop(ref, None)
        if batch is None:
            return
        try:
            answers = ray.get(ref, timeout=60)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            for pending in batch.items:
                self._fail(pending, f"{type(cause).__name__}: {cause}")
            self._refill()
            return
        except ray.exceptions.RayError as exc:
            for pending in batch.items:
                self._lost(pending, self._died(pending, exc))
            self._refill()
            return
        for pending, data in zip(batch.items, answers, strict=True):
            self._record(pending, data)
        self._refill()

    def _record(self, pending: _Pending, data: dict[str, Any]) -> None:
        if "error" in data and "status" not in data:
            self._fail(pending, str(data["error"]))
            return
        result, records = result_from_json(data)
        if pending.batchable:
            took = max(result.ended_at - result.started_at, 0.0)
            before = self._item_seconds.get(pending.task.node.name, took)
            self._item_seconds[pending.task.node.name] = 0.7 * before + 0.3 * took
            self._batch_size = max(self._size_for(node) for node in self._item_seconds)
        try:
            if self._sinks is not None:
                records.replay(self._sinks)
        except Exception as exc:
            self._fail(pending, f"{type(exc).__name__}: recording what the step logged: {exc}")
            return
        result.attempts += pending.attempts_used
        pending.future.set_result(result)

    def _died(self, pending: _Pending, exc: BaseException) -> str:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"WorkerDiedError: the Ray worker running {pending.task.node.name} died or lost "
            f"its node ({type(exc).__name__}: {first})"
        )

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            overdue = [
                (ref, b)
                for ref, b in self._pending.items()
                if b.deadline is not None and now > b.deadline
            ]
            for ref, _ in overdue:
                del self._pending[ref]
        for ref, batch in overdue:
            self._ray.cancel(ref, force=True)
            for pending in batch.items:
                self._lost(
                    pending,
                    f"TimeoutError: step {pending.task.node.name} did not stop at its timeout; "
                    "its Ray task was cancelled",
                )
        if overdue:
            self._refill()

    def _lost(self, pending: _Pending, error: str) -> None:
        """Queue the call again (first in line) if its retry policy allows, else fail it."""
        pending.attempts_used += 1
        if pending.attempts_used <= pending.task.step.options.retries:
            with self._lock:
                self._backlog.appendleft(pending)
            return
        self._fail(pending, error)

    def _fail(self, pending: _Pending, error: str) -> None:
        now = time.time()
        started = now - (time.monotonic() - pending.started) if pending.started else now
        attempts = max(pending.attempts_used, 1)
        pending.future.set_result(
            TaskResult(
                pending.task.step_run_id,
                StepStatus.FAILED,
                {},
                started,
                now,
                attempts,
                error=error,
            )
        )

    def _fail_all(self, error: str) -> None:
        """Fail every task in flight or waiting, so the run ends instead of hanging."""
        with self._lock:
            lost = [p for b in self._pending.values() for p in b.items]
            lost += self._backlog
            self._pending.clear()
            self._backlog.clear()
        for pending in lost:
            if not pending.future.done():
                self._fail(pending, error)

    def _refill(self) -> None:
        with self._lock:
            self._fill()

    def shutdown(self) -> None:
        self._stopping.set()
        if self._pump is not None:
            self._pump.join(5)
            self._pump = None
        ray = self._ray
        with self._lock:
            refs = list(self._pending)
            self._pending.clear()
            self._backlog.clear()
        if ray is not None:
            for ref in refs:
                ray.cancel(ref, force=True)
            channel = self._channel
            self._drain_channel()
            if channel is not None:
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.kill(channel.actor)
            self._channel = None
            if self._owns_connection and ray.is_initialized():
                ray.shutdown()
            self._owns_connection = False
        self._sinks = None
        self._remote = None


def _print_lines(lines: list[tuple[str, str]]) -> None:
    """Write lines workers sent to the driver's stdout or stderr (as they are when they
    arrive, so a progress display that redirects them keeps its place)."""
    for stream, text in lines:
        target: TextIO = sys.stderr if stream == "err" else sys.stdout
        with contextlib.suppress(OSError, ValueError):  # a closed terminal ends the echo
            target.write(text)
            target.flush()
