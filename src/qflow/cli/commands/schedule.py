"""``qflow schedule add|list|remove|export`` and ``qflow scheduler``: workflows on a cron."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, OverridesArgument, ProjectOption

if TYPE_CHECKING:
    from qflow.ci.schedule import BrokenSchedule, ScheduleStore

app = typer.Typer(help="Run workflows on a schedule (cron, UTC).", no_args_is_help=True)


def _store(project: Path | None) -> tuple[Path, ScheduleStore]:
    from qflow.ci.schedule import ScheduleStore
    from qflow.config import find_project

    found = find_project(project)
    return found.root, ScheduleStore(found.state_dir)


def _warn_broken(store: ScheduleStore, broken: list[BrokenSchedule]) -> None:
    from rich.markup import escape

    for entry in broken:
        console.err.print(
            f"[yellow]Warning:[/] schedule {escape(entry.id)} ({escape(entry.workflow)}) is "
            f"broken and does not run: {escape(entry.error)}\n"
            f"Hint: fix it in {escape(str(store.path))}, or "
            f"qflow schedule remove {escape(entry.id)}"
        )


@app.command("add")
def add(
    workflow: Annotated[str, typer.Argument(help="Workflow name (or module:function).")],
    overrides: OverridesArgument = None,
    cron: Annotated[
        str, typer.Option("--cron", help="Five cron fields in UTC, e.g. '0 3 * * *', or @daily.")
    ] = "",
    project: ProjectOption = None,
) -> None:
    """Run WORKFLOW (with overrides) whenever --cron fires; `qflow scheduler` runs them.

    Refused, with nothing saved: a cron that does not parse or never fires (0 0 31 2 *), a
    workflow the project does not have, and overrides qflow run would refuse."""
    from qflow.ci.schedule import next_fire
    from qflow.ci.scheduler import utc
    from qflow.config import find_project
    from qflow.errors import ConfigError

    if not cron:
        raise ConfigError("qflow schedule add needs --cron, e.g. --cron '0 3 * * *'.")
    found = find_project(project)
    _, store = _store(found.root)
    schedule = store.add(workflow, cron, overrides or [], project=found)
    console.out.print(
        f"Schedule [bold]{schedule.id}[/]: {workflow} at '{schedule.cron}' (UTC); "
        f"next {utc(next_fire(schedule.cron, schedule.cursor))}"
    )
    console.out.print("[dim]Runs while `qflow scheduler` is running.[/]")


@app.command("list")
def list_(as_json: JsonOption = False, project: ProjectOption = None) -> None:
    """The schedules, their next fire time and how their last run went."""
    from rich.markup import escape
    from rich.table import Table

    from qflow.ci.schedule import next_fire
    from qflow.ci.scheduler import utc

    _, store = _store(project)
    schedules, broken = store.load()
    if as_json:
        console.print_json(
            [{**s.to_json(), "next": utc(next_fire(s.cron, s.cursor))} for s in schedules]
            + [{**b.to_json(), "broken": True} for b in broken]
        )
        return
    _warn_broken(store, broken)
    if not schedules:
        console.out.print("No schedules. Hint: qflow schedule add WORKFLOW --cron '0 3 * * *'")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "workflow", "cron (UTC)", "overrides", "next", "last run", "status"):
        table.add_column(column)
    for s in schedules:
        table.add_row(
            s.id,
            escape(s.workflow),
            s.cron,
            escape(" ".join(s.overrides)),
            utc(next_fire(s.cron, s.cursor)),
            s.last_run_id or "-",
            console.status(s.last_status) if s.last_status else "-",
        )
    console.out.print(table)


@app.command("remove")
def remove(
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id (qflow schedule list).")],
    project: ProjectOption = None,
) -> None:
    """Delete a schedule."""
    from qflow.ci.schedule import Schedule

    _, store = _store(project)
    removed = store.remove(schedule_id)
    what = f", '{removed.cron}'" if isinstance(removed, Schedule) else ", broken"
    console.out.print(f"Removed schedule {removed.id} ({removed.workflow}{what})", markup=False)


@app.command("export")
def export(
    target: Annotated[str, typer.Argument(help="Where to: github.")] = "github",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Default: .github/workflows/qflow-schedules.yml"),
    ] = None,
    python: Annotated[str, typer.Option("--python", help="Python version on the runner.")] = "3.11",
    install: Annotated[
        str, typer.Option("--install", help="Command that installs the project.")
    ] = "python -m pip install -e .",
    project: ProjectOption = None,
) -> None:
    """Write the schedules as a GitHub Actions workflow: each job runs when its cron fires,
    or by hand (Run workflow) for the one schedule chosen. Warns about crons that fire more
    often than every 5 minutes, GitHub's shortest interval."""
    from rich.markup import escape

    from qflow.ci.files import write_atomic
    from qflow.ci.github import SCHEDULE_WORKFLOW_PATH, schedule_warnings, schedule_workflow
    from qflow.errors import QFlowError

    if target != "github":
        raise QFlowError(f"Schedules cannot be exported to {target!r}; use: github.")
    root, store = _store(project)
    schedules, broken = store.load()
    _warn_broken(store, broken)
    path = output if output is not None else root / SCHEDULE_WORKFLOW_PATH
    write_atomic(path, schedule_workflow(schedules, python=python, install=install))
    for warning in schedule_warnings(schedules, time.time()):
        console.err.print(f"[yellow]Warning:[/] {escape(warning)}")
    console.out.print(f"Wrote {path}")


def scheduler(
    catch_up: Annotated[
        str,
        typer.Option(
            "--catch-up", help="once: run each schedule missed while down once; skip: report."
        ),
    ] = "once",
    poll: Annotated[
        float, typer.Option("--poll", help="Re-read the schedules at least this often (s).")
    ] = 60.0,
    project: ProjectOption = None,
) -> None:
    """Run the project's schedules until stopped (Ctrl-C or SIGTERM). A failing run is logged
    and the loop goes on; at start it says what it missed while it was down."""
    import signal
    import threading

    from qflow.ci.scheduler import ScheduleLoop, subprocess_launcher
    from qflow.errors import QFlowError

    if catch_up not in ("once", "skip"):
        raise QFlowError(f"--catch-up {catch_up!r}: use once or skip.")
    root, store = _store(project)

    def log(message: str) -> None:
        console.err.print(f"{console.when(time.time())} {message}", markup=False)

    loop = ScheduleLoop(
        store,
        subprocess_launcher(root),
        log=log,
        catch_up="once" if catch_up == "once" else "skip",
        poll=poll,
    )

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # Set, not inherited: a service is stopped with SIGTERM, and a shell's background job
    # starts with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        loop.run(threading.Event())
    except KeyboardInterrupt:
        log("scheduler stopped")
