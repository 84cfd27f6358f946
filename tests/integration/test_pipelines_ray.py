"""The ports (Kedro's spaceflights, Metaflow's 02-statistics and 04-playlist-plus) on a real
Ray cluster give the local executor's artifacts, hash for hash: the whole workflows, a
workflow parameter bound to another run's output (``--from RUN``), a partial run
(``--from-steps``/``--to-steps``) and named calls (``step.named(...)``).

The cluster (one node) and the runs live in pipelines_ray_scenario.py, run inside a
loopback-only network namespace with token authentication, as test_ray.py does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.namespace import require_namespace, run_scenario, scenario_env, scratch_folder

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.ray]

SCENARIO = Path(__file__).with_name("pipelines_ray_scenario.py")
PORT = 6381


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    require_namespace()
    with scratch_folder("qfports") as work:
        yield run_scenario(SCENARIO, str(work), str(PORT), env=scenario_env(work))


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
