"""The matrix (shapes, faults) and the invariants every case checks, written once.

A case runs one shape of ``tests/fixtures/conformance_shapes.py`` on one executor with one
fault. ``ctl`` is the case's control folder: ``plan.json`` (which node fails or holds) and
``calls.log`` (one line per step call: node, pid, time).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qflow as qf
from tests.fixtures import conformance_shapes as shapes

FINAL = {"succeeded", "cached", "failed", "skipped", "killed"}
OK = {"succeeded", "cached"}


@dataclass(frozen=True)
class Shape:
    """A workflow of the suite and what it does without any fault."""

    name: str
    victim: str
    """The node a fault hits: it raises, or holds while its worker or coordinator is killed."""
    failed: frozenset[str] = frozenset()
    """Nodes that fail by design (not caught): they fail the run."""
    caught: frozenset[str] = frozenset()
    """Nodes that fail by design with ``catch=True``: the run goes on."""
    blocked: frozenset[str] = frozenset()
    """Nodes whose ``qf.when`` condition is false."""
    victim_retries: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    """Expected loaded outputs by node, without a fault."""

    @property
    def workflow(self) -> Any:
        return getattr(shapes, self.name)


SHAPES = [
    Shape("linear", "1_double", values={"2_total": 20}),
    Shape("diamond", "3_inc", values={"5_gather": [20, 14]}),
    Shape("fan_out", "5_scale", values={"13_gather": [10 * k for k in range(6)]}),
    Shape("map_join", "1_square", values={"2_total": 55}),
    Shape("nested_map", "2_total", values={"3_gather": [0, 1, 3]}),
    Shape("when_true", "2_double", values={"3_total": 20, "5_total": 14}),
    Shape("when_false", "4_inc", blocked=frozenset({"2_double"}), values={"5_total": 14}),
    Shape("failing_sibling", "3_total", failed=frozenset({"1_boom"}), values={"3_total": 20}),
    Shape(
        "caught", "3_total", caught=frozenset({"1_fragile"}), values={"4_gather": ["failed", 20]}
    ),
    Shape("retried", "1_flaky", victim_retries=True, values={"4_gather": [4, 20]}),
    Shape("timed_out", "3_total", failed=frozenset({"1_slow"}), values={"3_total": 20}),
    Shape("nested", "1_double", values={"5_gather": [20, 14]}),
    Shape(
        "mutating",
        "3_describe",
        values={
            # Each consumer got the producer's value, whatever its siblings did to theirs.
            "2_parse_percent": None,
            "7_summarise": {
                "parsed": [0.9, 0.8, 0.7],
                "described": {
                    "values": ["90%", "80%", "70%"],
                    "unit": "percent",
                    "array": [100.0, 101.0, 102.0],
                    "columns": ["a", "c"],
                },
                "lists": [
                    [["base", "a"], ["base", "b"], ["base", "c"]],
                    ["base", "left"],
                    ["base", "right"],
                ],
            },
        },
    ),
]
SHAPE_IDS = [s.name for s in SHAPES]

NO_FAULT = "none"
RAISES = "raises"
WORKER_KILL = "worker-kill-9"
COORDINATOR_KILL = "coordinator-kill-9"
SIGINT = "sigint"
SIGTERM = "sigterm"
FAULTS = [NO_FAULT, RAISES, WORKER_KILL, COORDINATOR_KILL, SIGINT, SIGTERM]
PROCESS_FAULTS = {COORDINATOR_KILL, SIGINT, SIGTERM}

HOLD_BEFORE_FAULT = 1.5
"""Seconds between the held step's first metric and the fault (metrics are durable in 1 s)."""

PROCESS_FAULT_SHAPES = {"linear", "diamond", "map_join", "nested_map", "retried", "mutating"}
"""Coordinator faults stop the scheduler wherever it is, independent of the shape; they run
on these shapes (chains, joins, maps, nested maps, retries, mutating inputs) to keep the
suite within its time budget. Worker kills run on them too."""


def write_plan(ctl: Path, **plan: str) -> None:
    ctl.mkdir(parents=True, exist_ok=True)
    (ctl / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


def calls(ctl: Path, before: float | None = None) -> Counter[str]:
    """Step calls by node (a map node counts each item), optionally only those before a time."""
    log = ctl / "calls.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return Counter(
        node
        for node, _pid, at in (line.split() for line in lines)
        if before is None or float(at) < before
    )


