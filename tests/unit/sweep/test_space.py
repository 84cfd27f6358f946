from __future__ import annotations

import pytest

from qflow.errors import ConfigError
from qflow.sweep.space import Kind, override, parse_param, search_space


@pytest.mark.parametrize(
    ("text", "kind", "low", "high", "step", "log"),
    [
        ("float(0, 1)", Kind.FLOAT, 0.0, 1.0, None, False),
        ("log_float(1e-4, 10)", Kind.FLOAT, 1e-4, 10.0, None, True),
        ("float(0.1, 1, step=0.1)", Kind.FLOAT, 0.1, 1.0, 0.1, False),
        ("float(0.001, 1, log=true)", Kind.FLOAT, 0.001, 1.0, None, True),
        ("int(100, 1000, step=100)", Kind.INT, 100, 1000, 100, False),
        ("log_int(1, 1024)", Kind.INT, 1, 1024, None, True),
        ("  int( -3 ,3 )  ", Kind.INT, -3, 3, None, False),
    ],
    ids=["float", "log_float", "float-step", "float-log", "int-step", "log_int", "spaces"],
)
def test_ranges(
    text: str, kind: Kind, low: float, high: float, step: float | None, log: bool
) -> None:
    param = parse_param("model.C", text)
    assert (param.kind, param.low, param.high, param.step, param.log) == (
        kind,
        low,
        high,
        step,
        log,
    )
    assert param.expression == text
    assert param.distribution() is not None


def test_choice_values_are_typed() -> None:
    param = parse_param("k", "choice(linear, 'rbf', \"a, b\", 3, 0.5, true, null, 1e-3)")
    assert param.kind is Kind.CHOICE
    assert param.choices == ("linear", "rbf", "a, b", 3, 0.5, True, None, 0.001)
    assert param.grid() == list(param.choices)


def test_grid_values() -> None:
    assert parse_param("n", "int(1, 7, step=3)").grid() == [1, 4, 7]
    assert parse_param("x", "float(0, 0.3, step=0.1)").grid() == [0.0, 0.1, 0.2, 0.3]
    with pytest.raises(ConfigError, match=r"'x'.*continuous.*step"):
        parse_param("x", "float(0, 1)").grid()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("uniform(0, 1)", r"'uniform' is not a known function"),
        ("flaot(0, 1)", r"Did you mean: float"),
        ("float(0, 1", r"does not end with"),
        ("0.5", r"not a call"),
        ("float(1, 0)", r"low is above high"),
        ("log_float(0, 1)", r"log range needs low > 0"),
        ("int(0.5, 3)", r"whole numbers"),
        ("float(0, 1, step=0)", r"step must be a positive"),
        ("float(0, 1, step=0.1, log=true)", r"cannot be combined"),
        ("float(0, 1, size=2)", r"takes low, high"),
        ("float(a, 1)", r"must be numbers"),
        ("choice()", r"one or more values"),
        ("float(0, step=1, 2)", r"positional value follows a keyword"),
        ("__import__('os').system('x')", r"not a call|not a known function|cannot read"),
        ("float(0, 1) + 1", r"does not end with"),
    ],
)
def test_bad_expressions_say_why(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_param("model.C", text)


def test_search_space_from_section_and_command_line() -> None:
    section = {
        "objective": "accuracy",
        "direction": "Maximize",
        "params": {"model": {"C": "log_float(1e-4, 10)"}, "model.kernel": "choice(a, b)"},
    }
    space = search_space(section, {"model.C": "float(0.1, 1)", "seed": "int(0, 3)"})
    assert space.objective == "accuracy"
    assert space.direction == "maximize"
    assert space.expressions() == {
        "model.C": "float(0.1, 1)",
        "model.kernel": "choice(a, b)",
        "seed": "int(0, 3)",
    }
    assert set(space.distributions()) == {"model.C", "model.kernel", "seed"}
    assert search_space(section, objective="loss", direction="minimize").objective == "loss"


@pytest.mark.parametrize(
    ("section", "params", "message"),
    [
        ({"objective": "a"}, {}, r"no parameters"),
        ({"params": {"x": "float(0, 1)"}}, {}, r"no objective"),
        ({"objective": "a", "direction": "up", "params": {"x": "int(0, 1)"}}, {}, r"direction"),
        ({"objective": "a", "param": {}}, {}, r"(?s)unknown key .param.*Did you mean: params"),
        ({"objective": "a", "params": ["x"]}, {}, r"must map config keys"),
    ],
    ids=["no-params", "no-objective", "direction", "unknown-key", "not-a-mapping"],
)
def test_search_space_errors(section: dict, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        search_space(section, params)


def test_overrides_keep_types() -> None:
    assert override("model.C", 0.0001) == "model.C=0.0001"
    assert override("n", 3) == "n=3"
    assert override("flag", True) == "flag=true"
    assert override("x", None) == "x=null"
    assert override("kernel", "rbf") == "kernel='rbf'"
    assert override("name", "it's") == "name='it\\'s'"


def test_overrides_compose_with_hydra(tmp_path) -> None:
    from qflow.config.loader import load_config

    (tmp_path / "wf.yaml").write_text("a: {x: 1.0, k: lin, n: 1, s: '1'}\n")
    values = {"a.x": 1e-05, "a.k": "it's, odd", "a.n": 7, "a.s": "2"}
    config = load_config("wf", [override(k, v) for k, v in values.items()], tmp_path)
    assert config == {"a": {"x": 1e-05, "k": "it's, odd", "n": 7, "s": "2"}}
