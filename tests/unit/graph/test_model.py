from __future__ import annotations

import pytest

from qflow.errors import GraphValidationError, InvalidNameError
from qflow.graph.model import Edge, Graph, Node
from qflow.graph.render import to_dot, to_mermaid
from qflow.graph.validate import check_call_name, validate


def _node(name: str, position: int, step: str = "s") -> Node:
    return Node(name=name, step=step, position=position, outputs=("return",))


def test_topological_order_is_deterministic_by_position() -> None:
    nodes = (_node("0_a", 0), _node("1_b", 1), _node("2_c", 2), _node("3_d", 3))
    edges = (Edge("0_a", "return", "3_d", "x"), Edge("1_b", "return", "2_c", "x"))
    graph = Graph("wf", nodes, edges)
    assert graph.topological_order() == ("0_a", "1_b", "2_c", "3_d")
    assert graph.levels() == (("0_a", "1_b"), ("2_c", "3_d"))
    assert graph.ancestors("3_d") == {"0_a"}
    assert graph.descendants("1_b") == {"2_c"}


def test_cycle_is_refused() -> None:
    nodes = (_node("0_a", 0), _node("1_b", 1))
    edges = (Edge("0_a", "return", "1_b", "x"), Edge("1_b", "return", "0_a", "x"))
    with pytest.raises(GraphValidationError, match="cycle through 0_a, 1_b"):
        validate(Graph("wf", nodes, edges))


def test_duplicate_and_reserved_names_are_refused() -> None:
    with pytest.raises(GraphValidationError, match="two step calls named '0_a'"):
        validate(Graph("wf", (_node("0_a", 0), _node("0_a", 1))))
    with pytest.raises(GraphValidationError, match="'config' is reserved"):
        validate(Graph("wf", (_node("0_config", 0, step="config"),)))


def test_unknown_edge_end_is_refused() -> None:
    with pytest.raises(GraphValidationError, match="unknown step '9_x'"):
        validate(Graph("wf", (_node("0_a", 0),), (Edge("9_x", "return", "0_a", "x"),)))


def test_renderers_emit_every_node_and_edge() -> None:
    graph = Graph("wf", (_node("0_a", 0), _node("1_b", 1)), (Edge("0_a", "return", "1_b", "x"),))
    mermaid = to_mermaid(graph, {"0_a": "succeeded"})
    assert 'n_0_a["0_a"]' in mermaid
    assert "n_0_a -->|x| n_1_b" in mermaid
    assert "style n_0_a fill:#b7e4c7" in mermaid
    dot = to_dot(graph)
    assert '"0_a" -> "1_b" [label="x"];' in dot
    assert dot.startswith('digraph "wf" {')


@pytest.mark.parametrize(
    "name", ["", "3_fit", "train.a", "RUN/a", "a,b", "a[1]", "a b", "é", "x" * 101, 3, None]
)
def test_call_names_that_cannot_be_typed_or_parsed_are_refused(name: object) -> None:
    with pytest.raises(InvalidNameError, match="starts with a letter") as caught:
        check_call_name(name, "wf.py:7")
    assert "Hint: for example '" in str(caught.value)
    assert str(caught.value).endswith("at wf.py:7")


def test_call_names_may_not_be_reserved_or_a_steps_name() -> None:
    assert check_call_name("train-a_2") == "train-a_2"
    with pytest.raises(InvalidNameError, match="'config' is not allowed: it is reserved"):
        check_call_name("config")
    named = Node("fit", "fit", 0, ("return",), named=True)
    with pytest.raises(GraphValidationError, match="'fit' in workflow 'wf' is also the name"):
        validate(Graph("wf", (named,)))
