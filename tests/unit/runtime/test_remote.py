"""The worker entry point: task specs in, JSON results out, the same as in-process runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import qflow as qf
from qflow.errors import QFlowError
from qflow.runtime.remote import load_spec, ref_from_json, ref_to_json, run_step
from qflow.store.artifacts import ArtifactStore
from tests.fixtures import spaceflights

ROOT = Path(__file__).resolve().parents[3]
REF = "tests.fixtures.ray_workflows:fan_out"


def _spec(tmp_path: Path, node: str, **extra: Any) -> dict[str, Any]:
    return {
        "workflow_ref": REF,
        "config": {"n": 4, "pause": 0.0},
        "node": node,
        "run_id": "r1",
        "step_run_id": 7,
        "artifacts_url": str(tmp_path / "artifacts"),
        **extra,
    }


def test_run_step_runs_one_node_and_returns_metadata(tmp_path: Path) -> None:
    result = run_step(_spec(tmp_path, "0_numbers"))
    assert result["status"] == "succeeded"
    assert result["step_run_id"] == 7
    ref = ref_from_json(result["outputs"]["return"])
    assert ArtifactStore(str(tmp_path / "artifacts")).get(ref) == [0, 1, 2, 3]


def test_one_mapped_item_and_its_records(tmp_path: Path) -> None:
    numbers = run_step(_spec(tmp_path, "0_numbers"))
    store = ArtifactStore(str(tmp_path / "artifacts"))
    item = store.put(3, inline_max=1024)
    spec = _spec(
        tmp_path,
        "1_square",
        item=3,
        inputs={
            "0_numbers.return": numbers["outputs"]["return"],
            "1_square[3].item": {**item.to_dict(), "inline": "Mw=="},
        },
    )
    result = run_step(spec)
    assert result["status"] == "succeeded", result["error"]
    assert store.get(ref_from_json(result["outputs"]["return"])) == 9
    assert "node=driver" in result["stdout"]
    (row,) = result["records"]["metrics"]
    assert row[:4] == ["r1", 7, "x", 3.0]


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("qflow")), "run-step", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_cli_chains_nodes_through_upstream_results(tmp_path: Path) -> None:
    first = _cli(json.dumps(_spec(tmp_path, "0_numbers")))
    assert first.returncode == 0, first.stderr
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(_spec(tmp_path, "1_square")))
    mapped = _cli("--spec-file", str(spec_file), "--upstream", first.stdout)
    assert mapped.returncode == 0, mapped.stderr
    assert mapped.stderr.count("node=driver") == 4
    out = tmp_path / "result.json"
    total = _cli("-f", "-", "-u", mapped.stdout, "-o", str(out),
                 stdin=json.dumps(_spec(tmp_path, "2_add_up")))  # fmt: skip
    assert total.returncode == 0, total.stderr
    result = json.loads(out.read_text())
    assert json.loads(total.stdout) == result
    ref = ref_from_json(result["outputs"]["return"])
    assert ArtifactStore(str(tmp_path / "artifacts")).get(ref) == 0 + 1 + 4 + 9


def test_cli_failed_step_exits_1_with_a_result(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "0_sleepy")
    spec["workflow_ref"] = "tests.fixtures.ray_workflows:policies"
    spec["config"] = {}
    done = _cli(json.dumps(spec))
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    assert "exceeded its timeout" in result["error"]


def test_bad_specs_are_explained(tmp_path: Path) -> None:
    with pytest.raises(QFlowError, match="not valid JSON"):
        load_spec("{nope")
    with pytest.raises(QFlowError, match="lacks 'workflow_ref'"):
        load_spec("{}")
    with pytest.raises(QFlowError, match="Step '9_missing' is not in workflow"):
        run_step(_spec(tmp_path, "9_missing"))
    with pytest.raises(QFlowError, match="spec version 99"):
        run_step(_spec(tmp_path, "0_numbers", version=99))


def test_local_workflows_cannot_go_remote(project: Path) -> None:
    pytest.importorskip("ray")

    @qf.workflow
    def inner() -> Any:
        return None

    with pytest.raises(QFlowError, match="defined inside a function"):
        qf.run(inner, {}, project_dir=project, executor="ray", executor_options={"address": "x"})


def test_refs_survive_the_json_round_trip_with_every_field(tmp_path: Path) -> None:
    import dataclasses

    from qflow.runtime.remote import ref_to_json

    store = ArtifactStore(str(tmp_path / "artifacts"))
    for ref in (store.put([1, 2], inline_max=1024), store.put(list(range(5000)))):
        back = ref_from_json(json.loads(json.dumps(ref_to_json(ref))))
        assert dataclasses.asdict(back) == dataclasses.asdict(ref)


def test_metrics_fall_back_to_the_result_when_the_live_channel_fails(tmp_path: Path) -> None:
    """A Ray task whose metrics channel is gone loses no point: the first batch the channel
    refuses, and every later one, travel with the task's result."""
    from qflow.runtime.remote import Records
    from qflow.store.artifacts import ArtifactStore

    sent: list[list[Any]] = []

    def channel(rows: list[Any]) -> None:
        if sent:
            raise ConnectionError("the channel's actor is gone")
        sent.append(rows)

    records = Records()
    sinks = records.sinks(ArtifactStore(str(tmp_path / "a")), channel)
    batches = [[("r", 1, "loss", float(i), i, 0.0)] for i in range(3)]
    for batch in batches:
        sinks.metrics(batch)
    assert sent == [batches[0]]
    assert records.metrics == [*batches[1], *batches[2]]


def test_a_parameter_bound_to_another_runs_output_is_traced_as_the_driver_did(
    tmp_path: Path,
) -> None:
    """``qflow run data_science --from RUN`` on a remote worker: the spec names the bound
    parameter, the worker traces it as an input call of its own (``0_model_input_table``)
    and the step that reads it takes the ref the task carries, without any config value."""
    store = ArtifactStore(str(tmp_path / "artifacts"))
    columns = {name: [1.0] * 20 for name in spaceflights.MODEL_OPTIONS["features"]}
    table = store.put(pd.DataFrame({**columns, "price": [float(i) for i in range(20)]}))
    spec = {
        "workflow_ref": "tests.fixtures.spaceflights:data_science",
        "config": {"test_size": 0.25},
        "bound_parameters": ["model_input_table"],
        "node": "1_split_data",
        "run_id": "r1",
        "step_run_id": 3,
        "artifacts_url": str(tmp_path / "artifacts"),
        "inputs": {"0_model_input_table.return": ref_to_json(table)},
    }
    result = run_step(spec)
    assert result["status"] == "succeeded", result["error"]
    assert len(store.get(ref_from_json(result["outputs"]["0"]))) == 15

    with pytest.raises(QFlowError, match="needs a value for 'model_input_table'"):
        run_step({**spec, "bound_parameters": []})
