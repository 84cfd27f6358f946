from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.dsl.tracing import NamedOutputs, StepOutput
from qflow.errors import (
    ConfigError,
    HandleMisuseError,
    InvalidNameError,
    NestedStepError,
    StepSignatureError,
    WorkflowReturnError,
)
from tests.fixtures import workflows as wf


def test_step_outside_workflow_is_a_plain_call() -> None:
    assert wf.double([1, 2]) == [2, 4]
    assert wf.Scale(factor=2)([1]) == [2.0]
    assert wf.linear(3) == 6


def test_linear_trace_names_steps_in_call_order() -> None:
    traced = wf.linear.trace({"n": 5})
    assert [n.name for n in traced.graph.nodes] == ["0_load", "1_double", "2_total"]
    assert dict(traced.graph.nodes[0].params) == {"n": "5"}
    assert traced.graph.topological_order() == ("0_load", "1_double", "2_total")
    assert isinstance(traced.result, StepOutput)
    assert traced.result.node == "2_total"


def test_same_step_used_several_times_and_class_step_params() -> None:
    traced = wf.diamond.trace({"n": 3, "factor": 0.5})
    names = [n.name for n in traced.graph.nodes]
    assert names == ["0_load", "1_double", "2_Scale", "3_total", "4_total", "5_total", "6_combine"]
    assert dict(traced.graph.by_name["2_Scale"].params) == {"factor": "0.5"}
    assert dict(traced.graph.by_name["5_total"].params) == {"extra": "1"}
    edges = {(e.source, e.target, e.target_arg) for e in traced.graph.edges}
    assert ("3_total", "6_combine", "parts[0]") in edges
    assert ("5_total", "6_combine", "named['x']") in edges
    assert traced.graph.levels()[0] == ("0_load",)
    assert set(traced.graph.levels()[1]) == {"1_double", "2_Scale", "5_total"}


def test_tuple_and_named_outputs() -> None:
    traced = wf.multi.trace({})
    halves = traced.graph.by_name["1_halves"]
    assert halves.outputs == ("0", "1")
    assert traced.graph.by_name["2_bounds"].outputs == ("low", "high")
    assert traced.result["high"].output == "high"
    assert traced.result["min"].output == "low"


def test_named_outputs_unknown_name() -> None:
    handles = NamedOutputs((StepOutput("0_a", "x"), StepOutput("0_a", "y")))
    with pytest.raises(AttributeError, match="there is no 'z'"):
        _ = handles.z


def test_nested_workflow_is_inlined() -> None:
    traced = wf.outer.trace({"n": 2})
    assert [n.name for n in traced.graph.nodes] == ["0_load", "1_double", "2_total", "3_total"]
    assert traced.graph.by_name["0_load"].group == "linear"
    assert traced.graph.by_name["3_total"].group == ""


def test_independent_branches_are_known() -> None:
    @qf.workflow
    def two_branches() -> Any:
        return wf.total(wf.load(2)), wf.total(wf.load(3))

    traced = two_branches.trace()
    assert traced.graph.branches() == (
        frozenset({"0_load", "1_total"}),
        frozenset({"2_load", "3_total"}),
    )


def test_branching_on_a_result_is_an_error() -> None:
    @qf.workflow
    def branchy() -> Any:
        xs = wf.load(3)
        if xs:
            return wf.double(xs)
        return None

    with pytest.raises(HandleMisuseError, match=r"(?s)Cannot branch on .*0_load.*Hint"):
        branchy.trace()


@pytest.mark.parametrize(
    ("use", "message"),
    [
        (lambda h: len(h), "take len"),
        (lambda h: h + 1, "compute with"),
        (lambda h: h[0], "index"),
        (lambda h: h.shape, "read attribute 'shape'"),
        (lambda h: list(h), "iterate"),
        (lambda h: f"{h:>3}", "format"),
        (lambda h: float(h), "compute with"),
    ],
    ids=["len", "add", "index", "attribute", "iterate", "format", "float"],
)
def test_handle_in_non_step_code_is_an_error(use: Any, message: str) -> None:
    @qf.workflow
    def misuse() -> Any:
        use(wf.load(3))

    with pytest.raises(HandleMisuseError, match=message):
        misuse.trace()


