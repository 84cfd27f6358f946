"""Export a traced workflow as an Argo Workflows manifest whose pods call ``qflow run-step``.

One DAG task per graph node; a task depends on the nodes whose outputs it reads. Each pod
runs ``qflow run-step SPEC --upstream RESULTS -o /tmp/qflow-result.json`` in the given image:
the spec names the workflow, the resolved config and the node, the upstream tasks' results
(Argo output parameters) give its input refs, and its own result becomes its output parameter.
A mapped step runs all its items in its pod, one after another. Data goes through the
artifact store URL, which every pod must reach (S3, GCS, a shared volume).

The run is not recorded in a metadata store: no coordinator runs alongside the pods. Each
task's result (output hashes, metrics, logs) stays in Argo's outputs.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from qflow.errors import QFlowError
from qflow.graph.model import EdgeKind

if TYPE_CHECKING:
    from qflow.dsl.tracing import TracedWorkflow
    from qflow.runtime.remote import WorkflowSpec

RESULT_PATH = "/tmp/qflow-result.json"
ENTRYPOINT = "dag"


def task_name(node: str) -> str:
    """An Argo task name for a node: ``0_load`` becomes ``s0-load``."""
    return "s" + re.sub(r"[^a-z0-9-]+", "-", node.lower()).strip("-")


def _resources(resources: dict[str, float]) -> dict[str, Any]:
    requests: dict[str, Any] = {}
    for key, value in resources.items():
        if key in ("cpus", "num_cpus"):
            requests["cpu"] = str(value)
        elif key in ("gpus", "num_gpus"):
            requests["nvidia.com/gpu"] = str(int(value))
        elif key == "memory":
            requests["memory"] = str(int(value))
    return {"requests": requests} if requests else {}


def argo_manifest(
    traced: TracedWorkflow,
    workflow: WorkflowSpec,
    *,
    image: str,
    artifacts_url: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Argo ``Workflow`` manifest (a dict, ready for YAML) running ``traced``."""
    graph = traced.graph
    workflow.check_importable("argo")
    conditions = [e for e in graph.edges if e.kind is EdgeKind.CONDITION]
    if conditions:
        raise QFlowError(
            f"Workflow {graph.workflow!r} uses qf.when (on {conditions[0].source}), which the "
            "Argo export does not support yet. Hint: run it with qflow run, or move the "
            "condition into a step."
        )
    variables = [{"name": k, "value": v} for k, v in sorted((env or {}).items())]
    tasks, templates = [], []
    for node in graph.nodes:
        name = task_name(node.name)
        sources = sorted(graph.upstream[node.name], key=lambda n: graph.by_name[n].position)
        spec = {
            "version": 1,
            "workflow_ref": workflow.ref,
            "config": dict(workflow.config),
            "project_dir": "",
            "node": node.name,
            "item": None,
            "inputs": {},
            "run_id": "{{workflow.name}}",
            "step_run_id": node.position,
            "artifacts_url": artifacts_url,
        }
        upstream = ",".join(
            f"{{{{tasks.{task_name(s)}.outputs.parameters.result}}}}" for s in sources
        )
        task: dict[str, Any] = {
            "name": name,
            "template": name,
            "arguments": {
                "parameters": [
                    {"name": "spec", "value": json.dumps(spec, sort_keys=True)},
                    {"name": "upstream", "value": f"[{upstream}]"},
                ]
            },
        }
        if sources:
            task["dependencies"] = [task_name(s) for s in sources]
        tasks.append(task)
        container: dict[str, Any] = {
            "image": image,
            "command": ["qflow", "run-step"],
            "args": [
                "{{inputs.parameters.spec}}",
                "--upstream",
                "{{inputs.parameters.upstream}}",
                "--output",
                RESULT_PATH,
            ],
            "env": [{"name": "QFLOW_ARTIFACTS", "value": artifacts_url}, *variables],
        }
        options = traced.calls[node.name].step.options
        resources = _resources(dict(options.resources))
        if resources:
            container["resources"] = resources
        template: dict[str, Any] = {
            "name": name,
            "inputs": {"parameters": [{"name": "spec"}, {"name": "upstream"}]},
            "outputs": {"parameters": [{"name": "result", "valueFrom": {"path": RESULT_PATH}}]},
            "container": container,
        }
        if isinstance(options.timeout, float):
            template["activeDeadlineSeconds"] = int(options.timeout * (options.retries + 1)) + 60
        templates.append(template)
    slug = re.sub(r"[^a-z0-9-]+", "-", graph.workflow.lower()).strip("-") or "qflow"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{slug}-", "labels": {"qflow/workflow": slug}},
        "spec": {
            "entrypoint": ENTRYPOINT,
            "templates": [{"name": ENTRYPOINT, "dag": {"tasks": tasks}}, *templates],
        },
    }


def export_argo(
    workflow: str,
    overrides: list[str],
    *,
    image: str,
    artifacts_url: str | None = None,
    project_dir: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Trace ``workflow`` with the project's config plus ``overrides`` and export it."""
    import os
    from pathlib import Path

    from qflow.config.loader import load_config
    from qflow.config.project import find_project
    from qflow.runtime.discovery import load_workflow
    from qflow.runtime.launch import _workflow_ref
    from qflow.runtime.remote import WorkflowSpec

    project = find_project(Path(project_dir) if project_dir else None)
    wf = load_workflow(workflow, project)
    config = load_config(wf.name, overrides, project.conf_dir)
    url = artifacts_url or os.environ.get("QFLOW_ARTIFACTS")
    if not url:
        raise QFlowError(
            "The Argo manifest needs an artifact store every pod can reach. Hint: pass "
            "--artifacts s3://bucket/prefix (or set QFLOW_ARTIFACTS)."
        )
    spec = WorkflowSpec(_workflow_ref(wf), config)
    return argo_manifest(wf.trace(config), spec, image=image, artifacts_url=url, env=env)
