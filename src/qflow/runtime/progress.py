"""Progress display as a plugin: rich bars on a terminal, plain log lines otherwise.

Both write to the stream that was ``sys.stderr`` when they were made, never to whatever
``sys.stderr`` is later: while a step runs, ``sys.stdout``/``sys.stderr`` are the step's
capture, and rich's live display redirects them through its console; a console that looked
``sys.stderr`` up again would write into the capture, which echoes into the console, forever.
A closed or broken stream ends the display, never the run.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from qflow.plugins.markers import hookimpl
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from qflow.graph.model import Graph, Node


_COLOURS: dict[str, str] = {
    StepStatus.SUCCEEDED: "green",
    StepStatus.CACHED: "cyan",
    StepStatus.FAILED: "red",
}


class RichProgress:
    """One bar for the workflow and one line per step with its elapsed time."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(file=sys.stderr)
        self.progress: Progress | None = None
        self.overall: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}

    @hookimpl
    def before_run(
        self, run_id: str, workflow: str, graph: Graph, config: Mapping[str, Any]
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.overall = self.progress.add_task(
            f"[bold]{workflow}[/] [dim]{run_id}[/]", total=len(graph.nodes)
        )

    @hookimpl
    def before_step(self, run_id: str, node: Node) -> None:
        if self.progress is not None:
            self.tasks[node.name] = self.progress.add_task(f"  {node.name}", total=1)

    @hookimpl
    def after_step(
        self, run_id: str, node: Node, status: str, duration: float, error: str | None
    ) -> None:
        if self.progress is None or self.overall is None:
            return
        colour = _COLOURS.get(status, "dim")
        task = self.tasks.get(node.name)
        if task is None:
            task = self.progress.add_task(f"  {node.name}", total=1)
        self.progress.update(task, completed=1, description=f"  {node.name} [{colour}]{status}[/]")
        self.progress.stop_task(task)
        self.progress.advance(self.overall)

    @hookimpl
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class PlainProgress:
    """A line per event on stderr, for logs and CI."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stream: TextIO | None = sys.stderr

    def _say(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(f"[qflow {time.monotonic() - self.started:7.2f}s] {text}\n")
            self.stream.flush()
        except (OSError, ValueError):  # the reader went away (| head): stop saying
            self.stream = None

    @hookimpl
    def before_run(
        self, run_id: str, workflow: str, graph: Graph, config: Mapping[str, Any]
    ) -> None:
        self._say(f"run {run_id} of {workflow}: {len(graph.nodes)} steps")

    @hookimpl
    def after_step(
        self, run_id: str, node: Node, status: str, duration: float, error: str | None
    ) -> None:
        detail = f": {error}" if error else ""
        self._say(f"{node.name} {status} in {duration:.3f}s{detail}")

    @hookimpl
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        self._say(f"run {run_id} {status}")


def default_progress() -> object:
    """Rich bars on an interactive terminal, plain lines elsewhere."""
    return RichProgress() if sys.stderr.isatty() else PlainProgress()