def test_handle_into_numpy_is_an_error() -> None:
    np = pytest.importorskip("numpy")

    @qf.workflow
    def to_numpy() -> Any:
        return np.asarray(wf.load(3)) * 2

    with pytest.raises(HandleMisuseError, match="while tracing"):
        to_numpy.trace()


def test_missing_required_input() -> None:
    @qf.workflow
    def missing() -> Any:
        return wf.total()  # type: ignore[call-arg]

    with pytest.raises(StepSignatureError, match=r"missing a required argument: 'xs'") as info:
        missing.trace()
    assert "test_tracing.py" in str(info.value)


def test_unknown_keyword_suggests_the_close_name() -> None:
    @qf.workflow
    def unknown() -> Any:
        return wf.total(wf.load(2), extr=1)  # type: ignore[call-arg]

    with pytest.raises(StepSignatureError, match=r"(?s)unexpected keyword.*Did you mean: extra\?"):
        unknown.trace()


def test_return_value_that_is_not_step_output() -> None:
    @qf.workflow
    def returns_number() -> Any:
        wf.load(2)
        return 42

    with pytest.raises(WorkflowReturnError, match=r"returned 42 \(a int\)"):
        returns_number.trace()


def test_return_structure_with_a_constant_is_an_error() -> None:
    @qf.workflow
    def mixed() -> Any:
        return {"a": wf.load(2), "b": "text"}

    with pytest.raises(WorkflowReturnError, match="'text'"):
        mixed.trace()


def test_config_key_that_is_not_a_parameter() -> None:
    with pytest.raises(ConfigError, match=r"no parameter 'nn'.*\nDid you mean: n\?"):
        wf.linear.trace({"nn": 3})


def test_missing_workflow_parameter() -> None:
    @qf.workflow
    def needs(k: int) -> Any:
        return wf.load(k)

    with pytest.raises(ConfigError, match=r"needs a value for 'k'.*qflow run needs k=VALUE"):
        needs.trace({})


def test_nested_step_call_while_running_is_an_error() -> None:
    from qflow.dsl.tracing import running_step

    token = running_step.set("0_outer")
    try:
        with pytest.raises(NestedStepError, match="inside running step '0_outer'"):
            wf.double([1])
    finally:
        running_step.reset(token)


def test_config_values_reach_steps_as_plain_data() -> None:
    @qf.step
    def takes(options: dict[str, int]) -> int:
        return len(options)

    @qf.workflow
    def with_cfg(cfg: Any) -> Any:
        return takes(cfg.options)

    traced = with_cfg.trace({"options": {"a": 1}})
    call = traced.calls["0_takes"]
    assert type(call.arguments["options"]) is dict
    assert dict(traced.graph.nodes[0].params) == {"options": '{"a": 1}'}


@qf.step
def _pair() -> tuple[int, int]:
    return 1, 2


@qf.step
def _one() -> int:
    return 1


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.rstrip().endswith(marker))


def test_unpacking_two_outputs_into_three_names_names_the_step_and_line() -> None:
    @qf.workflow
    def bad() -> Any:
        a, _b, _c = _pair()  # unpack-three
        return a

    with pytest.raises(
        HandleMisuseError, match=r"(?s)unpack step '_pair' \(0__pair\) into: 3\. .*has 2 outputs"
    ) as raised:
        bad.trace({})
    assert f"at {__file__}:{_line_of('# unpack-three')}" in str(raised.value)


def test_unpacking_two_outputs_into_one_starred_name_is_fine_and_into_too_few_is_not() -> None:
    @qf.workflow
    def starred() -> Any:
        first, *_rest = _pair()
        return first

    assert starred.trace({}).result.node == "0__pair"

    @qf.workflow
    def too_many_required() -> Any:
        a, _b, *_rest, _c = _pair()
        return a

    with pytest.raises(HandleMisuseError, match=r"into: at least 3\. The step has 2 outputs"):
        too_many_required.trace({})


