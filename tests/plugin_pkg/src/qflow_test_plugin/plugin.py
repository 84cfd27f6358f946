"""Adds a ``money`` serializer, a ``hello`` command, an ``inline`` executor and a tracker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from qflow.plugins import hookimpl


@dataclass(frozen=True)
class Money:
    """A value QFlow would otherwise pickle."""

    cents: int
    currency: str


class MoneySerializer:
    name = "money"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        return isinstance(value, Money)

    def dump(self, value: object, sink: Any) -> None:
        assert isinstance(value, Money)
        sink.write(f"{value.cents} {value.currency}".encode())

    def load(self, source: Any) -> object:
        data = source.read_bytes() if isinstance(source, Path) else source.read()
        cents, currency = data.decode().split()
        return Money(int(cents), currency)


def hello(name: str = typer.Argument("world", help="Who to greet.")) -> None:
    """Say hello (a command added by the qflow-test-plugin package)."""
    typer.echo(f"hello {name}, from qflow-test-plugin")


def _inline(**options: Any) -> Any:
    from qflow.runtime.executor import LocalExecutor

    executor = LocalExecutor()
    executor.name = "inline"
    return executor


class RecordingTracker:
    """Appends the events it receives to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, **event: Any) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(event) + "\n")

    @hookimpl
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        self._write(event="after_run", run_id=run_id, status=status)


@hookimpl
def register_serializers() -> list[Any]:
    return [MoneySerializer()]


@hookimpl
def register_commands() -> dict[str, Any]:
    return {"hello": hello}


@hookimpl
def register_executors() -> dict[str, Any]:
    return {"inline": _inline}


@hookimpl
def register_trackers() -> dict[str, Any]:
    return {"recorder": RecordingTracker}
