"""The CLI's deferred coercion gives every value what typer's own (pydantic) coercion gives it:
the same result, or the same usage error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.core
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from qflow.cli.app import run_cli
from qflow.cli.coercion import DeferredCoercion, deferred


def _command() -> Any:
    app = typer.Typer()

    @app.command()
    def cmd(
        text: Annotated[str | None, typer.Option()] = None,
        count: Annotated[int, typer.Option()] = 20,
        bounded: Annotated[int, typer.Option(min=1, max=5)] = 1,
        ratio: Annotated[float | None, typer.Option()] = None,
        tag: Annotated[list[str] | None, typer.Option()] = None,
        path: Annotated[Path | None, typer.Option()] = None,
        words: Annotated[list[str] | None, typer.Argument()] = None,
    ) -> None:
        """A command with one parameter of each kind the CLI uses."""

    return typer.main.get_command(app)


VALUES: dict[str, list[Any]] = {
    "text": [None, "", "x", "é", "\udcff", "12", b"bytes", 5],
    "count": [None, 20, 0, "20", "007", "-0", "-12", "+5", " 5", "1_000", "٣", "x", "1.5", True],
    "bounded": ["3", "9", 0, 3],
    "ratio": [None, "0.5", "1", "x", 2],
    "tag": [None, (), ("a=1", "b=2"), ["a"], ("a", 5), "a"],
    "path": [None, "some/where", "."],
    "words": [None, (), ("a", "b")],
}


def _outcome(runtime: Any, value: Any, param: Any, ctx: Context) -> tuple[str, Any]:
    try:
        return "value", runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()


@pytest.mark.parametrize("name", sorted(VALUES))
def test_each_value_gets_what_typers_own_coercion_gives(name: str) -> None:
    command = _command()
    ctx = Context(command)
    (param,) = [p for p in command.params if p.name == name]
    ours, typers = deferred(param.type_descriptor), build_runtime_param(param.type_descriptor)
    assert isinstance(ours, DeferredCoercion)
    for value in VALUES[name]:
        expected = _outcome(typers, value, param, ctx)
        got = _outcome(ours, value, param, ctx)
        assert got == expected, f"{name}={value!r}"
        assert type(got[1]) is type(expected[1]), f"{name}={value!r}"


def test_the_cli_builds_deferred_coercions(capsys: pytest.CaptureFixture[str]) -> None:
    assert typer.core.build_runtime_param is deferred  # type: ignore[attr-defined]
    assert run_cli(["runs", "--limit", "x"]) == 2
    assert "Invalid value for '--limit' / '-n'" in capsys.readouterr().err
