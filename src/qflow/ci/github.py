"""GitHub Actions workflows: launches from pull-request comments, and exported schedules.

The PR workflow never puts the comment into a script: the body reaches ``qflow ci
parse-comment`` through an environment variable, the checked arguments reach ``qflow run``
as a bash array read from a file, and the report is posted with ``gh pr comment
--body-file``. Only collaborators (``OWNER``, ``MEMBER``, ``COLLABORATOR``) can launch; the
checkout keeps no credentials, and the token can read the code and write comments only.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.ci.files import write_atomic
from qflow.errors import QFlowError

if TYPE_CHECKING:
    from qflow.ci.schedule import Schedule

PR_WORKFLOW_PATH = Path(".github/workflows/qflow.yml")
SCHEDULE_WORKFLOW_PATH = Path(".github/workflows/qflow-schedules.yml")
DEFAULT_INSTALL = "python -m pip install -e ."

_PR_TEMPLATE = """\
# Written by `qflow ci init github`: a pull-request comment "LAUNCH: <workflow> [key=value ...]"
# by a collaborator runs the workflow on the PR's head and answers with a QFlow report.
#
# Secrets (optional): QFLOW_STORE (metadata store URL, e.g. the team's PostgreSQL) and
# QFLOW_ARTIFACTS (s3://... or gs://...). Without them each launch uses a fresh SQLite store on
# the runner, and the report has no earlier run of the base branch to compare against.
name: qflow-launch

on:
  issue_comment:
    types: [created]

permissions:
  contents: read
  issues: write
  pull-requests: write

concurrency:
  group: qflow-launch-${{ github.event.issue.number }}
  cancel-in-progress: false

jobs:
  launch:
    if: >-
      github.event.issue.pull_request &&
      startsWith(github.event.comment.body, 'LAUNCH:') &&
      contains(fromJSON('["OWNER", "MEMBER", "COLLABORATOR"]'),
      github.event.comment.author_association)
    runs-on: ubuntu-latest
    timeout-minutes: @TIMEOUT@
    env:
      PR_NUMBER: ${{ github.event.issue.number }}
      COMMENT_ID: ${{ github.event.comment.id }}
      QFLOW_BASE_BRANCH: ${{ github.event.repository.default_branch }}
      QFLOW_STORE: ${{ secrets.QFLOW_STORE }}
      QFLOW_ARTIFACTS: ${{ secrets.QFLOW_ARTIFACTS }}
      NO_COLOR: "1"
    steps:
      - name: Check out the pull request's head
        uses: actions/checkout@v5
        with:
          ref: refs/pull/${{ github.event.issue.number }}/head
          persist-credentials: false

      - name: Set up Python
        uses: actions/setup-python@v6
        with:
          python-version: "@PYTHON@"

      - name: Install the project
        run: @INSTALL@

      - name: Parse the comment
        id: parse
        env:
          COMMENT_BODY: ${{ github.event.comment.body }}
        run: >-
          qflow ci parse-comment --from-env COMMENT_BODY
          --output "$RUNNER_TEMP/launch.json"
          --args-file "$RUNNER_TEMP/launch.args"
          --reply "$RUNNER_TEMP/reply.md"

      - name: Run the workflow
        id: run
        run: |
          mapfile -t args < "$RUNNER_TEMP/launch.args"
          qflow run "${args[@]}" --tag "github_pr=$PR_NUMBER" --tag "github_comment=$COMMENT_ID"

      - name: Write the report
        id: report
        if: ${{ !cancelled() && steps.parse.outcome == 'success' }}
        run: >-
          qflow report --tag "github_comment=$COMMENT_ID"
          --format markdown --compare-to base
          --output "$RUNNER_TEMP/report"

      - name: Keep the report and its plots
        if: ${{ !cancelled() && steps.report.outcome == 'success' }}
        uses: actions/upload-artifact@v6
        with:
          name: qflow-report-${{ github.event.comment.id }}
          path: ${{ runner.temp }}/report

      - name: Answer on the pull request
        if: ${{ !cancelled() }}
        env:
          GH_TOKEN: ${{ github.token }}
          SERVER_URL: ${{ github.server_url }}
          RUN_ID: ${{ github.run_id }}
        run: |
          run_url="$SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$RUN_ID"
          body="$RUNNER_TEMP/report/report.md"
          if [ ! -f "$body" ]; then
            body="$RUNNER_TEMP/reply.md"
          fi
          if [ ! -f "$body" ]; then
            body="$RUNNER_TEMP/failed.md"
            echo "QFlow: the launch failed before a run was recorded." > "$body"
          fi
          printf '\\n[Logs, report and plots](%s)\\n' "$run_url" >> "$body"
          gh pr comment "$PR_NUMBER" --repo "$GITHUB_REPOSITORY" --body-file "$body"
