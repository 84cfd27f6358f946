"""The ray executor on a real two-node Ray cluster, inside a loopback-only network namespace.

Ray listens on every interface even when told 127.0.0.1, so the cluster, the driver and the
scenario all run in ``unshare -n -p -f --mount-proc`` with only ``lo`` up: nothing can reach
them from outside, and every process they start ends with the namespace. The scenarios live in
ray_scenario.py and run once per module (about a minute); each test checks one part of the
report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.namespace import require_namespace, run_scenario, scenario_env, scratch_folder

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.ray]

SCENARIO = Path(__file__).with_name("ray_scenario.py")
PORT = 6380
NODE_IP = "192.0.2.10"
"""The nodes' address: a TEST-NET-1 address added to ``lo`` inside the namespace (no dummy
or veth devices needed), which is not a loopback address but is this machine's own."""


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    require_namespace()
    with scratch_folder("qfray") as work:
        yield run_scenario(SCENARIO, str(work), str(PORT), NODE_IP, env=scenario_env(work),
                           node_ip=NODE_IP)  # fmt: skip


def _phase(report: dict[str, Any], name: str) -> dict[str, Any]:
    phase: dict[str, Any] = report[name]
    assert "error" not in phase, phase.get("error")
    return phase


def test_cluster_uses_token_auth_and_refuses_a_driver_without_the_token(
    report: dict[str, Any],
) -> None:
    auth = report["auth"]
    assert auth["mode"] == "token"
    assert not auth["connected"]
    assert auth.get("timed_out") or auth["error"]


def test_local_folder_is_accepted_when_nodes_register_this_machines_address(
    report: dict[str, Any],
) -> None:
    """Both nodes registered 192.0.2.10, a non-loopback address of this machine: the run
    with the project's local artifact folder went through (it would be refused otherwise)."""
    assert report["node_ips"] == [NODE_IP]
    assert _phase(report, "fan_out")["status"] == "succeeded"


def test_fan_out_on_ray_gives_the_local_artifacts(report: dict[str, Any]) -> None:
    fan = _phase(report, "fan_out")
    assert fan["status"] == "succeeded"
    assert fan["executor"] == "ray"
    assert fan["ray"] == fan["local"]
    assert len(fan["ray"]) == 16
    # Items finish in any order on Ray: compare every logged value, not the last one.
    assert fan["metrics"] == fan["local_metrics"]
    assert fan["metrics"] == {"x": [float(x) for x in range(12)], "sum": [506.0]}
    assert fan["describe"] == {"total": 506, "digits": 3}


def test_trivial_items_are_batched_into_fewer_ray_tasks(report: dict[str, Any]) -> None:
    batched = _phase(report, "fan_out")["batched"]
    assert batched["status"] == "succeeded"
    assert batched["items"] == list(range(200))
    assert batched["tasks"] < 200 / 4


def test_steps_ran_on_both_nodes(report: dict[str, Any]) -> None:
    nodes = _phase(report, "fan_out")["nodes"]
    assert len(nodes) == 2
    assert "driver" not in nodes


def test_timeout_and_catch_on_ray(report: dict[str, Any]) -> None:
    policies = _phase(report, "policies")
    assert policies["raised"]
    status, error = policies["sleepy"]
    assert status == "failed"
    assert "timeout" in error
    status, error = policies["stubborn"]
    assert status == "failed"
    assert "did not stop at its timeout; its Ray task was cancelled" in error
    assert policies["seconds"] < 30
    assert policies["broken"] == "succeeded"
    assert policies["failures"] == 3


def test_killed_worker_node_is_survived_by_retries(report: dict[str, Any]) -> None:
    kill = _phase(report, "kill")
    assert kill["killed"]
    assert kill["status"] == "succeeded"
    assert kill["total"] == sum(x * x for x in range(8))
    assert kill.get("resumed") or max(kill["attempts"]) == 2


def test_postgres_metadata_with_ray(report: dict[str, Any]) -> None:
    """The host's PostgreSQL is unreachable from the namespace, so the scenario starts a
    private server inside it (127.0.0.1:5433) and the driver records the run there."""
    pg = _phase(report, "postgres")
    if "skipped" in pg:
        pytest.skip(pg["skipped"])
    assert pg["status"] == "succeeded"
    assert pg["steps"] == 16
    assert pg["same_outputs"]
    assert not pg["sqlite_file"]


def test_qflow_run_on_ray_by_config_group_and_by_flags(report: dict[str, Any]) -> None:
    cli = _phase(report, "cli")
    for label, n in (("group", 6), ("flags", 7)):
        assert "error" not in cli[label], cli[label].get("error")
        assert cli[label]["executor"] == "ray"
        assert cli[label]["total"] == sum(x * x for x in range(n))
        assert cli[label]["nodes"]
        assert "driver" not in cli[label]["nodes"]


def test_metrics_of_a_running_ray_task_are_live(report: dict[str, Any]) -> None:
    """Each point reaches the store through the executor's channel within a second of being
    logged, while the task still runs, and exactly once."""
    live = _phase(report, "live")
    assert live["status"] == "succeeded"
    assert live["running_when_seen"]
    assert live["printed_while_running"]  # the step's output so far, read while it runs
    assert all(seconds is not None and seconds < 1.0 for seconds in live["latency"])
    assert live["stored"] == [0, 1, 2]


def test_file_reads_of_a_ray_task_are_recorded_and_checked(report: dict[str, Any]) -> None:
    reads = _phase(report, "reads")
    recorded = reads["recorded"]
    assert any(name.startswith("read:") and name.endswith("table.csv") for name in recorded)
    assert reads["statuses"] == ["succeeded", "cached", "succeeded"]
    assert reads["values"] == [2, 3]
    assert "table.csv" in reads["reason"]


def test_what_ray_steps_print_and_log_shows_on_the_driver(report: dict[str, Any]) -> None:
    """``qflow run`` in a terminal: each line a step prints or logs on a Ray worker shows
    once on the driver, whole, prefixed with its step, as on the parallel executor."""
    echo = _phase(report, "echo")
    assert echo["code"] == 0, echo["lines"]
    lines = echo["lines"]
    for x in range(5):
        assert lines.count(f"[1_speak[{x}]] printed {x}") == 1, lines
        logged = [line for line in lines if line.startswith(f"[1_speak[{x}]] ")
                  and line.endswith(f"INFO tests.fixtures.ray_chatty: logged {x}")]  # fmt: skip
        assert len(logged) == 1, lines
    assert lines.count("[2_count] all 5 spoke") == 1, lines
