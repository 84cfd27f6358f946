"""``qflow sweep WORKFLOW``: an Optuna search over the config; ``qflow sweeps list|show``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, OverridesArgument, ProjectOption

if TYPE_CHECKING:
    from qflow.sweep.driver import SweepOutcome, SweepStart, TrialResult

app = typer.Typer(help="Hyperparameter sweeps: list them, show one.", no_args_is_help=True)


def _params(pairs: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, expression = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"--param {pair!r} must look like key=expression, "
                "e.g. model.C='log_float(1e-4, 10)'"
            )
        params[key.strip()] = expression
    return params


def _shown(params: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _print_trial(result: TrialResult) -> None:
    value = f"{result.value:.6g}" if result.value is not None else "-"
    style = {"complete": "green", "pruned": "yellow", "fail": "red", "interrupted": "magenta"}[
        result.state
    ]
    console.err.print(
        f"trial {result.number:>3} [{style}]{result.state:<11}[/] {value:>10}  "
        f"{_shown(result.params)}  [dim]{result.run_id or ''}[/]"
        + (f"  [red]{result.error}[/]" if result.error else "")
    )


def _print_start(start: SweepStart) -> None:
    from rich.markup import escape

    for fixed in start.repaired:
        console.err.print(
            f"trial {fixed.number:>3} repaired: {fixed.was} -> {fixed.now}, as its run "
            f"{fixed.run_id or '(none)'} recorded"
        )
    if start.retried:
        several = len(start.retried) > 1
        console.err.print(
            f"trial{'s' if several else ''} {', '.join(map(str, start.retried))} "
            f"{'were' if several else 'was'} interrupted: "
            f"{'their' if several else 'its'} parameters run again"
        )
    at_once = f", {start.parallel} at a time" if start.parallel > 1 else ""
    console.err.print(
        f"Sweep {start.sweep_id} of {escape(start.workflow)}: "
        f"{start.done} of {start.target} trials done{at_once}.\n"
        f"Ctrl-C stops it; continue it with: {escape(start.command)}",
        soft_wrap=True,
    )


def sweep(
    workflow: Annotated[
        str | None,
        typer.Argument(help="Workflow name, module:function or file.py:function."),
    ] = None,
    overrides: OverridesArgument = None,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Trials in the sweep (default 20).")
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", "-p", help="Trials at once, each in its own process.")
    ] = 1,
    sampler: Annotated[str, typer.Option(help="tpe, random, grid or cmaes.")] = "tpe",
    pruner: Annotated[
        str, typer.Option(help="median, hyperband, successive_halving, percentile or none.")
    ] = "median",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Search a key: model.C='log_float(1e-4, 10)' (repeatable)."),
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="Metric to optimise (default: sweep.objective).")
    ] = None,
    direction: Annotated[
        str | None, typer.Option(help="maximize or minimize (default: sweep.direction).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampler.")] = None,
    executor: Annotated[
        str | None, typer.Option("--executor", "-e", help="local, parallel, ray…")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Workers of the executor.")] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue this sweep (id or prefix): repair its records from its runs, "
            "re-try interrupted trials, run the rest.",
        ),
    ] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Search WORKFLOW's config with Optuna: one QFlow run per trial, all tagged with the sweep.

    The search space is the config's `sweep:` section (objective, direction, params) or
    --param options, e.g. `qflow sweep train --trials 50 --param model.C='log_float(1e-4, 10)'`.

    The sweep id and the command that continues the sweep are printed first. Ctrl-C stops
    it: finished trials are kept, stopped ones are marked interrupted (they do not count
    toward --trials), and `qflow sweep WORKFLOW --resume ID` continues it.
    """
    from qflow.sweep.driver import resume_sweep, start_sweep

    if resume is not None:
        if overrides or param or objective or direction:
            raise typer.BadParameter(
                "--resume continues a sweep with its own workflow, overrides and search space; "
                "give only WORKFLOW, --trials, --parallel, --executor and --workers with it."
            )
        outcome = resume_sweep(
            resume,
            workflow=workflow,
            trials=trials,
            parallel=parallel,
            executor=executor,
            workers=workers,
            project_dir=project,
            on_trial=None if as_json else _print_trial,
            on_start=_print_start,
        )
    else:
        if workflow is None:
            raise typer.BadParameter("give a WORKFLOW to sweep, or --resume ID.")
        outcome = start_sweep(
            workflow,
            overrides=overrides or [],
            params=_params(param),
            objective=objective,
            direction=direction,
            trials=20 if trials is None else trials,
            parallel=parallel,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            executor=executor,
            workers=workers,
            project_dir=project,
            on_trial=None if as_json else _print_trial,
            on_start=_print_start,
        )
    _print_outcome(outcome, as_json)


