"""``qflow runs``, ``qflow show``, ``qflow logs``: read what runs recorded."""

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
    }


def runs(
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
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """List runs, newest first."""
    from rich.table import Table

    table_runs = _client(project).runs(
        workflow, status=status, tags=parse_tags(tag), limit=limit, filter=filter_text
    )
    if as_json:
        console.print_json([_run_json(r) for r in table_runs])
        return
    metric_keys = sorted({k for r in table_runs for k in r.metrics_summary})[:4]
    table = Table(box=None, header_style="bold")
    table.add_column("run", no_wrap=True, min_width=26)
    for column in ("workflow", "status", "started", "duration", *metric_keys):
        table.add_column(column, no_wrap=True)
    for r in table_runs:
        metrics = [
            f"{r.metrics_summary[k]:.4g}" if k in r.metrics_summary else "" for k in metric_keys
        ]
        table.add_row(
            r.id,
            r.workflow,
            console.status(r.status),
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

    run = _client(project).run(run_id)
    if as_json:
        data = _run_json(run)
        data["steps"] = [_step_json(s) for s in run.steps]
        data["artifacts"] = [{"name": a.name, **a.ref.to_dict()} for a in run.artifacts]
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


def logs(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    step: Annotated[str | None, typer.Argument(help="Step run name (3_fit) or step name.")] = None,
    project: ProjectOption = None,
) -> None:
    """Print the captured stdout/stderr (and traceback) of a run's steps."""
    run = _client(project).run(run_id)
    steps = [run.step(step)] if step else run.steps
    for s in steps:
        r = s.record
        console.out.print(f"[bold]── {r.name}[/] {console.status(r.status)}")
        for label, text in (("stdout", r.stdout), ("stderr", r.stderr), ("traceback", r.traceback)):
            if text:
                console.out.print(f"[dim]{label}:[/]")
                console.out.out(text.rstrip("\n"), highlight=False)
