"""Text pictures of a graph: Mermaid and Graphviz DOT."""

from __future__ import annotations

import json
from collections.abc import Mapping

from qflow.graph.model import EdgeKind, Graph, Node, NodeKind

STATUS_COLOURS = {
    "succeeded": "#b7e4c7",
    "cached": "#cfe2ff",
    "failed": "#f8d7da",
    "running": "#fff3cd",
    "skipped": "#e9ecef",
    "pending": "#ffffff",
}


def _mermaid_id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def _label(node: Node) -> str:
    """The run name, with the step it calls when the call was given a name of its own
    (``strong (fit)``), and ``map`` for a mapped step."""
    notes = ([node.step] if node.named else []) + (["map"] if node.kind is NodeKind.MAP else [])
    return f"{node.name} ({', '.join(notes)})" if notes else node.name


def to_mermaid(graph: Graph, status: Mapping[str, str] | None = None) -> str:
    lines = ["flowchart TD"]
    for node in graph.nodes:
        label = _label(node).replace('"', "'")
        if node.kind is NodeKind.MAP:
            lines.append(f'    {_mermaid_id(node.name)}[["{label}"]]')
        else:
            lines.append(f'    {_mermaid_id(node.name)}["{label}"]')
    for edge in graph.edges:
        source, target = _mermaid_id(edge.source), _mermaid_id(edge.target)
        if edge.kind is EdgeKind.CONDITION:
            lines.append(f"    {source} -.->|when {edge.output}| {target}")
            continue
        label = edge.target_arg.replace('"', "'").replace("|", "/")
        lines.append(f"    {source} -->|{label}| {target}")
    for name, state in (status or {}).items():
        if name in graph.by_name and state in STATUS_COLOURS:
            lines.append(f"    style {_mermaid_id(name)} fill:{STATUS_COLOURS[state]}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph, status: Mapping[str, str] | None = None) -> str:
    lines = [
        f"digraph {json.dumps(graph.workflow)} {{",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    for node in graph.nodes:
        fill = STATUS_COLOURS.get((status or {}).get(node.name, ""), "#ffffff")
        peripheries = ", peripheries=2" if node.kind is NodeKind.MAP else ""
        label = f", label={json.dumps(_label(node))}" if node.named else ""
        lines.append(
            f"    {json.dumps(node.name)} [fillcolor={json.dumps(fill)}{peripheries}{label}];"
        )
    for edge in graph.edges:
        if edge.kind is EdgeKind.CONDITION:
            attrs = f"label={json.dumps('when ' + edge.output)}, style=dashed"
        else:
            attrs = f"label={json.dumps(edge.target_arg)}"
        lines.append(f"    {json.dumps(edge.source)} -> {json.dumps(edge.target)} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