def _print_outcome(outcome: SweepOutcome, as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        console.print_json(
            {
                "id": outcome.sweep_id,
                "trials": [asdict(r) for r in outcome.results],
                "best": asdict(outcome.best) if outcome.best else None,
            }
        )
        return
    console.out.print(f"Sweep [bold]{outcome.sweep_id}[/]: {len(outcome.results)} trials run")
    if outcome.best is not None:
        best = outcome.best
        console.out.print(
            f"best: trial {best.number} = {best.value:.6g}  {_shown(best.params)}  "
            f"run {best.run_id}"
        )
    console.out.print(f"[dim]qflow sweeps show {outcome.sweep_id}[/]")


@app.command("list")
def list_(as_json: JsonOption = False, project: ProjectOption = None) -> None:
    """The project's sweeps, newest first."""
    from rich.table import Table

    from qflow.sweep.report import list_sweeps

    rows = list_sweeps(project)
    if as_json:
        console.print_json(rows)
        return
    if not rows:
        console.err.print("No sweeps yet. Hint: qflow sweep WORKFLOW --trials 20")
        return
    table = Table(box=None, header_style="bold")
    for column in ("sweep", "workflow", "objective", "trials", "best", "started"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        best = row["best_value"]
        table.add_row(
            row["id"],
            str(row["workflow"]),
            f"{row['objective']} ({row['direction'][:3]})",
            f"{row['trials']}/{row['target']}",
            f"{best:.6g}" if best is not None else "-",
            (row["started"] or "-")[:19].replace("T", " "),
        )
    console.out.print(table)


@app.command("show")
def show(
    sweep_id: Annotated[str, typer.Argument(help="Sweep id or a unique prefix.")],
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw the plots.")] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Best trial and its parameters, parameter importances, trials, and plots (PNG)."""
    from rich.table import Table

    from qflow.sweep.report import sweep_report

    report = sweep_report(sweep_id, project, plots=not no_plots)
    if as_json:
        console.print_json(report)
        return
    states = ", ".join(f"{n} {state}" for state, n in sorted(report["states"].items()))
    console.out.print(
        f"Sweep [bold]{report['id']}[/] of {report['workflow']}: {report['direction']} "
        f"{report['objective']} ({report['sampler']}); {states or 'no trials'}"
    )
    best = report["best"]
    if best is not None:
        console.out.print(
            f"best: trial {best['number']} = {best['value']:.6g}  run {best['run_id']}"
        )
        for key, value in best["params"].items():
            console.out.print(f"  {key} = {value}")
    if report["importances"]:
        console.out.print("importances:")
        for key, value in report["importances"].items():
            console.out.print(f"  {key:<24} {value:.3f}")
    table = Table(box=None, header_style="bold")
    for column in ("#", "state", report["objective"] or "value", "params", "run"):
        table.add_column(column, no_wrap=True)
    for trial in report["trials"]:
        value = trial["value"]
        table.add_row(
            str(trial["number"]),
            trial["state"],
            f"{value:.6g}" if value is not None else "-",
            _shown(trial["params"]),
            trial["run_id"] or "-",
        )
    console.out.print(table)
    for name, path in report["plots"].items():
        console.out.print(f"{name}: {path}")
