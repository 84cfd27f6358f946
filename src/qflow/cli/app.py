"""Wire the commands into one typer app; errors become one red line and an exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import typer

from qflow.cli.group import Command, LazyGroup

try:
    from qflow.cli.coercion import install as _defer_coercion
except ImportError:  # a typer without 0.29's coercion internals keeps its own coercion
    pass
else:
    _defer_coercion()

COMMANDS: dict[str, Command] = {
    "run": Command("run:run", "Run WORKFLOW."),
    "run-step": Command(
        "run_step:run_step",
        "Run the step call SPEC describes and print its result as JSON on stdout.",
    ),
    "show": Command("runs:show", "Show a run: steps, timings, params, metrics, artifacts."),
    "logs": Command(
        "runs:logs",
        "Print the captured stdout/stderr (log records included) and traceback of a run's steps.",
    ),
    "graph": Command(
        "graph:graph", "Trace WORKFLOW with its config and print its graph (steps run nothing)."
    ),
    "lineage": Command(
        "lineage:lineage",
        "Show everything an artifact came from: steps, params, inputs, data files, code.",
    ),
    "diff": Command(
        "diff:diff",
        "Show how two runs differ: config, params, metrics, code, environment, data, outputs.",
    ),
    "compare": Command(
        "diff:compare", "Show several runs side by side (config, params, metrics, environment)."
    ),
    "exec": Command(
        "exec:exec_",
        "Run SCRIPT and record its code, arguments, environment, output, files and qf.log_* calls.",
        context="CONTEXT",
    ),
    "reproduce": Command(
        "reproduce:reproduce",
        "Re-run RUN with its recorded config and code and check each output's hash.",
    ),
    "metrics": Command(
        "metrics:metrics",
        "Print KEY's value in each run (last, min, max, points), oldest run first.",
    ),
    "convert": Command(
        "convert:convert",
        "Turn a notebook into steps: tagged cells and top-level functions become @qf.step.",
    ),
    "gc": Command(
        "gc:gc",
        "Remove deleted runs (qflow runs delete), then the artifacts no live run, model version "
        "or cache entry uses, then old temp files.",
    ),
    "resume": Command(
        "resume:resume",
        "Start a new run linked to RUN_ID with its workflow and config; every step that had "
        "finished with the same inputs is reused, the rest runs.",
    ),
    "doctor": Command(
        "doctor:doctor",
        "Check the metadata database's integrity and that every artifact it references exists "
        "and matches its hash.",
    ),
    "plugins": Command(
        "plugins:plugins", "List the loaded plugins, where each comes from and what it adds."
    ),
    "new": Command("new:new", "Create a project as the white paper's Fig."),
    "configure": Command(
        "configure:configure",
        "Choose and configure COMPONENT again: rewrites conf/<group>/ and the workflow defaults.",
    ),
    "sweep": Command(
        "sweep:sweep",
        "Search WORKFLOW's config with Optuna: one QFlow run per trial, all tagged with the sweep.",
    ),
    "predict": Command(
        "predict:predict",
        "Predict every row of SOURCE with a registered model, in chunks, with a progress bar.",
    ),
    "import": Command(
        "import_runs:app", "Import runs from another tracker into this project's stores."
    ),
    "sync": Command(
        "sync:sync",
        "Send a run from QFlow's store to a tracker (after it was down, or to a new one).",
    ),
    "report": Command(
        "report:report",
        "Write a run's report: tracker ids, runtime, metrics, metric histories (Mermaid charts "
        "in Markdown, which GitHub draws in PR comments; PNGs in HTML and in plots/), and what "
        "changed against another run (metrics, config, code, data).",
    ),
    "step-report": Command(
        "step_report:step_report",
        "Export a step's report (qf.report) as one HTML file that opens offline.",
    ),
    "scheduler": Command(
        "schedule:scheduler", "Run the project's schedules until stopped (Ctrl-C or SIGTERM)."
    ),
    "ui": Command(
        "ui:ui",
        "Open the web dashboard (runs, metrics, graphs, models, launches) for this project.",
    ),
    "server": Command(
        "server:server",
        "Serve the REST API and dashboard over shared stores; refuses to listen beyond this "
        "machine without a token.",
    ),
    "export": Command(
        "export:app",
        "Export a step output to a file (qflow export RUN STEP[.OUTPUT] PATH), or a workflow for "
        "another scheduler (qflow export argo WORKFLOW).",
    ),
    "runs": Command("runs:app", "List runs (newest first), or delete, archive and restore them."),
    "config": Command("config:app", "Inspect a workflow's Hydra config."),
    "models": Command("models:app", "Model registry: versions, aliases, signatures, serving."),
    "sweeps": Command("sweep:app", "Hyperparameter sweeps: list them, show one."),
    "ci": Command("ci:app", "Launch runs from pull-request comments."),
    "infra": Command("infra:app", "Infrastructure for a team: Terraform templates."),
    "schedule": Command("schedule:app", "Run workflows on a schedule (cron, UTC)."),
}
"""Every built-in command: ``module:attribute`` under ``qflow.cli.commands`` and the one-line
help ``qflow --help`` shows without importing the command (kept equal to the command's own
short help by a test)."""


class _QFlowGroup(LazyGroup):
    builtin = COMMANDS


app = typer.Typer(
    name="qflow",
    cls=_QFlowGroup,
    help="QFlow: run, track and compare ML workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _qflow() -> None:
    """The top-level group has no options of its own."""


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
