"""``qflow ci init github`` and ``qflow ci parse-comment``: launches from PR comments."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption

app = typer.Typer(help="Launch runs from pull-request comments.", no_args_is_help=True)


@app.command("init")
def init(
    provider: Annotated[str, typer.Argument(help="CI provider: github.")] = "github",
    python: Annotated[str, typer.Option("--python", help="Python version on the runner.")] = "3.11",
    install: Annotated[
        str, typer.Option("--install", help="Command that installs the project.")
    ] = "python -m pip install -e .",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    allow_forks: Annotated[
        bool,
        typer.Option(
            "--allow-forks",
            help="Launch pull requests from forks too, in the qflow-fork-launch environment "
            "(give it required reviewers).",
        ),
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Write .github/workflows/qflow.yml: a comment 'LAUNCH: WORKFLOW key=value …' by someone
    with write permission runs the workflow on the PR's head commit and answers with a report.

    The install runs without secrets; QFLOW_STORE/QFLOW_ARTIFACTS reach only the run and the
    report steps, in the qflow-launch environment."""
    from qflow.ci.github import write_pr_workflow
    from qflow.config import find_project
    from qflow.errors import QFlowError

    if provider != "github":
        raise QFlowError(f"CI provider {provider!r} is not supported; use: github.")
    root = find_project(project).root
    path = write_pr_workflow(
        root, python=python, install=install, force=force, allow_forks=allow_forks
    )
    console.out.print(f"Wrote {path}")
    console.out.print(
        "[dim]Optional secrets, best as secrets of the environment qflow-launch: QFLOW_STORE "
        "and QFLOW_ARTIFACTS (the team's stores), so reports compare against runs of the "
        "base branch.[/]"
    )


def _workflow_names(project: Path | None, given: list[str] | None) -> list[str]:
    if given:
        return [name for item in given for name in item.split(",") if name]
    from qflow.config import find_project
    from qflow.runtime.discovery import project_workflows

    return sorted(project_workflows(find_project(project)))


@app.command("parse-comment")
def parse_comment(
    body: Annotated[
        str | None, typer.Argument(help="The comment's text (or use --from-env).")
    ] = None,
    from_env: Annotated[
        str | None, typer.Option("--from-env", help="Read the comment from this variable.")
    ] = None,
    workflows: Annotated[
        list[str] | None,
        typer.Option("--workflows", help="Known workflow names (default: the project's)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the JSON here.")
    ] = None,
    args_file: Annotated[
        Path | None,
        typer.Option("--args-file", help="Write qflow run's arguments here, one per line."),
    ] = None,
    reply: Annotated[
        Path | None,
        typer.Option("--reply", help="On rejection, write a Markdown answer here."),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Check a 'LAUNCH: WORKFLOW key=value …' comment and print what to run, as JSON.

    Rejected (exit 1): unknown workflows, several lines, and any character that could reach a
    shell or YAML (quotes, $, ;, backticks, braces, …)."""
    from qflow.ci.comment import CommentRejectedError
    from qflow.ci.comment import parse_comment as parse
    from qflow.errors import QFlowError

    text = os.environ.get(from_env, "") if from_env else (body or "")
    try:
        request = parse(text, _workflow_names(project, workflows))
    except CommentRejectedError as exc:
        result = {"ok": False, "error": str(exc)}
        if output is not None:
            output.write_text(json.dumps(result) + "\n", encoding="utf-8")
        if reply is not None:
            reason = str(exc).replace("`", "'")
            reply.write_text(
                "QFlow did not launch anything: this comment was rejected.\n\n"
                f"```text\n{reason}\n```\n",
                encoding="utf-8",
            )
        console.print_json(result)
        raise QFlowError(str(exc)) from None
    data = request.to_json()
    if output is not None:
        output.write_text(json.dumps(data) + "\n", encoding="utf-8")
    if args_file is not None:
        args_file.write_text("".join(f"{arg}\n" for arg in request.argv), encoding="utf-8")
    console.print_json(data)