"""


def _check_python(version: str) -> str:
    if re.fullmatch(r"3\.\d{1,2}", version) is None:
        raise QFlowError(f"Python version {version!r} is not like 3.11. Hint: --python 3.12")
    return version


def _check_install(command: str) -> str:
    if "\n" in command or "${{" in command:
        raise QFlowError(
            f"Install command {command!r} must be one line without '${{{{'. "
            f"Hint: --install {DEFAULT_INSTALL!r}"
        )
    return command


def pr_workflow(
    *, python: str = "3.11", install: str = DEFAULT_INSTALL, timeout_minutes: int = 180
) -> str:
    """The text of ``.github/workflows/qflow.yml``."""
    return (
        _PR_TEMPLATE.replace("@PYTHON@", _check_python(python))
        .replace("@INSTALL@", _check_install(install))
        .replace("@TIMEOUT@", str(int(timeout_minutes)))
    )


def write_pr_workflow(
    root: Path,
    *,
    python: str = "3.11",
    install: str = DEFAULT_INSTALL,
    force: bool = False,
    output: Path | None = None,
) -> Path:
    """Write the PR-launch workflow under ``root``; refuse to overwrite without ``force``."""
    path = output if output is not None else root / PR_WORKFLOW_PATH
    if path.exists() and not force:
        raise QFlowError(f"{path} exists already; nothing was written. Hint: --force replaces it.")
    write_atomic(path, pr_workflow(python=python, install=install))
    return path


def _steps(python: str, install: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "Check out",
            "uses": "actions/checkout@v5",
            "with": {"persist-credentials": False},
        },
        {
            "name": "Set up Python",
            "uses": "actions/setup-python@v6",
            "with": {"python-version": _check_python(python)},
        },
        {"name": "Install the project", "run": _check_install(install)},
    ]


def schedule_workflow(
    schedules: Sequence[Schedule], *, python: str = "3.11", install: str = DEFAULT_INSTALL
) -> str:
    """The text of ``.github/workflows/qflow-schedules.yml``: one job per schedule, run when
    its cron fires (GitHub's cron is UTC, like QFlow's scheduler) or by hand."""
    import yaml

    if not schedules:
        raise QFlowError("There are no schedules to export. Hint: qflow schedule add WORKFLOW …")
    jobs: dict[str, Any] = {}
    for schedule in schedules:
        command = shlex.join(
            [
                "qflow",
                "run",
                schedule.workflow,
                *schedule.overrides,
                "--tag",
                f"schedule={schedule.id}",
            ]
        )
        jobs[f"schedule_{schedule.id}"] = {
            "name": f"{schedule.workflow} ({schedule.cron})",
            "if": (
                "github.event_name == 'workflow_dispatch' || "
                f"github.event.schedule == '{schedule.cron}'"
            ),
            "runs-on": "ubuntu-latest",
            "env": {
                "QFLOW_STORE": "${{ secrets.QFLOW_STORE }}",
                "QFLOW_ARTIFACTS": "${{ secrets.QFLOW_ARTIFACTS }}",
                "NO_COLOR": "1",
            },
            "steps": [*_steps(python, install), {"name": "Run the workflow", "run": command}],
        }
    crons = sorted({s.cron for s in schedules})
    document = {
        "name": "qflow-schedules",
        "on": {"schedule": [{"cron": c} for c in crons], "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": jobs,
    }
    header = "# Written by `qflow schedule export github` from .qflow/schedules.json.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