def wait_for_hold(ctl: Path, node: str, alive: Any, seconds: float = 60) -> tuple[int, float]:
    """The pid of the process holding in ``node`` and when it started holding."""
    pid_file = ctl / f"{node}.pid"
    deadline = time.monotonic() + seconds
    while not pid_file.exists() or not pid_file.read_text().strip():
        if not alive():
            raise AssertionError(f"the run ended before {node} started")
        if time.monotonic() > deadline:
            raise AssertionError(f"{node} never started holding")
        time.sleep(0.02)
    pid, at = pid_file.read_text().split()
    return int(pid), float(at)


def node_of(step_name: str) -> str:
    """``3_square[7]`` → ``3_square``."""
    return step_name.split("[", 1)[0]


def graph_of(shape: Shape, ctl: Path) -> Any:
    return shape.workflow.trace({"ctl": str(ctl)}).graph


def expected_failed(shape: Shape, fault: str) -> set[str]:
    failed = set(shape.failed)
    hits_victim = fault == RAISES or (fault == WORKER_KILL and not shape.victim_retries)
    if hits_victim:
        failed.add(shape.victim)
    return failed


def check_statuses(run: Any, shape: Shape, fault: str, graph: Any) -> None:
    """Each node has the one final status the graph implies; the run's status agrees."""
    failed = expected_failed(shape, fault)
    skipped = set(shape.blocked)
    for name in failed | shape.blocked:
        skipped |= graph.descendants(name)
    status = {s.name: s.status for s in run.steps}
    nodes = {n.name for n in graph.nodes}
    assert nodes <= set(status), f"nodes without a step run: {nodes - set(status)}"
    for name in sorted(nodes):
        if name in skipped:
            assert status[name] == "skipped", (name, status)
        elif name in failed or name in shape.caught:
            assert status[name] == "failed", (name, status)
        else:
            assert status[name] in OK, (name, status)
    for step in run.steps:
        if step.name in nodes:
            continue
        parent = status[node_of(step.name)]
        if parent in OK and node_of(step.name) not in shape.caught:
            assert step.status in OK, (step.name, status)
    assert run.status == ("failed" if failed else "succeeded"), (run.status, status)


def check_nothing_open(run: Any) -> None:
    """No step run is left ``running`` or ``pending`` once the run ended."""
    assert run.status not in ("running", None)
    open_steps = {s.name: s.status for s in run.steps if s.status not in FINAL}
    assert not open_steps, f"run {run.id} ({run.status}) left steps open: {open_steps}"


def check_outputs_loadable(run: Any) -> None:
    """Every finished step's outputs load back (the siblings of a failure included)."""
    for step in run.steps:
        if step.status in OK:
            for output in step.outputs:
                step.load(output)


def check_values(run: Any, shape: Shape) -> None:
    for name, value in shape.values.items():
        if value is not None:
            assert run.step(name).load() == value, name


def output_keys(run: Any) -> dict[str, dict[str, str]]:
    """Artifact hashes of every step's outputs, by step name."""
    return {s.name: {k: ref.key for k, ref in s.outputs.items()} for s in run.steps}


def check_metrics_kept(run: Any, ctl: Path, fault_at: float) -> None:
    """Every metric logged more than one second before the fault is in the store."""
    wanted = calls(ctl, before=fault_at - 1.0)
    names = {s.id: node_of(s.name) for s in run.steps}
    logged = Counter(names[m.step_run_id] for m in run.metric_history("entered"))
    missing = {node: n for node, n in wanted.items() if logged[node] < n}
    assert not missing, f"metrics logged >1 s before the fault are missing: {missing}"


def check_resume_reuses(crashed: Any, resumed: Any, calls_before: Counter[str], ctl: Path) -> None:
    """Finished steps are never re-run on resume: each is cached from the crashed run, and
    the only new step calls are those of step runs the resumed run executed."""
    done = {s.name for s in crashed.steps if s.status in OK}
    # A map's own step run is recorded by the coordinator (attempts 0); its items executed.
    again = {s.name: s for s in resumed.steps}
    rerun = {
        name: again[name].status
        for name in done
        if name in again and again[name].attempts and again[name].status != "cached"
    }
    assert not rerun, f"finished steps ran again on resume: {rerun}"
    executed: Counter[str] = Counter()
    for step in resumed.steps:
        if step.status in ("succeeded", "failed") and step.attempts:
            executed[node_of(step.name)] += step.attempts
    new_calls = calls(ctl) - calls_before
    assert new_calls == executed, (new_calls, executed)


def load_run(project: Path, run_id: str | None = None) -> Any:
    client = qf.Client(project)
    if run_id is not None:
        return client.run(run_id)
    runs = client.runs()
    assert len(runs) == 1, [r.id for r in runs]
    return runs[0]
