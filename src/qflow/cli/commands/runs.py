"""``qflow runs``, ``qflow show``, ``qflow logs``: read what runs recorded;
``qflow runs delete|archive|restore``: a run's lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption, parse_tags

if TYPE_CHECKING:
    from qflow.client.client import RunView, StepView


def _client(project: Any) -> Any:
    from qflow.client import Client

    return Client(project)


def _run_json(run: RunView) -> dict[str, Any]:
    record = run.record
    return {
        "id": record.id,
        "workflow": record.workflow,
        "status": record.status,
        "created_at": record.created_at,
        "ended_at": record.ended_at,
        "config": record.config,
        "tags": record.tags,
        "params": record.params,
        "metrics": record.metrics_summary,
        "error": record.error,
        "lifecycle": str(record.lifecycle),
        "archived_at": record.archived_at,
        "deleted_at": record.deleted_at,
    }


app = typer.Typer(
    help="List runs (newest first), or delete, archive and restore them.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow.")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", "-s", help="Only this status.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only runs with key=value.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 20,
    filter_text: Annotated[
        str | None,
        typer.Option("--filter", "-f", help='e.g. "metrics.acc > 0.9 and params.C = 0.5"'),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Archived and deleted runs too.")
    ] = False,
    archived: Annotated[bool, typer.Option("--archived", help="Archived runs too.")] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """List runs, newest first (archived and deleted ones with --all).

    Subcommands: delete, archive, restore (qflow runs delete --help)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    table_runs = _client(project).runs(
        workflow,
        status=status,
        tags=parse_tags(tag),
        limit=limit,
        filter=filter_text,
        include_archived=show_all or archived,
        include_deleted=show_all,
    )
    if as_json:
        console.print_json([_run_json(r) for r in table_runs])
        return
    metric_keys = sorted({k for r in table_runs for k in r.metrics_summary})[:4]
    hidden = any(r.lifecycle != "active" for r in table_runs)
    table = Table(box=None, header_style="bold")
    table.add_column("run", no_wrap=True, min_width=26)
    columns = ("workflow", "status", *(("lifecycle",) if hidden else ()), "started", "duration")
    for column in (*columns, *metric_keys):
        table.add_column(column, no_wrap=True)
    for r in table_runs:
        metrics = [
            f"{r.metrics_summary[k]:.4g}" if k in r.metrics_summary else "" for k in metric_keys
        ]
        table.add_row(
            r.id,
            r.workflow,
            console.status(r.status),
            *((str(r.lifecycle),) if hidden else ()),
            console.when(r.created_at)[5:16],
            console.duration(r.created_at, r.ended_at),
            *metrics,
        )
    if not table_runs:
        console.err.print("No runs yet. Start one with: qflow run WORKFLOW")
        return
    console.out.print(table)


def _step_json(step: StepView) -> dict[str, Any]:
    record = step.record
    return {
        "name": record.name,
        "step": record.step,
        "status": record.status,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "attempts": record.attempts,
        "params": record.params,
        "cache_key": record.cache_key,
        "cached_from": record.cached_from,
        "inputs": {k: v.key for k, v in record.inputs.items()},
        "outputs": {k: v.to_dict() for k, v in record.outputs.items()},
        "error": record.error,
        "reason": record.reason,
    }


