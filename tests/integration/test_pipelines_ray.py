"""The ports (Kedro's spaceflights, Metaflow's 02-statistics and 04-playlist-plus) on a real
Ray cluster give the local executor's artifacts, hash for hash: the whole workflows, a
workflow parameter bound to another run's output (``--from RUN``), a partial run
(``--from-steps``/``--to-steps``) and named calls (``step.named(...)``).

The cluster (one node) and the runs live in pipelines_ray_scenario.py, run inside a
loopback-only network namespace with token authentication, as test_ray.py does.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ray import _namespace_available

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("pipelines_ray_scenario.py")
PORT = 6381


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    if not _namespace_available():
        pytest.skip("needs root and unshare/ip to make a loopback-only network namespace")
    work = Path("/tmp") / f"qfports-{secrets.token_hex(4)}"  # Ray's socket paths are short
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFLOW_", "RAY_"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT), HOME=str(work))  # fmt: skip
    command = ['ip link set lo up && exec "$0" "$@"', sys.executable, str(SCENARIO)]
    try:
        done = subprocess.run(
            ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", *command,
             str(work), str(PORT)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=420, check=False,
        )  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
        if done.returncode != 0 or not lines:
            pytest.fail(f"scenario failed ({done.returncode}):\n{done.stderr[-6000:]}")
        yield json.loads(lines[-1].removeprefix("REPORT "))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _runs(report: dict[str, Any], executor: str) -> dict[str, Any]:
    runs: dict[str, Any] = report[executor]
    assert "error" not in runs, runs.get("error")
    return runs


def test_every_port_gives_the_local_artifacts_on_ray(report: dict[str, Any]) -> None:
    local, ray = _runs(report, "local"), _runs(report, "ray")
    assert list(ray) == list(local)
    for label in local:
        assert ray[label]["outputs"] == local[label]["outputs"], label
        assert ray[label]["statuses"] == local[label]["statuses"], label
        assert ray[label]["meta"]["executor"] == "ray", label
    assert len(local["spaceflights"]["outputs"]) == 12


def test_a_parameter_bound_to_another_runs_output_runs_on_ray(report: dict[str, Any]) -> None:
    ray = _runs(report, "ray")
    science = ray["data_science"]
    assert science["meta"]["inputs_from"] == ray["partial"]["meta"]["inputs_from"]
    assert science["statuses"] == {
        "0_model_input_table": "cached",
        "1_split_data": "succeeded",
        "2_train_model": "succeeded",
        "3_evaluate_model": "succeeded",
    }
    whole = ray["spaceflights"]["outputs"]
    assert science["outputs"]["3_evaluate_model.return"] == whole["8_evaluate_model.return"]


def test_a_partial_run_runs_its_steps_on_ray(report: dict[str, Any]) -> None:
    partial = _runs(report, "ray")["partial"]
    assert partial["statuses"] == {
        "5_create_model_input_table": "cached",
        "6_split_data": "succeeded",
        "7_train_model": "succeeded",
    }
    assert partial["meta"]["inputs_from"]


def test_named_calls_keep_their_names_on_ray(report: dict[str, Any]) -> None:
    named = _runs(report, "ray")["named"]["statuses"]
    assert list(named) == [
        "0_make",
        "strong",
        "weak",
        "shifted",
        *(f"shifted[{i}]" for i in range(5)),
    ]
    assert set(named.values()) == {"succeeded"}
