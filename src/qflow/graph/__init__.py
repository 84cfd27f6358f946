"""The workflow graph as pure data (stdlib only): nodes, edges, validation, fingerprints."""

from qflow.graph.model import Edge, Graph, Node

__all__ = ["Edge", "Graph", "Node"]
