"""Small checks over a graph; each raises ``GraphValidationError`` naming the culprit."""

from __future__ import annotations

from collections.abc import Callable

from qflow.errors import GraphValidationError
from qflow.graph.model import Graph

RESERVED_NAMES = frozenset({"run", "runs", "config", "cfg", "qflow"})


def check_unique_names(graph: Graph) -> None:
    seen: set[str] = set()
    for node in graph.nodes:
        if node.name in seen:
            raise GraphValidationError(
                f"Workflow {graph.workflow!r} has two steps named {node.name!r}. "
                "Step run names must be unique."
            )
        seen.add(node.name)


def check_edges_known(graph: Graph) -> None:
    names = graph.by_name
    for edge in graph.edges:
        for end in (edge.source, edge.target):
            if end not in names:
                raise GraphValidationError(
                    f"Workflow {graph.workflow!r} has an edge to unknown step {end!r}."
                )


def check_acyclic(graph: Graph) -> None:
    order = graph.topological_order()
    if len(order) != len(graph.nodes):
        stuck = sorted(set(graph.by_name) - set(order))
        raise GraphValidationError(
            f"Workflow {graph.workflow!r} has a cycle through {', '.join(stuck)}. "
            "A step cannot depend on its own output."
        )


def check_step_names(graph: Graph) -> None:
    for node in graph.nodes:
        if node.step in RESERVED_NAMES:
            where = f"\n  at {node.location}" if node.location else ""
            raise GraphValidationError(
                f"Step name {node.step!r} is reserved ({', '.join(sorted(RESERVED_NAMES))}). "
                f"Hint: rename the function or pass @qf.step(name=...).{where}"
            )


CHECKS: tuple[Callable[[Graph], None], ...] = (
    check_unique_names,
    check_edges_known,
    check_acyclic,
    check_step_names,
)


def validate(graph: Graph) -> Graph:
    """Run every check; return the graph so calls can be chained."""
    for check in CHECKS:
        check(graph)
    return graph
