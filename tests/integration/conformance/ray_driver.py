"""Runs the conformance shapes on ONE warm Ray cluster; test_ray_matrix.py starts this script
inside a loopback-only network namespace (see tests/integration/test_ray.py).

Usage: python ray_driver.py WORKDIR PORT [ONLY] (ONLY: comma-separated case labels or
faults, to debug a few cases). Prints one line ``REPORT <json>``: per case, the project and
control folders and the run id, which the tests read back from the host, and for the faults
what only this namespace can see (pids alive or gone, exit codes, timings).

Faults:

- ``none`` and ``raises`` run ``qf.run`` in this process;
- ``worker-kill-9`` runs ``qf.run`` here and ``kill -9``s the Ray worker process holding the
  victim step (its pid from the pid file the step writes);
- ``coordinator-kill-9``, ``sigint`` and ``sigterm`` start ``qflow run … --executor ray
  --address …`` as a subprocess, hit it while the victim holds, watch the Ray worker process
  that runs the victim, open the store here (pids are this namespace's: a dead coordinator's
  run is marked crashed by this process, not by the host), then ``qflow resume`` the run.
  These run a few at a time: each coordinator is a new Ray job whose workers start cold.

The in-process cases share one connection (one Ray job), so their workers stay warm.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qflow.errors import StepFailedError
from tests.integration.conformance.invariants import (
    COORDINATOR_KILL,
    HOLD_BEFORE_FAULT,
    NO_FAULT,
    PROCESS_FAULT_SHAPES,
    RAISES,
    SHAPES,
    SIGINT,
    SIGTERM,
    WORKER_KILL,
    Shape,
    calls,
    wait_for_hold,
    write_plan,
)

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
QFLOW = str(BIN / "qflow")
IN_PROCESS_FAULTS = [NO_FAULT, RAISES]
SIGNALS = {COORDINATOR_KILL: signal.SIGKILL, SIGINT: signal.SIGINT, SIGTERM: signal.SIGTERM}
SIGNAL_SHAPES = {"linear", "map_join", "mutating"}
"""SIGINT and SIGTERM take the same path (an orderly stop); they run on fewer shapes than
``kill -9`` to keep the module within its time budget."""
CONCURRENT_COORDINATORS = 3
GONE_WITHIN = 15.0
"""How long the driver watches for the victim's Ray worker process to end after a fault."""


