"""Wire the commands into one typer app; errors become one red line and an exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import typer

from qflow.cli.commands import config, configure, graph, models, new, plugins, predict, run, runs
from qflow.cli.commands import sweep as sweeps
from qflow.cli.commands.ci import app as ci_app
from qflow.cli.commands.convert import convert
from qflow.cli.commands.diff import compare, diff
from qflow.cli.commands.doctor import doctor
from qflow.cli.commands.exec import CONTEXT, exec_
from qflow.cli.commands.export import app as export_app
from qflow.cli.commands.gc import gc
from qflow.cli.commands.infra import app as infra_app
from qflow.cli.commands.lineage import lineage
from qflow.cli.commands.metrics import metrics
from qflow.cli.commands.report import report
from qflow.cli.commands.reproduce import reproduce
from qflow.cli.commands.resume import resume
from qflow.cli.commands.run_step import run_step
from qflow.cli.commands.schedule import app as schedule_app
from qflow.cli.commands.schedule import scheduler
from qflow.cli.commands.server import server
from qflow.cli.commands.sync import sync
from qflow.cli.commands.ui import ui

app = typer.Typer(
    name="qflow",
    help="QFlow: run, track and compare ML workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("run")(run.run)
app.command("run-step")(run_step)
app.add_typer(export_app, name="export")
app.add_typer(runs.app, name="runs")
app.command("show")(runs.show)
app.command("logs")(runs.logs)
app.command("graph")(graph.graph)
app.command("lineage")(lineage)
app.command("diff")(diff)
app.command("compare")(compare)
app.command("exec", context_settings=CONTEXT)(exec_)
app.command("reproduce")(reproduce)
app.command("metrics")(metrics)
app.command("convert")(convert)
app.command("gc")(gc)
app.command("resume")(resume)
app.command("doctor")(doctor)
app.add_typer(config.app, name="config")
app.command("plugins")(plugins.plugins)
app.command("new")(new.new)
app.command("configure")(configure.configure)
app.add_typer(models.app, name="models")
app.command("sweep")(sweeps.sweep)
app.add_typer(sweeps.app, name="sweeps")
app.command("predict")(predict.predict)
app.command("sync")(sync)
app.add_typer(ci_app, name="ci")
app.command("report")(report)
app.add_typer(infra_app, name="infra")
app.add_typer(schedule_app, name="schedule")
app.command("scheduler")(scheduler)
app.command("ui")(ui)
app.command("server")(server)


def run_cli(args: Sequence[str] | None = None) -> int:
    """Run the CLI with ``args`` and return the exit code (tests call this in-process).
    A Ctrl-C anywhere, even while an error is being shown, is exit code 130."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130


def _run(args: Sequence[str] | None) -> int:
    from qflow.errors import QFlowError

    argv = list(sys.argv[1:] if args is None else args)
    verbose = "--verbose" in argv
    if verbose:
        argv.remove("--verbose")
    try:
        plugins.add_plugin_commands(app)
        result = app(argv, prog_name="qflow", standalone_mode=False)
        if isinstance(result, int) and result:
            return result
    except QFlowError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        from rich.text import Text

        from qflow.cli.console import err

        err.print(Text.assemble(("Error: ", "bold red"), str(exc)))
        return exc.exit_code
    except typer.Abort:
        return 130
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(code)
    return 0


def main() -> None:
    # Once the command is done, a Ctrl-C (while the interpreter shuts down, joining threads)
    # ends the process at once instead of printing a KeyboardInterrupt traceback.
    try:
        code = run_cli()
        signal.signal(signal.SIGINT, _exit_interrupted)
    except KeyboardInterrupt:  # one that came just before the handler was in place
        signal.signal(signal.SIGINT, _exit_interrupted)
        code = 130
    sys.exit(code)


def _exit_interrupted(signum: int, frame: object) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(130)
