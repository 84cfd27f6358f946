"""Mapped steps: one call per item of a list, collected back into one list per output.

The scheduler (item by item, in parallel) and the remote worker (a whole map in one pod of
an exported manifest) both use these functions, so items are named, stored, bound, caught and
collected the same way on every executor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from qflow.dsl.tracing import StepOutput, substitute
from qflow.dsl.values import Failed
from qflow.errors import QFlowError, QFlowInternalError
from qflow.runtime.task import INLINE_MAX, handle_key

if TYPE_CHECKING:
    from qflow.graph.model import Node
    from qflow.store.artifacts import ArtifactRef, ArtifactStore


def mapped_parameter(node: Node) -> str:
    """The parameter a map node's items go to."""
    if node.map_over is None:
        raise QFlowInternalError(f"{node.name} is not a mapped step")
    return node.map_over


def item_name(node: str, index: int) -> str:
    """The name of one item's step run: ``3_evaluate[7]``."""
    return f"{node}[{index}]"


def item_arguments(node: Node, arguments: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The arguments of item ``index``: the mapped parameter bound to that item's value."""
    bound = dict(arguments)
    bound[mapped_parameter(node)] = StepOutput(item_name(node.name, index), "item")
    return bound


def expand(
    node: Node,
    arguments: Mapping[str, Any],
    lookup: Callable[[StepOutput], Any],
    artifacts: ArtifactStore,
) -> dict[str, ArtifactRef]:
    """Store each item of the list ``node`` maps over; returns their refs by handle key, in
    item order. The list is the mapped argument with upstream handles looked up."""
    items = substitute(arguments[mapped_parameter(node)], lookup)
    if not isinstance(items, list | tuple):
        raise QFlowError(
            f"{node.name} maps over {node.map_over!r}, which is a {type(items).__name__}, "
            "not a list. Hint: make the upstream step return a list."
        )
    return {
        handle_key(item_name(node.name, index), "item"): artifacts.put(
            item, name=item_name(node.name, index), inline_max=INLINE_MAX
        )
        for index, item in enumerate(items)
    }


def caught(node: Node, error: str, artifacts: ArtifactStore) -> dict[str, ArtifactRef]:
    """Outputs standing in for a failure of a ``catch=True`` step or item: a ``qf.Failed``
    per output, which downstream steps receive instead of a value."""
    failure = Failed(node.name, error)
    return {output: artifacts.put(failure, inline_max=INLINE_MAX) for output in node.outputs}


def collect(
    node: Node, item_outputs: list[dict[str, ArtifactRef]], artifacts: ArtifactStore
) -> dict[str, ArtifactRef]:
    """The map's outputs: per output, the list of the items' values in item order."""
    return {
        output: artifacts.put_collection([outputs[output] for outputs in item_outputs])
        for output in node.outputs
    }
