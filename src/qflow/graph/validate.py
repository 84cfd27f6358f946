"""Small checks over a graph; each raises ``GraphValidationError`` naming the culprit."""

from __future__ import annotations

import re
from collections.abc import Callable

from qflow.errors import GraphValidationError, InvalidNameError
from qflow.graph.model import Graph

RESERVED_NAMES = frozenset({"run", "runs", "config", "cfg", "qflow"})
CALL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
"""A name given to a step call: it is typed on command lines (``--from-steps train_a``,
``qflow logs RUN train_a``) and written after a run id and before an output
(``RUN/train_a.return``), so no dots, slashes, commas or brackets; it starts with a letter so
it never looks like a numbered run name (``3_fit``)."""


def check_call_name(name: object, location: str = "") -> str:
    """``name`` if it can name a step call, else ``InvalidNameError`` saying the rule."""
    if isinstance(name, str) and CALL_NAME.fullmatch(name) and name not in RESERVED_NAMES:
        return name
    where = f"\n  at {location}" if location else ""
    if isinstance(name, str) and name in RESERVED_NAMES:
        rule = f"it is reserved ({', '.join(sorted(RESERVED_NAMES))})"
    else:
        rule = (
            "a call name starts with a letter and holds only letters, digits, '_' and "
            "'-' (at most 100 characters)"
        )
    raise InvalidNameError(
        f"Step call name {name!r} is not allowed: {rule}.\n"
        f"Hint: for example {_suggest(name)!r}.{where}"
    )


def _suggest(name: object) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_-")[:100] or "call"
    return text if text[0].isalpha() and text not in RESERVED_NAMES else f"call_{text}"[:100]


def check_unique_names(graph: Graph) -> None:
    seen: dict[str, str] = {}
    for node in graph.nodes:
        if node.name in seen:
            first = f"\n  first at {seen[node.name]}" if seen[node.name] else ""
            again = f"\n  again at {node.location}" if node.location else ""
            raise GraphValidationError(
                f"Workflow {graph.workflow!r} has two step calls named {node.name!r}. "
                "Step run names must be unique in a run.\nHint: give each call its own "
                "name; a helper or sub-workflow called twice can take the name as a "
                f"parameter.{first}{again}"
            )
        seen[node.name] = node.location


def check_call_names_are_not_steps(graph: Graph) -> None:
    """A call name that is also a step's name would make ``--from-steps NAME`` and
    ``qflow logs RUN NAME`` ambiguous (the call, or every call of the step?)."""
    steps = {node.step for node in graph.nodes}
    for node in graph.nodes:
        if node.named and node.name in steps:
            where = f"\n  at {node.location}" if node.location else ""
            raise GraphValidationError(
                f"Step call name {node.name!r} in workflow {graph.workflow!r} is also the name "
                f"of a step, so --from-steps {node.name} could mean either.\n"
                f"Hint: name the call after its role, e.g. {node.name + '_main'!r}.{where}"
            )


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
    check_call_names_are_not_steps,
    check_edges_known,
    check_acyclic,
    check_step_names,
)


def validate(graph: Graph) -> Graph:
    """Run every check; return the graph so calls can be chained."""
    for check in CHECKS:
        check(graph)
    return graph