def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Show a run: steps, timings, params, metrics, artifacts."""
    from rich.table import Table

    client = _client(project)
    run = client.run(run_id)
    files = client.metadata.data_files(run.record.id)
    if as_json:
        data = _run_json(run)
        data["steps"] = [_step_json(s) for s in run.steps]
        data["artifacts"] = [{"name": a.name, **a.ref.to_dict()} for a in run.artifacts]
        data["files"] = [
            {
                "step": f.step_name,
                "name": f.name,
                "path": f.path,
                "sha256": f.sha256,
                "size": f.size,
            }
            for f in files
        ]
        console.print_json(data)
        return
    record = run.record
    took = console.duration(record.created_at, record.ended_at)
    console.out.print(
        f"[bold]{record.workflow}[/] run [bold]{record.id}[/] {console.status(record.status)}"
        f"  {console.when(record.created_at)}  {took}"
    )
    if record.error:
        console.out.print(f"[red]error:[/] {record.error}")
    if record.config:
        console.out.print(f"config: {record.config}")
    steps = Table(title="steps", box=None, header_style="bold", title_justify="left")
    for column in ("step", "status", "duration", "params", "outputs", "why"):
        steps.add_column(column)
    for s in run.steps:
        r = s.record
        outputs = ", ".join(
            f"{name}:{ref.key[:10]}{' (pickle)' if ref.pickled else ''}"
            for name, ref in r.outputs.items()
        )
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        steps.add_row(
            r.name,
            console.status(r.status),
            console.duration(r.started_at, r.ended_at),
            params,
            outputs,
            r.reason or "",
        )
    console.out.print(steps)
    if record.metrics_summary:
        metrics = Table(
            title="metrics (latest)", box=None, header_style="bold", title_justify="left"
        )
        metrics.add_column("metric")
        metrics.add_column("value")
        for key, value in sorted(record.metrics_summary.items()):
            metrics.add_row(key, repr(value))
        console.out.print(metrics)
    for artifact in run.artifacts:
        console.out.print(
            f"artifact {artifact.name}  {artifact.ref.size} bytes  {artifact.ref.key[:12]}"
        )
    _print_files(files)


def _print_files(files: list[Any]) -> None:
    """The files each step read and wrote (``qf.DataFile`` arguments as ``data``)."""
    from qflow.runtime.reads import is_read_record, is_write_record

    if files:
        console.out.print("[bold]files[/]")
    for f in files:
        verb = "read" if is_read_record(f.name) else "wrote" if is_write_record(f.name) else "data"
        console.out.print(
            f"{f.step_name}  {verb:<5}  {f.path}  {f.sha256[:10]}  {f.size} bytes", highlight=False
        )


def logs(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    step: Annotated[str | None, typer.Argument(help="Step run name (3_fit) or step name.")] = None,
    project: ProjectOption = None,
) -> None:
    """Print the captured stdout/stderr (log records included) and traceback of a run's
    steps. For a mapped step (STEP or its name), every item's, each under its own header;
    STEP[3] picks one item. Log records are kept from INFO for the project's loggers:
    `log-level` under [tool.qflow] in pyproject.toml, or QFLOW_LOG_LEVEL, changes that."""
    run = _client(project).run(run_id)
    steps = run.steps
    if step:
        name = _step_run_name(run, step)
        steps = [s for s in run.steps if s.name == name or s.name.startswith(f"{name}[")]
    items = 0
    for s in steps:
        r = s.record
        items += "[" in r.name
        console.out.print(f"[bold]── {r.name}[/] {console.status(r.status)}", highlight=False)
        if r.error and "[" not in r.name and not r.traceback:
            console.out.out(f"error: {r.error}", highlight=False)
        for label, text in (("stdout", r.stdout), ("stderr", r.stderr), ("traceback", r.traceback)):
            if text:
                console.out.print(f"[dim]{label}:[/]")
                console.out.out(text.rstrip("\n"), highlight=False)
    if step and items > 1:
        failed = next((s.name for s in steps if "[" in s.name and s.status == "failed"), None)
        example = failed or next(s.name for s in steps if "[" in s.name)
        console.out.print(
            f"[dim]{items} items. Hint: qflow logs {run.id} '{example}' shows one item.[/]",
            highlight=False,
        )


def _step_run_name(run: Any, step: str) -> str:
    """The step run STEP names: a run name (``1_stats``, ``1_stats[3]``), or a step name that
    one call ran (a mapped step's items do not count as calls)."""
    names: list[str] = [s.name for s in run.steps]
    if step in names:
        return step
    calls: list[str] = [s.name for s in run.steps if s.step == step and "[" not in s.name]
    if len(calls) == 1:
        return calls[0]
    return str(run.step(step).record.name)  # raises, naming the choices


RunIds = Annotated[
    list[str], typer.Argument(metavar="RUN", help="Run ids or unique prefixes of them.")
]


def _change(run_ids: list[str], lifecycle: str, as_json: bool, project: Any) -> None:
    client = _client(project)
    change = {
        "deleted": client.delete_runs,
        "archived": client.archive_runs,
        "active": client.restore_runs,
    }[lifecycle]
    done = change(*run_ids)
    if as_json:
        console.print_json([_run_json(r) for r in done])
        return
    verb = {"deleted": "Deleted", "archived": "Archived", "active": "Restored"}[lifecycle]
    for r in done:
        console.out.print(f"{verb} {r.id} ({r.workflow}, {r.status}).")
    if lifecycle == "deleted":
        console.out.print(
            "Hidden now; `qflow gc` removes their records and reclaims the artifacts only they "
            "used. Until then `qflow runs restore RUN` brings them back."
        )


@app.command("delete")
def delete(run_ids: RunIds, as_json: JsonOption = False, project: ProjectOption = None) -> None:
    """Delete runs: hidden at once, removed (with the artifacts only they used) by qflow gc."""
    _change(run_ids, "deleted", as_json, project)


@app.command("archive")
def archive(run_ids: RunIds, as_json: JsonOption = False, project: ProjectOption = None) -> None:
    """Archive runs: hidden from qflow runs (see them with --archived or --all), kept."""
    _change(run_ids, "archived", as_json, project)


@app.command("restore")
def restore(run_ids: RunIds, as_json: JsonOption = False, project: ProjectOption = None) -> None:
    """Bring archived runs, or deleted ones before qflow gc, back into listings."""
    _change(run_ids, "active", as_json, project)
