"""``qflow diff RUN_A RUN_B`` and ``qflow compare RUN...``: why runs differ."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption


def _value(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text if len(text) <= 12 else f"{value:.6g}"
    return str(value)


def _typed(value: Any) -> str:
    return f"{_value(value)} ({type(value).__name__})"


def _print_changes(title: str, changes: dict[str, list[Any]]) -> None:
    """``key: a → b``; with the types when they differ (``C: 1 (int) → 1.0 (float)``)."""
    from rich.markup import escape

    if not changes:
        return
    console.out.print(f"[bold]{title}[/]")
    for key, (a, b) in changes.items():
        shown = (_value(a), _value(b))
        if type(a) is not type(b) and "<missing>" not in (a, b):
            shown = (_typed(a), _typed(b))
        console.out.print(f"  {escape(key)}: {escape(shown[0])} → {escape(shown[1])}")


def _print_diff(result: dict[str, Any]) -> None:
    from rich.markup import escape

    a, b = result["a"], result["b"]
    console.out.print(f"a: {a['id']} ({a['workflow']}, {a['status']})")
    console.out.print(f"b: {b['id']} ({b['workflow']}, {b['status']})")
    for name, before in result.get("matched", {}).items():
        console.out.print(f"[dim]step {escape(name)} is {escape(before)} in run a[/]")
    _print_changes("config", result["config"])
    _print_changes("params", result["params"])
    metrics = {k: v for k, v in result["metrics"].items() if not v["same"]}
    if metrics:
        console.out.print("[bold]metrics[/]")
        for key, row in metrics.items():
            delta = "" if row["delta"] is None else f"  Δ {row['delta']:+.6g}"
            if row["relative"] is not None:
                delta += f" ({row['relative']:+.1%})"
            console.out.print(f"  {escape(key)}: {_value(row['a'])} → {_value(row['b'])}{delta}")
    env = dict(result["environment"])
    packages = env.pop("packages", None)
    _print_changes("environment", env)
    if packages:
        if "unknown" in packages:
            console.out.print("  packages: lists not recorded; hashes differ")
        for name, version in packages.get("added", {}).items():
            console.out.print(f"  [green]+ {escape(name)}=={version}[/]")
        for name, version in packages.get("removed", {}).items():
            console.out.print(f"  [red]- {escape(name)}=={version}[/]")
        for name, (old, new) in packages.get("changed", {}).items():
            console.out.print(f"  [yellow]~ {escape(name)} {old} → {new}[/]")
    _print_changes("data files", result["data"])
    _print_changes("step status", result["steps"])
    _print_changes(
        "outputs (artifact hash)",
        {k: [(v or "")[:12], (w or "")[:12]] for k, (v, w) in result["outputs"].items()},
    )
    if result["cache"]:
        console.out.print("[bold]cache keys[/]")
        for name, reasons in result["cache"].items():
            console.out.print(f"  {escape(name)}: {escape('; '.join(reasons))}")
    if result["code"]:
        console.out.print("[bold]code[/]")
        for name, change in result["code"].items():
            if "only_in" in change:
                console.out.print(f"  {escape(name)}: only in run {change['only_in']}")
                continue
            if change["diff"]:
                console.out.out(change["diff"], highlight=False, end="")
            elif not change["reached"]:
                console.out.print(f"  {escape(name)}: fingerprint changed")
            for piece in change["reached"]:
                console.out.print(f"  {escape(name)}: {escape(piece['what'])}")
                console.out.out(piece["diff"], highlight=False, end="")


def diff(
    run_a: Annotated[str, typer.Argument(help="The first run (id or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="The second run.")],
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Show how two runs differ: config, params, metrics, code, environment, data, outputs."""
    from qflow.client import Client
    from qflow.provenance.diff import diff_runs

    result = diff_runs(Client(project).metadata, run_a, run_b)
    if as_json:
        console.print_json(result)
    else:
        _print_diff(result)


def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more runs (ids or prefixes).")],
    show_all: Annotated[
        bool, typer.Option("--all", help="Also show values that are the same everywhere.")
    ] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Show several runs side by side (config, params, metrics, environment)."""
    from rich.markup import escape
    from rich.table import Table

    from qflow.client import Client
    from qflow.provenance.diff import compare_runs

    result = compare_runs(Client(project).metadata, runs)
    if as_json:
        console.print_json(result)
        return
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for run_id in result["runs"]:
        table.add_column(run_id[-8:], no_wrap=True)
    for row in result["rows"]:
        if row["same"] and not show_all and not row["key"].startswith("run."):
            continue
        style = "" if row["same"] else "bold"
        cells = [escape(_value(v)) if v is not None else "-" for v in row["values"]]
        table.add_row(escape(row["key"]), *cells, style=style)
    console.out.print(table)