def test_unpacking_one_output_names_the_step() -> None:
    @qf.workflow
    def bad() -> Any:
        a, _b = _one()
        return a

    with pytest.raises(HandleMisuseError, match=r"unpack step '_one' .* into: 2\. .* 1 output \("):
        bad.trace({})


def test_exact_unpacking_and_iteration_still_work() -> None:
    @qf.workflow
    def good() -> Any:
        low, high = _pair()
        both = list(_pair())
        return [low, high, *both]

    assert [h.node for h in good.trace({}).result] == ["0__pair", "0__pair", "1__pair", "1__pair"]


def test_json_dumps_of_a_handle_is_a_trace_error_at_the_users_line() -> None:
    @qf.workflow
    def bad() -> Any:
        handle = _one()
        json.dumps({"x": handle})  # dumps-line
        return handle

    with pytest.raises(
        HandleMisuseError, match=r"(?s)Workflow 'bad' used a step output as a plain value.*Hint"
    ) as raised:
        bad.trace({})
    assert f"at {__file__}:{_line_of('# dumps-line')}" in str(raised.value)
    assert isinstance(raised.value.__cause__, TypeError)


def test_other_errors_in_a_workflow_body_are_left_alone() -> None:
    @qf.workflow
    def bad() -> Any:
        raise ValueError("mine")

    with pytest.raises(ValueError, match="mine"):
        bad.trace({})


@pytest.mark.parametrize(
    ("use", "action"),
    [
        (lambda h: bool(h), "branch on"),
        (lambda h: h + 1, "compute with"),
        (lambda h: h.shape, "read attribute 'shape'"),
        (lambda h: f"{h:>3}", "format"),
    ],
    ids=["if", "add", "attribute", "format"],
)
def test_placeholder_misuse_gives_the_users_file_and_line(use: Any, action: str) -> None:
    @qf.workflow
    def bad() -> Any:
        handle = _one()
        use(handle)
        return handle

    with pytest.raises(HandleMisuseError, match=f"Cannot {action}") as raised:
        bad.trace({})
    assert f"at {__file__}:" in str(raised.value)
    assert "/qflow/dsl/" not in str(raised.value).split("at ")[-1]


@qf.step
class _Undecorated:
    factor: float = 1.0

    def __call__(self, x: float) -> float:
        return x * self.factor


def test_class_step_without_dataclass_names_the_class_and_the_fix() -> None:
    with pytest.raises(
        StepSignatureError,
        match=r"(?s)Class step '_Undecorated' cannot take arguments: _Undecorated\(factor=2\)\. "
        r".*fields \(factor\).*Hint: add @dataclass under @qf.step",
    ) as raised:
        _Undecorated(factor=2)  # make-undecorated
    assert f"at {__file__}:{_line_of('# make-undecorated')}" in str(raised.value)
    assert _Undecorated()(2.0) == 2.0


def test_dataclass_above_step_decorator_still_works() -> None:
    @dataclasses.dataclass
    @qf.step
    class Outer:
        factor: float = 1.0

        def __call__(self, x: float) -> float:
            return x * self.factor

    assert Outer(factor=3)(2.0) == 6.0


def test_a_class_step_call_takes_a_name_of_its_own() -> None:
    @qf.workflow
    def scaled() -> Any:
        xs = wf.load(3)
        return wf.Scale(factor=2).named("doubled")(xs), wf.Scale(factor=3)(xs)

    traced = scaled.trace({})
    assert [n.name for n in traced.graph.nodes] == ["0_load", "doubled", "2_Scale"]
    assert dict(traced.graph.by_name["doubled"].params) == {"factor": "2"}
    assert wf.Scale(factor=2).named("doubled")([1]) == [2.0]  # outside a workflow: a call
    with pytest.raises(InvalidNameError, match=r"Step call name '2x' is not allowed"):
        wf.Scale(factor=2).named("2x")
