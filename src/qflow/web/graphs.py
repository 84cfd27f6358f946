"""A run's workflow graph with each step's status, as Mermaid, DOT or SVG.

The graph is traced again from the run's workflow and recorded config when the server runs
inside the project that declares it (``qflow ui``); otherwise (or if tracing fails) it is
rebuilt from the lineage the run recorded: an edge wherever a step read an artifact an earlier
step of the run wrote. Workflow code is only ever imported from the project's declared
workflows, never from a module or file named in run metadata.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from qflow.graph.model import Edge, Graph, Node
from qflow.graph.render import STATUS_COLOURS, to_dot, to_mermaid
from qflow.store.metadata.records import StepStatus

__all__ = ["describe", "from_lineage", "run_graph", "step_status", "to_dot", "to_svg", "traced"]

if TYPE_CHECKING:
    from pathlib import Path

    from qflow.store.metadata.records import Run, StepRun

SVG_TIMEOUT = 20.0


def from_lineage(workflow: str, steps: list[StepRun]) -> Graph:
    """Nodes are the run's step runs; edges follow artifacts from writer to reader."""
    nodes = []
    producers: dict[str, list[tuple[int, str, str]]] = {}
    for step in steps:
        nodes.append(Node(step.name, step.step, step.position, tuple(step.outputs)))
        for output, ref in step.outputs.items():
            producers.setdefault(ref.key, []).append((step.position, step.name, output))
    edges = []
    for step in steps:
        for argument, ref in step.inputs.items():
            earlier = [p for p in producers.get(ref.key, []) if p[0] < step.position]
            if earlier:
                _, source, output = max(earlier)
                edges.append(Edge(source, output, step.name, argument))
    return Graph(workflow, tuple(nodes), tuple(dict.fromkeys(edges)))


def traced(project_dir: Path, run: Run) -> Graph | None:
    """The graph traced from the project's workflow of this name with the run's config (and
    the workflow parameters it took from an earlier run, as ``qflow run --from`` traced it)."""
    try:
        from qflow.config.project import find_project
        from qflow.runtime.discovery import project_workflows

        workflows = project_workflows(find_project(project_dir))
        workflow = workflows.get(run.workflow)
        if workflow is None:
            return None
        return workflow.trace(run.config, inputs=run.meta.get("inputs", ())).graph
    except Exception:  # user code: any failure falls back to the recorded lineage
        return None


def run_graph(run: Run, steps: list[StepRun], project_dir: Path | None) -> tuple[Graph, str]:
    """The graph and where it came from ("traced" or "lineage")."""
    if project_dir is not None:
        graph = traced(project_dir, run)
        if graph is not None:
            return graph, "traced"
    return from_lineage(run.workflow, steps), "lineage"


def describe(run: Run, steps: list[StepRun], project_dir: Path | None) -> dict[str, Any]:
    graph, source = run_graph(run, steps, project_dir)
    status = step_status(graph, steps)
    return {
        "run_id": run.id,
        "workflow": run.workflow,
        "source": source,
        "nodes": [
            {"name": n.name, "step": n.step, "kind": n.kind.value, "status": status.get(n.name)}
            for n in graph.nodes
        ],
        "edges": [
            {
                "source": e.source,
                "target": e.target,
                "output": e.output,
                "argument": e.target_arg,
                "kind": e.kind.value,
            }
            for e in graph.edges
        ],
        "mermaid": to_mermaid(graph, status),
        "dot": to_dot(graph, status),
        "colours": STATUS_COLOURS,
    }


_WORST_FIRST = (
    StepStatus.FAILED,
    StepStatus.KILLED,
    StepStatus.RUNNING,
    StepStatus.PENDING,
    StepStatus.SKIPPED,
    StepStatus.CACHED,
    StepStatus.SUCCEEDED,
)


def step_status(graph: Graph, steps: list[StepRun]) -> dict[str, StepStatus]:
    """Status per graph node; a mapped node takes the worst of its items."""
    status = {s.name: s.status for s in steps}
    for node in graph.nodes:
        if node.name in status:
            continue
        items = [s.status for s in steps if s.name.startswith(node.name + "[")]
        if items:
            status[node.name] = min(items, key=_WORST_FIRST.index)
    return status


def to_svg(dot_source: str) -> bytes | None:
    """Graphviz's SVG of ``dot_source``; None when ``dot`` is not installed or fails."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        result = subprocess.run(
            [dot, "-Tsvg"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=SVG_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None
