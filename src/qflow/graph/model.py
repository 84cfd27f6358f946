"""Frozen value objects for a traced workflow: what runs, in which order, fed by what."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property


class NodeKind(Enum):
    """A plain step call, or a step mapped over a list known only at run time."""

    STEP = "step"
    MAP = "map"


class EdgeKind(Enum):
    """Data flows into an argument; a condition decides whether the target runs."""

    DATA = "data"
    CONDITION = "condition"


@dataclass(frozen=True)
class Edge:
    """Output ``output`` of node ``source`` feeds argument ``target_arg`` of node ``target``
    (or, for a condition edge, decides whether ``target`` runs)."""

    source: str
    output: str
    target: str
    target_arg: str
    kind: EdgeKind = EdgeKind.DATA


@dataclass(frozen=True)
class Node:
    """One call of a step inside a workflow.

    ``name`` is the run name: the position in call order and the step's name (``3_fit``), or
    the name the user gave the call (``fit.named("train_a")``, ``named`` true), which then is
    its stable key across runs however the calls are reordered. ``params`` holds the constant
    arguments as display strings; the values themselves stay with the traced workflow,
    because the graph is pure data.
    """

    name: str
    step: str
    position: int
    outputs: tuple[str, ...]
    params: tuple[tuple[str, str], ...] = ()
    location: str = ""
    group: str = ""
    kind: NodeKind = NodeKind.STEP
    map_over: str | None = None
    max_parallel: int | None = None
    named: bool = False


@dataclass(frozen=True)
class Graph:
    """A directed acyclic graph of step calls, in the order they were traced."""

    workflow: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = field(default=())

    @cached_property
    def by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def upstream(self) -> dict[str, tuple[str, ...]]:
        """Names of the nodes each node reads from, without duplicates, in trace order."""
        deps: dict[str, list[str]] = {node.name: [] for node in self.nodes}
        for edge in self.edges:
            if edge.source not in deps[edge.target]:
                deps[edge.target].append(edge.source)
        return {name: tuple(sources) for name, sources in deps.items()}

    @cached_property
    def downstream(self) -> dict[str, tuple[str, ...]]:
        """Names of the nodes that read each node's outputs."""
        users: dict[str, list[str]] = {node.name: [] for node in self.nodes}
        for edge in self.edges:
            if edge.target not in users[edge.source]:
                users[edge.source].append(edge.target)
        return {name: tuple(targets) for name, targets in users.items()}

    def inputs_of(self, name: str) -> tuple[Edge, ...]:
        return tuple(edge for edge in self.edges if edge.target == name)

    def conditions_of(self, name: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.target == name and e.kind is EdgeKind.CONDITION)

    def topological_order(self) -> tuple[str, ...]:
        """Kahn's algorithm, ties broken by trace position, so the order is deterministic."""
        remaining = {name: len(sources) for name, sources in self.upstream.items()}
        ready = [node.name for node in self.nodes if remaining[node.name] == 0]
        order: list[str] = []
        position = {node.name: node.position for node in self.nodes}
        while ready:
            ready.sort(key=position.__getitem__)
            current = ready.pop(0)
            order.append(current)
            for target in self.downstream[current]:
                remaining[target] -= 1
                if remaining[target] == 0:
                    ready.append(target)
        return tuple(order)

    def levels(self) -> tuple[tuple[str, ...], ...]:
        """Nodes grouped by depth: every node in a level can run at the same time."""
        depth: dict[str, int] = {}
        for name in self.topological_order():
            depth[name] = 1 + max((depth[s] for s in self.upstream[name]), default=-1)
        grouped: dict[int, list[str]] = {}
        for name, level in depth.items():
            grouped.setdefault(level, []).append(name)
        return tuple(tuple(grouped[level]) for level in sorted(grouped))

    def branches(self) -> tuple[frozenset[str], ...]:
        """Weakly connected components: independent branches that share no data."""
        parent = {node.name: node.name for node in self.nodes}

        def find(name: str) -> str:
            while parent[name] != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        for edge in self.edges:
            parent[find(edge.source)] = find(edge.target)
        groups: dict[str, set[str]] = {}
        for node in self.nodes:
            groups.setdefault(find(node.name), set()).add(node.name)
        return tuple(frozenset(g) for g in sorted(groups.values(), key=lambda g: min(g)))

    def ancestors(self, name: str) -> frozenset[str]:
        seen: set[str] = set()
        stack = list(self.upstream[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.upstream[current])
        return frozenset(seen)

    def descendants(self, name: str) -> frozenset[str]:
        seen: set[str] = set()
        stack = list(self.downstream[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.downstream[current])
        return frozenset(seen)