def pid_gone(pid: int) -> bool:
    """No such process, or a zombie (dead, not yet reaped by the raylet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def seconds_until_gone(pid: int, since: float, limit: float = GONE_WITHIN) -> float | None:
    """Seconds from ``since`` (a ``time.time()``) until ``pid`` ended; None if it outlived
    ``limit``."""
    while time.time() < since + limit:
        if pid_gone(pid):
            return time.time() - since
        time.sleep(0.05)
    return None


def in_process(shape: Shape, fault: str, work: Path, address: str) -> dict[str, Any]:
    """``qf.run`` here; with ``worker-kill-9``, a thread kills the Ray worker holding the
    victim once its first metric is more than HOLD_BEFORE_FAULT seconds old."""
    import qflow as qf

    label = f"{shape.name}-{fault}"
    project, ctl = work / label / "proj", work / label / "ctl"
    project.mkdir(parents=True)
    plan = {"fail": shape.victim} if fault == RAISES else {}
    if fault == WORKER_KILL:
        plan = {"hold": shape.victim}
    write_plan(ctl, **plan)
    entry: dict[str, Any] = {"project": str(project), "ctl": str(ctl)}
    finished = threading.Event()

    def kill_worker() -> None:
        try:
            pid, at = wait_for_hold(ctl, shape.victim, alive=lambda: not finished.is_set())
            time.sleep(max(0.0, at + HOLD_BEFORE_FAULT - time.time()))
            entry["holder"] = pid
            entry["holder_alive_at_fault"] = not pid_gone(pid)
            entry["fault_at"] = time.time()
            os.kill(pid, signal.SIGKILL)
            entry["holder_gone_after"] = seconds_until_gone(pid, entry["fault_at"])
        except Exception:
            entry["killer_error"] = traceback.format_exc()

    killer = threading.Thread(target=kill_worker, daemon=True)
    if fault == WORKER_KILL:
        killer.start()
    started = time.monotonic()
    try:
        run = qf.run(shape.workflow, {"ctl": str(ctl)}, project_dir=project, executor="ray",
                     executor_options={"address": address})  # fmt: skip
        entry["run_id"] = run.id
    except StepFailedError as exc:
        entry["run_id"] = exc.run_id
    except Exception:
        entry["error"] = traceback.format_exc()
    finally:
        finished.set()
    entry["seconds"] = time.monotonic() - started
    if fault == WORKER_KILL:
        killer.join(GONE_WITHIN + 5)
    return entry


def coordinator_fault(shape: Shape, fault: str, work: Path, address: str) -> dict[str, Any]:
    """``qflow run --executor ray`` in a subprocess, hit by ``fault`` while the victim holds,
    then ``qflow resume``."""
    import qflow as qf

    label = f"{shape.name}-{fault}"
    case = work / label
    project, ctl = case / "proj", case / "ctl"
    project.mkdir(parents=True)
    write_plan(ctl, hold=shape.victim)
    entry: dict[str, Any] = {"project": str(project), "ctl": str(ctl)}
    env = {**os.environ, "NO_COLOR": "1"}
    started = time.monotonic()
    with (case / "run.log").open("wb") as log:
        coordinator = subprocess.Popen(
            [QFLOW, "run", f"tests.fixtures.conformance_shapes:{shape.name}", f"ctl={ctl}",
             "-e", "ray", "--address", address, "-C", str(project)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            holder, at = wait_for_hold(ctl, shape.victim, alive=lambda: coordinator.poll() is None)
            time.sleep(max(0.0, at + HOLD_BEFORE_FAULT - time.time()))
            entry["holder"] = holder
            entry["holder_alive_at_fault"] = not pid_gone(holder)
            entry["coordinator_alive_at_fault"] = coordinator.poll() is None
            entry["fault_at"] = time.time()
            coordinator.send_signal(SIGNALS[fault])
            entry["holder_gone_after"] = seconds_until_gone(holder, entry["fault_at"])
            entry["exit_code"] = coordinator.wait(30)  # reaped: its pid is gone for the store
            entry["coordinator_exit_after"] = time.time() - entry["fault_at"]
        finally:
            if coordinator.poll() is None:
                coordinator.kill()
                coordinator.wait(10)
    entry["run_log"] = (case / "run.log").read_text(errors="replace")[-3000:]
    entry["calls_before_resume"] = dict(calls(ctl))
    # Opening the store here marks the dead coordinator's run crashed: its pid is ours.
    runs = qf.Client(project).runs()
    entry["run_ids"] = [r.id for r in runs]
    stopped = runs[0]
    entry["run_id"] = stopped.id
    entry["stopped_status"] = stopped.status
    entry["stopped_steps"] = {step.name: step.status for step in stopped.steps}  # before resume
    with (case / "resume.log").open("wb") as log:
        resumer = subprocess.run(
            [QFLOW, "resume", stopped.id, "-e", "ray", "--address", address, "-C", str(project)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
            timeout=180, check=False,
        )  # fmt: skip
    entry["resume_exit_code"] = resumer.returncode
    entry["resume_log"] = (case / "resume.log").read_text(errors="replace")[-3000:]
    resumed = [r.id for r in qf.Client(project).runs() if r.resumed_from == stopped.id]
    entry["resumed_id"] = resumed[0] if resumed else None
    entry["seconds"] = time.monotonic() - started
    return entry


def cases() -> list[tuple[Shape, str]]:
    """Every shape with no fault and with a raising step; on the process-fault shapes, a
    killed worker and a killed coordinator; SIGINT and SIGTERM on SIGNAL_SHAPES."""
    found = [(shape, fault) for shape in SHAPES for fault in IN_PROCESS_FAULTS]
    process_shapes = [s for s in SHAPES if s.name in PROCESS_FAULT_SHAPES]
    found += [(shape, WORKER_KILL) for shape in process_shapes]
    found += [(shape, COORDINATOR_KILL) for shape in process_shapes]
    found += [(s, f) for f in (SIGINT, SIGTERM) for s in process_shapes if s.name in SIGNAL_SHAPES]
    return found


def run_case(shape: Shape, fault: str, work: Path, address: str) -> dict[str, Any]:
    try:  # one broken case is reported; the others still run
        if fault in SIGNALS:
            return coordinator_fault(shape, fault, work, address)
        return in_process(shape, fault, work, address)
    except Exception:
        logs = sorted((work / f"{shape.name}-{fault}").glob("*.log"))
        tails = "".join(
            f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs
        )
        return {"error": traceback.format_exc() + tails}


def main() -> None:
    work, port = Path(sys.argv[1]), int(sys.argv[2])
    address = f"127.0.0.1:{port}"
    only = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None
    subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "4", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(work / "ray")],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # One connection for every in-process case: one Ray job, so its worker processes stay
    # warm from case to case (the executor leaves a connection it did not open alone).
    import ray

    ray.init(address=address, log_to_driver=False, configure_logging=False)
    report: dict[str, Any] = {}
    try:
        chosen = [
            (shape, fault)
            for shape, fault in cases()
            if only is None or fault in only or f"{shape.name}-{fault}" in only
        ]
        for shape, fault in chosen:
            if fault not in SIGNALS:
                report[f"{shape.name}-{fault}"] = run_case(shape, fault, work, address)
        ray.shutdown()
        # Each coordinator is its own Ray job (cold workers, seconds to start): a few at once.
        with ThreadPoolExecutor(CONCURRENT_COORDINATORS) as pool:
            futures = {
                f"{shape.name}-{fault}": pool.submit(run_case, shape, fault, work, address)
                for shape, fault in chosen
                if fault in SIGNALS
            }
            report.update({label: future.result() for label, future in futures.items()})
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([RAY, "stop", "--force"], timeout=60, capture_output=True, check=False)
    print("REPORT " + json.dumps(report, default=str))


if __name__ == "__main__":
    main()
