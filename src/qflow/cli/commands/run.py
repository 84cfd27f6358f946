"""``qflow run``: run a workflow with config overrides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qflow.cli import console
from qflow.cli.options import OverridesArgument, ProjectOption, parse_tags

if TYPE_CHECKING:
    from qflow.runtime.launch import LaunchRequest


def run(
    workflow: Annotated[
        str, typer.Argument(help="Workflow name, module:function or file.py:function.")
    ],
    overrides: OverridesArgument = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor", "-e", help="local, parallel or ray (default: the config's, or local)."
        ),
    ] = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Worker processes for parallel.")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (executor ray).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step again.")] = False,
    rerun: Annotated[
        list[str] | None, typer.Option("--rerun", help="Run this step again (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag the run: key=value.")] = None,
    project: ProjectOption = None,
    multirun: Annotated[
        bool, typer.Option("--multirun", "-m", help="One run per combination: model.C=0.1,1")
    ] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="With -m: a metric to show as a column of the summary table (repeatable; "
            "default: the metrics the runs logged, up to 6).",
        ),
    ] = None,
    from_run: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Take missing inputs from this earlier run: the outputs of steps left out "
            "by --from-steps/--to-steps, and workflow parameters no config value gives "
            "(matched by output or step name).",
        ),
    ] = None,
    from_steps: Annotated[
        list[str] | None,
        typer.Option(
            "--from-steps", help="Run these steps (name or call, e.g. 3_fit) and what follows."
        ),
    ] = None,
    to_steps: Annotated[
        list[str] | None,
        typer.Option("--to-steps", help="Run these steps and what they need, and stop."),
    ] = None,
) -> None:
    """Run WORKFLOW. Overrides set config values, e.g. `qflow run train model.C=0.5`.

    Part of a workflow: `--from-steps evaluate` runs evaluate and what follows it, with the
    outputs it needs taken from the latest run that has them (or from `--from RUN`).
    A workflow fed by another one's outputs: `qflow run data_science --from RUN`."""
    from qflow.runtime.launch import LaunchRequest, launch
    from qflow.runtime.progress import default_progress

    if multirun and (from_run or from_steps or to_steps):
        from qflow.errors import QFlowError

        raise QFlowError(
            "--from, --from-steps and --to-steps run one partial run; they do not go with "
            "--multirun.\nHint: run each combination with its own qflow run."
        )
    request = LaunchRequest(
        workflow,
        overrides=overrides or [],
        project_dir=project,
        executor=executor,
        workers=workers,
        executor_options={"address": address} if address else None,
        use_cache=not no_cache,
        rerun=rerun or [],
        plugins=[default_progress()],
        tags=parse_tags(tag),
        from_run=from_run,
        from_steps=from_steps or [],
        to_steps=to_steps or [],
    )
    if multirun:
        run_sweep(request, metric or [])
        return

    run_id = launch(request)
    console.out.print(f"Run [bold]{run_id}[/] {console.status('succeeded')}")
    if from_run or from_steps or to_steps:
        _say_where_inputs_came_from(run_id, project)
    console.out.print(f"[dim]qflow show {run_id}[/]")


def _say_where_inputs_came_from(run_id: str, project: Path | None) -> None:
    """After a partial or cross-run invocation: which calls came from which earlier run."""
    from qflow.client import Client

    client = Client(project)
    try:
        run = client.run(run_id)
        source = run.record.meta.get("inputs_from")
        if source:
            mark = f"taken from run {source}"
            taken = [s.record.name for s in run.steps if (s.record.reason or "").startswith(mark)]
            console.out.print(f"[dim]Taken from run {source}: {', '.join(taken)}[/]")
    finally:
        client.metadata.dispose()


def run_sweep(request: LaunchRequest, metrics: list[str] | None = None) -> None:
    """``-m``: one run per combination of the swept values in ``request.overrides``, all
    under one sweep id; each run's request is ``request`` with that combination.

    A failing combination does not stop the others; the exit code is 1 if any failed. The
    summary table has a column per metric in ``metrics`` (default: those the runs logged).
    """
    from dataclasses import replace

    from rich.table import Table

    from qflow.config import expand_multirun, find_project
    from qflow.errors import QFlowError, StepFailedError
    from qflow.ids import new_run_id
    from qflow.runtime.launch import launch
    from qflow.runtime.progress import default_progress
    from qflow.store.metadata.records import RunStatus

    workflow = str(request.workflow)
    project = None if request.project_dir is None else Path(request.project_dir)
    combinations = expand_multirun(list(request.overrides), find_project(project).conf_dir)
    sweep_id = new_run_id()
    console.err.print(f"Sweep [bold]{sweep_id}[/]: {len(combinations)} runs of {workflow}")
    rows: list[tuple[str, str, RunStatus, str]] = []
    for index, combination in enumerate(combinations, 1):
        shown = " ".join(combination) or "(no overrides)"
        console.err.print(f"[bold]── run {index}/{len(combinations)}[/] {shown}")
        try:
            each = replace(
                request, overrides=combination, sweep_id=sweep_id, plugins=[default_progress()]
            )
            run_id = launch(each)
            rows.append((shown, run_id, RunStatus.SUCCEEDED, ""))
        except QFlowError as exc:
            run_id = exc.run_id if isinstance(exc, StepFailedError) else "-"
            rows.append((shown, run_id, RunStatus.FAILED, str(exc).splitlines()[0]))
            console.err.print(f"[red]failed:[/] {str(exc).splitlines()[0]}")
    summaries = _metrics_summaries(project, [row[1] for row in rows])
    columns = list(metrics or []) or _metric_columns(summaries)
    table = Table(box=None, header_style="bold", title=f"sweep {sweep_id}", title_justify="left")
    for column in ("#", "overrides", "run", "status"):
        table.add_column(column)
    for metric in columns:
        table.add_column(metric, justify="right")
    table.add_column("error")
    for index, (shown, run_id, status, error) in enumerate(rows, 1):
        values = summaries.get(run_id, {})
        cells = [f"{values[m]:.6g}" if m in values else "-" for m in columns]
        table.add_row(str(index), shown, run_id, console.status(status), *cells, error)
    console.out.print(table)
    failed = sum(1 for row in rows if row[2] is RunStatus.FAILED)
    if failed:
        raise QFlowError(
            f"{failed} of {len(rows)} runs failed in sweep {sweep_id}.\n"
            f"Hint: qflow runs --status failed; qflow logs RUN shows a failed step's traceback."
        )


SWEEP_METRIC_COLUMNS = 6
"""The multirun table shows at most this many metrics (``qflow runs`` lists them all)."""


def _metrics_summaries(project: Path | None, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Each recorded run's metrics (latest value per key), for the multirun table."""
    from qflow.config import find_project
    from qflow.errors import QFlowError
    from qflow.store import open_stores

    metadata, _ = open_stores(find_project(project).root)
    summaries: dict[str, dict[str, float]] = {}
    for run_id in run_ids:
        if run_id == "-":
            continue
        try:
            summaries[run_id] = dict(metadata.get_run(run_id).metrics_summary)
        except QFlowError:  # the table must not hide the sweep's outcome
            continue
    return summaries


def _metric_columns(summaries: dict[str, dict[str, float]]) -> list[str]:
    """The metrics the runs logged, in the order they first appear (the first run's first)."""
    keys = list(dict.fromkeys(key for summary in summaries.values() for key in summary))
    return keys[:SWEEP_METRIC_COLUMNS]
