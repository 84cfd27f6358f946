"""Ray executor pieces that need no cluster: resources, the shared-store rule, the extra."""

from __future__ import annotations

import sys

import pytest

from qflow.errors import MissingExtraError, QFlowError
from qflow.runtime.executor import create_executor
from qflow.runtime.ray import check_shared_store, import_ray, ray_options


def test_resources_map_to_ray_requests() -> None:
    assert ray_options({}) == {"num_cpus": 1}
    assert ray_options({"cpus": 2, "gpus": 0.5, "memory": 2e9, "tpu_v4": 1}) == {
        "num_cpus": 2,
        "num_gpus": 0.5,
        "memory": 2_000_000_000,
        "resources": {"tpu_v4": 1.0},
    }


def test_local_store_is_refused_on_a_cluster_of_several_machines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QFLOW_ARTIFACTS_SHARED", raising=False)
    with pytest.raises(QFlowError, match=r"(?s)local folder.*10\.0\.0\.7.*QFLOW_ARTIFACTS_SHARED"):
        check_shared_store("/data/artifacts", ["127.0.0.1", "10.0.0.7"], shared=None)
    with pytest.raises(QFlowError, match="this process's memory"):
        check_shared_store("memory://x", ["127.0.0.1"], shared=None)
    check_shared_store("/data/artifacts", ["127.0.0.1", "127.0.0.1"], shared=None)
    check_shared_store("s3://bucket/qflow", ["10.0.0.7"], shared=None)
    check_shared_store("file:///nfs/qflow", ["10.0.0.7"], shared=True)
    monkeypatch.setenv("QFLOW_ARTIFACTS_SHARED", "1")
    check_shared_store("/nfs/qflow", ["10.0.0.7"], shared=None)


def test_missing_ray_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'qflow-framework\[ray\]'"):
        import_ray()


def test_ray_executor_needs_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from qflow.runtime.remote import WorkflowSpec
    from qflow.store.artifacts import ArtifactStore

    executor = create_executor("ray")
    executor.bind_workflow(WorkflowSpec("m:wf", {}))  # type: ignore[attr-defined]
    with pytest.raises(QFlowError, match="needs the address of a Ray cluster"):
        executor.start(ArtifactStore("/tmp/unused"), None)  # type: ignore[arg-type]


def test_config_group_chooses_the_executor_and_its_options() -> None:
    from qflow.runtime.launch import _executor_options

    group = {"executor": {"name": "ray", "address": "10.0.0.1:6379", "shared": None}}
    assert _executor_options("local", None, group) == ("ray", {"address": "10.0.0.1:6379"})
    assert _executor_options("local", {"address": "h:1"}, group) == ("ray", {"address": "h:1"})
    assert _executor_options("parallel", None, group) == ("parallel", {})
    assert _executor_options("local", None, {}) == ("local", {})
    parallel = {"executor": {"name": "parallel", "workers": 3}}
    assert _executor_options("local", None, parallel) == ("parallel", {"workers": 3})


def test_a_step_no_node_can_run_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    from qflow.runtime.ray import RayExecutor

    executor = RayExecutor("127.0.0.1:1")
    executor._totals = {"CPU": 4.0}
    with caplog.at_level("WARNING", logger="qflow.runtime.ray"):
        for _ in range(3):
            executor._warn_if_infeasible("0_fit", ray_options({"gpus": 1}))
        executor._warn_if_infeasible("1_ok", ray_options({"cpus": 4}))
    (record,) = caplog.records
    assert "step 0_fit asks for 1 GPU but the Ray cluster has 0.0" in record.getMessage()


def test_an_address_of_this_machine_counts_as_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that registered one of this machine's own non-loopback addresses is this
    machine: a local folder is accepted; an address no interface holds is not."""
    import socket

    from qflow.runtime.ray import this_machine

    monkeypatch.delenv("QFLOW_ARTIFACTS_SHARED", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            pytest.skip("no route off loopback on this machine")
        own = probe.getsockname()[0]
    if own.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    assert this_machine(own)
    assert this_machine("127.0.0.1")
    assert not this_machine("198.51.100.123")
    check_shared_store("/data/artifacts", [own, "127.0.0.1"], shared=None)
    with pytest.raises(QFlowError, match=r"198\.51\.100\.123"):
        check_shared_store("/data/artifacts", [own, "198.51.100.123"], shared=None)
