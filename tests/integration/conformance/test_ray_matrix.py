"""The conformance shapes on the ray executor, all on one warm Ray cluster.

The cluster and the runs live in a loopback-only network namespace (``ray_driver.py``, started
once per module as in tests/integration/test_ray.py); the project folders are on the shared
file system, so each test reads its case back here and checks the same invariants as on local
and parallel, hashes included. What only the namespace can see (whether the Ray worker process
running the victim is gone, exit codes, the status a dead coordinator's run got when the store
was opened there) comes in the driver's report.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.namespace import require_namespace, run_scenario, scenario_env, scratch_folder

from .invariants import (
    COORDINATOR_KILL,
    FINAL,
    NO_FAULT,
    OK,
    PROCESS_FAULT_SHAPES,
    RAISES,
    SHAPES,
    SIGINT,
    SIGTERM,
    WORKER_KILL,
    Shape,
    check_metrics_kept,
    check_nothing_open,
    check_outputs_loadable,
    check_resume_reuses,
    check_statuses,
    check_values,
    graph_of,
    load_run,
    output_keys,
)
from .ray_driver import SIGNAL_SHAPES

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.ray]

DRIVER = Path(__file__).with_name("ray_driver.py")
PORT = 6381
GONE_WITHIN = 10.0
"""Seconds within which the Ray worker process running a step must end after its worker is
killed or its coordinator stops or dies."""


@pytest.fixture(scope="module")
def ray_report() -> Iterator[dict[str, Any]]:
    require_namespace()
    with scratch_folder("qfconf") as work:
        env = scenario_env(work, token=False)
        yield run_scenario(DRIVER, str(work), str(PORT), env=env, timeout=600)


@pytest.mark.parametrize("fault", [NO_FAULT, RAISES], ids=[NO_FAULT, RAISES])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_conformance_on_ray(
    shape: Shape, fault: str, ray_report: dict[str, Any], local_keys: Any
) -> None:
    entry = ray_report[f"{shape.name}-{fault}"]
    assert "error" not in entry, entry.get("error")
    project, ctl = Path(entry["project"]), Path(entry["ctl"])
    run = load_run(project, entry["run_id"])
    assert run.meta.get("executor") == "ray"
    check_nothing_open(run)
    check_statuses(run, shape, fault, graph_of(shape, ctl))
    check_outputs_loadable(run)
    if fault == NO_FAULT:
        check_values(run, shape)
    plan = {"fail": shape.victim} if fault == RAISES else {}
    assert output_keys(run) == local_keys(shape, **plan)


PROCESS_SHAPES = [s for s in SHAPES if s.name in PROCESS_FAULT_SHAPES]


def _entry(report: dict[str, Any], shape: Shape, fault: str) -> dict[str, Any]:
    entry: dict[str, Any] = report[f"{shape.name}-{fault}"]
    assert "error" not in entry, entry.get("error")
    return entry


def _check_same_keys_as_local(run: Any, shape: Shape, local_keys: Any) -> None:
    """Every finished step stored what the local executor stores without a fault."""
    local = local_keys(shape)
    finished = {s.name: output_keys(run)[s.name] for s in run.steps if s.status in OK}
    assert finished == {name: local[name] for name in finished}


@pytest.mark.parametrize("shape", PROCESS_SHAPES, ids=[s.name for s in PROCESS_SHAPES])
def test_killed_ray_worker(shape: Shape, ray_report: dict[str, Any], local_keys: Any) -> None:
    """``kill -9`` of the Ray worker process holding the victim: the step fails with
    WorkerDiedError (or runs again under its retries), and the invariants hold."""
    entry = _entry(ray_report, shape, WORKER_KILL)
    assert "killer_error" not in entry, entry["killer_error"]
    assert entry["holder_alive_at_fault"]
    project, ctl = Path(entry["project"]), Path(entry["ctl"])
    run = load_run(project, entry["run_id"])
    assert run.meta.get("executor") == "ray"
    check_nothing_open(run)
    check_statuses(run, shape, WORKER_KILL, graph_of(shape, ctl))
    check_outputs_loadable(run)
    check_metrics_kept(run, ctl, entry["fault_at"])
    victim = run.step(shape.victim)
    if shape.victim_retries:
        assert victim.attempts >= 2
        check_values(run, shape)
    else:
        errors = [s.error or "" for s in run.steps if s.name.startswith(shape.victim)]
        assert any("WorkerDiedError" in error for error in errors), errors
    _check_same_keys_as_local(run, shape, local_keys)


def _coordinator_cases() -> list[Any]:
    cases = [
        pytest.param(s, COORDINATOR_KILL, id=f"{s.name}-{COORDINATOR_KILL}") for s in PROCESS_SHAPES
    ]
    for fault in (SIGINT, SIGTERM):
        cases += [
            pytest.param(s, fault, id=f"{s.name}-{fault}")
            for s in PROCESS_SHAPES
            if s.name in SIGNAL_SHAPES
        ]
    return cases


@pytest.mark.parametrize(("shape", "fault"), _coordinator_cases())
def test_stopped_ray_coordinator(
    shape: Shape, fault: str, ray_report: dict[str, Any], local_keys: Any
) -> None:
    """``qflow run --executor ray`` killed (``kill -9``), interrupted (SIGINT) or terminated
    (SIGTERM) while the victim holds: its Ray task ends with it, what was logged more than a
    second before is kept, the run is recorded ``crashed`` or ``killed`` with no step left
    running, and ``qflow resume`` finishes it without running a finished step again."""
    entry = _entry(ray_report, shape, fault)
    assert entry["holder_alive_at_fault"] and entry["coordinator_alive_at_fault"]
    if fault == COORDINATOR_KILL:
        assert entry["exit_code"] == -signal.SIGKILL
    else:  # an orderly stop: recorded killed, RunKilledError's exit code
        assert entry["exit_code"] == 130, entry["run_log"]
    gone = entry["holder_gone_after"]
    assert gone is not None and gone <= GONE_WITHIN, (
        f"the Ray worker process running {shape.victim} outlived its coordinator "
        f"({fault}) by more than {GONE_WITHIN} s"
    )
    project, ctl = Path(entry["project"]), Path(entry["ctl"])
    graph = graph_of(shape, ctl)
    assert len(entry["run_ids"]) == 1, entry["run_ids"]
    expected = "crashed" if fault == COORDINATOR_KILL else "killed"
    assert entry["stopped_status"] == expected, entry["run_log"]
    # As the stop left them, before the resume closed anything still open.
    open_steps = {k: v for k, v in entry["stopped_steps"].items() if v not in FINAL}
    assert not open_steps, f"the {fault} left steps open: {open_steps}"
    stopped = load_run(project, entry["run_id"])
    assert stopped.meta.get("executor") == "ray"
    assert stopped.status == expected
    check_nothing_open(stopped)
    if fault != COORDINATOR_KILL:
        assert stopped.step(shape.victim).status == "killed"
    check_metrics_kept(stopped, ctl, entry["fault_at"])

    assert (entry["resume_exit_code"] == 0) == (not shape.failed), entry["resume_log"]
    assert entry["resumed_id"], entry["resume_log"]
    resumed = load_run(project, entry["resumed_id"])
    assert resumed.meta.get("executor") == "ray"
    check_nothing_open(resumed)
    check_statuses(resumed, shape, NO_FAULT, graph)
    check_outputs_loadable(resumed)
    check_values(resumed, shape)
    check_resume_reuses(stopped, resumed, Counter(entry["calls_before_resume"]), ctl)
    assert output_keys(resumed) == local_keys(shape)
