"""Every graph shape × the local and parallel executors × every fault, then the invariants.

In-process faults (a step raises, its worker is killed) run through ``qf.run``. Faults to the
coordinator run ``qflow run`` (the CLI's own code, ``run_cli``) in a forked process, signal or
``kill -9`` it while a later step holds, then ``qflow resume`` the run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from qflow.cli.app import run_cli

from .conftest import remember_local, run_in_process
from .invariants import (
    COORDINATOR_KILL,
    FAULTS,
    HOLD_BEFORE_FAULT,
    NO_FAULT,
    PROCESS_FAULT_SHAPES,
    PROCESS_FAULTS,
    RAISES,
    SHAPES,
    SIGINT,
    SIGTERM,
    WORKER_KILL,
    Shape,
    calls,
    check_metrics_kept,
    check_nothing_open,
    check_outputs_loadable,
    check_resume_reuses,
    check_statuses,
    check_values,
    graph_of,
    load_run,
    output_keys,
    wait_for_hold,
    write_plan,
)

pytestmark = pytest.mark.integration

EXECUTORS = ["local", "parallel"]


def _skip_reason(shape: Shape, executor: str, fault: str) -> str | None:
    if fault == WORKER_KILL and executor == "local":
        return "the local executor runs steps inside the coordinator: that is coordinator-kill-9"
    if fault in PROCESS_FAULTS and shape.name not in PROCESS_FAULT_SHAPES:
        return f"coordinator faults run on {sorted(PROCESS_FAULT_SHAPES)} only (time budget)"
    return None


def _matrix() -> list[Any]:
    cases = []
    for shape in SHAPES:
        for executor in EXECUTORS:
            for fault in FAULTS:
                reason = _skip_reason(shape, executor, fault)
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                cases.append(
                    pytest.param(
                        shape, executor, fault, marks=marks, id=f"{shape.name}-{executor}-{fault}"
                    )
                )
    return cases


def _cli(args: list[str]) -> None:
    os._exit(run_cli(args))


def _fork_cli(args: list[str]) -> Any:
    process = multiprocessing.get_context("fork").Process(target=_cli, args=(args,))
    process.start()
    return process


def _pid_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("shape", "executor", "fault"), _matrix())
def test_conformance(
    shape: Shape, executor: str, fault: str, case: tuple[Path, Path], local_keys: Any
) -> None:
    project, ctl = case
    graph = graph_of(shape, ctl)
    if fault in PROCESS_FAULTS:
        _coordinator_fault(shape, executor, fault, project, ctl, graph)
        return
    plan = {"fail": shape.victim} if fault == RAISES else {}
    if fault == WORKER_KILL:
        plan = {"hold": shape.victim}
    write_plan(ctl, **plan)
    fault_at: list[float] = []

    def kill_worker() -> None:
        pid, at = wait_for_hold(ctl, shape.victim, alive=lambda: not finished.is_set())
        time.sleep(max(0.0, at + HOLD_BEFORE_FAULT - time.time()))
        fault_at.append(time.time())
        os.kill(pid, signal.SIGKILL)

    finished = threading.Event()
    killer = threading.Thread(target=kill_worker, daemon=True)
    if fault == WORKER_KILL:
        killer.start()
    try:
        run = run_in_process(shape, executor, project, ctl)
    finally:
        finished.set()
    if fault == WORKER_KILL:
        killer.join(10)
        assert fault_at, "the held worker was never killed"

    check_nothing_open(run)
    check_statuses(run, shape, fault, graph)
    check_outputs_loadable(run)
    if fault == NO_FAULT:
        check_values(run, shape)
    if fault == WORKER_KILL:
        check_metrics_kept(run, ctl, fault_at[0])
        if shape.victim_retries:
            assert run.step(shape.victim).attempts >= 2
    elif executor == "local":
        remember_local(shape, run, **plan)
    else:
        assert output_keys(run) == local_keys(shape, **plan)


def _coordinator_fault(
    shape: Shape, executor: str, fault: str, project: Path, ctl: Path, graph: Any
) -> None:
    write_plan(ctl, hold=shape.victim)
    args = ["-e", executor, "-w", "2", "-C", str(project)]
    coordinator = _fork_cli(["run", f"tests.fixtures.conformance_shapes:{shape.name}",
                             f"ctl={ctl}", *args])  # fmt: skip
    try:
        holder, at = wait_for_hold(ctl, shape.victim, alive=coordinator.is_alive)
        time.sleep(max(0.0, at + HOLD_BEFORE_FAULT - time.time()))
        fault_at = time.time()
        sig = {COORDINATOR_KILL: signal.SIGKILL, SIGINT: signal.SIGINT, SIGTERM: signal.SIGTERM}
        os.kill(coordinator.pid, sig[fault])
        coordinator.join(30)
    finally:
        if coordinator.is_alive():
            coordinator.kill()
    assert coordinator.exitcode not in (0, None)
    assert _pid_gone(holder), f"the process running {shape.victim} outlived its coordinator"
    calls_before = calls(ctl)

    stopped = load_run(project)  # opening the store marks a dead coordinator's run crashed
    assert stopped.status == ("crashed" if fault == COORDINATOR_KILL else "killed")
    check_metrics_kept(stopped, ctl, fault_at)
    if fault != COORDINATOR_KILL:
        assert stopped.step(shape.victim).status == "killed"
        check_nothing_open(stopped)

    resumer = _fork_cli(["resume", stopped.id, *args])
    resumer.join(120)
    expect_ok = not shape.failed
    assert (resumer.exitcode == 0) == expect_ok, resumer.exitcode
    resumed = next(r for r in load_run_all(project) if r.resumed_from == stopped.id)
    check_nothing_open(resumed)
    check_statuses(resumed, shape, NO_FAULT, graph)
    check_outputs_loadable(resumed)
    check_values(resumed, shape)
    check_resume_reuses(stopped, resumed, calls_before, ctl)
    if fault == COORDINATOR_KILL:
        check_nothing_open(load_run(project, stopped.id))


def load_run_all(project: Path) -> list[Any]:
    import qflow as qf

    return list(qf.Client(project).runs())
