"""The workflow graph as pure data (stdlib only): nodes, edges, validation, fingerprints."""

from qflow.graph.model import Edge, EdgeKind, Graph, Node, NodeKind

__all__ = ["Edge", "EdgeKind", "Graph", "Node", "NodeKind"]
