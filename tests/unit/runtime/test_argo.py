"""The Argo export: one DAG task per node, dependencies equal to the graph's edges, pods that
call qflow run-step; checked against Argo's Workflow model and by running the tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import QFlowError
from qflow.runtime.argo import argo_manifest, export_argo, task_name
from qflow.runtime.remote import WorkflowSpec, load_spec, ref_from_json, run_step
from qflow.store.artifacts import ArtifactStore
from tests.fixtures import ray_workflows as rw
from tests.fixtures import workflows as wf


@pytest.fixture
def argo_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "argoproj"\n'
        '[tool.qflow]\nworkflow-modules = ["tests.fixtures.workflows", '
        '"tests.fixtures.ray_workflows"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "diamond.yaml").write_text("n: 4\nfactor: 0.5\n")
    (project / "conf" / "fan_out.yaml").write_text("n: 5\npause: 0.0\n")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3]))
    return project


def _tasks(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    dag = manifest["spec"]["templates"][0]
    assert dag["name"] == manifest["spec"]["entrypoint"]
    return {task["name"]: task for task in dag["dag"]["tasks"]}


@pytest.mark.parametrize("name", ["diamond", "fan_out"])
def test_dag_dependencies_are_the_graph_edges(argo_project: Path, name: str) -> None:
    manifest = export_argo(name, [], image="reg/proj:1", artifacts_url="s3://b/qflow",
                           project_dir=str(argo_project))  # fmt: skip
    traced = {"diamond": wf.diamond, "fan_out": rw.fan_out}[name].trace(
        {"diamond": {"n": 4, "factor": 0.5}, "fan_out": {"n": 5, "pause": 0.0}}[name]
    )
    tasks = _tasks(manifest)
    assert set(tasks) == {task_name(n.name) for n in traced.graph.nodes}
    dependencies = {(d, t) for t, task in tasks.items() for d in task.get("dependencies", [])}
    assert dependencies == {(task_name(e.source), task_name(e.target)) for e in traced.graph.edges}
    templates = {t["name"]: t for t in manifest["spec"]["templates"][1:]}
    for task in tasks.values():
        container = templates[task["template"]]["container"]
        assert container["image"] == "reg/proj:1"
        assert container["command"] == ["qflow", "run-step"]
        assert {"name": "QFLOW_ARTIFACTS", "value": "s3://b/qflow"} in container["env"]


def test_manifest_matches_argo_workflow_model(argo_project: Path) -> None:
    models = pytest.importorskip("hera.workflows.models")
    manifest = export_argo(
        "fan_out",
        [],
        image="img",
        artifacts_url="s3://b/q",
        project_dir=str(argo_project),
        env={"AWS_REGION": "eu-west-1"},
    )
    parsed = models.Workflow.model_validate(manifest)
    # Unknown keys would be dropped by the model: the round trip must give the manifest back.
    assert parsed.model_dump(by_alias=True, exclude_none=True) == manifest
    describe = next(t for t in manifest["spec"]["templates"] if t["name"] == "s3-describe")
    assert describe["container"]["resources"] == {"requests": {"cpu": "1", "memory": "52428800"}}


def _run_like_argo(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run each task's pod command in dependency order, with Argo's substitutions."""
    results: dict[str, dict[str, Any]] = {}
    for name, task in _tasks(manifest).items():
        params = {p["name"]: p["value"] for p in task["arguments"]["parameters"]}
        upstream = params["upstream"]
        for dep in task.get("dependencies", []):
            upstream = upstream.replace(
                f"{{{{tasks.{dep}.outputs.parameters.result}}}}", json.dumps(results[dep])
            )
        spec = load_spec(params["spec"].replace("{{workflow.name}}", "argo-test"))
        spec["upstream"] = json.loads(upstream)
        results[name] = run_step(spec)
        assert results[name]["status"] == "succeeded", results[name]["error"]
    return results


def test_running_the_tasks_gives_the_local_result(argo_project: Path, tmp_path: Path) -> None:
    store = tmp_path / "shared-artifacts"
    manifest = export_argo("fan_out", [], image="img", artifacts_url=str(store),
                           project_dir=str(argo_project))  # fmt: skip
    results = _run_like_argo(manifest)
    local = qf.run(rw.fan_out, {"n": 5, "pause": 0.0}, project_dir=argo_project)
    for node in ("1_square", "2_add_up", "3_describe"):
        ref = results[task_name(node)]["outputs"]["return"]
        assert ref["key"] == local.step(node).outputs["return"].key
    describe = ArtifactStore(str(store)).get(ref_from_json(ref))
    assert describe == {"total": 30, "digits": 2}


def test_cli_writes_the_manifest(argo_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = argo_project / "manifest.yaml"
    code = run_cli(["export", "argo", "diamond", "n=2", "--image", "img:2", "-o", str(out),
                    "--artifacts", "gs://b/q", "-C", str(argo_project)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest = yaml.safe_load(out.read_text())
    assert manifest["kind"] == "Workflow"
    spec = json.loads(_tasks(manifest)["s0-load"]["arguments"]["parameters"][0]["value"])
    assert spec["config"] == {"n": 2, "factor": 0.5}
    assert spec["workflow_ref"] == "tests.fixtures.workflows:diamond"


def test_export_refuses_what_it_cannot_express(argo_project: Path) -> None:
    @qf.workflow
    def gated() -> Any:
        xs = wf.load(3)
        with qf.when(wf.total(xs)):
            wf.double(xs)

    with pytest.raises(QFlowError, match=r"uses qf\.when"):
        argo_manifest(gated.trace({}), WorkflowSpec("m:gated", {}), image="i", artifacts_url="u")
    with pytest.raises(QFlowError, match="needs an artifact store"):
        export_argo("diamond", [], image="i", project_dir=str(argo_project))
