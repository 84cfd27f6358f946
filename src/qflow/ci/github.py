"""GitHub Actions workflows: launches from pull-request comments, and exported schedules.

The PR workflow (``qflow ci init github``) has four jobs:

- ``authorize`` (read-only token, no secrets): asks the API whether the commenter has write,
  maintain or admin permission on the repository, and pins the pull request's head commit as
  it is when the job runs; it refuses a head commit dated after the comment (pushed after the
  approval), a closed pull request, and, unless ``allow_forks``, a pull request from a fork; a
  fork's launch must name the commit it approves (``@<sha>``: a fork's dates are its pusher's);
- ``build`` (no secrets): checks out exactly that commit and installs the project into a
  virtual environment, which it hands on as a workflow artifact; so ``pip install`` and any
  build code of the pull request never see ``QFLOW_STORE`` or ``QFLOW_ARTIFACTS``;
- ``launch``: bound to the ``qflow-launch`` environment (``qflow-fork-launch`` for forks,
  where a maintainer sets required reviewers); checks out the same commit, unpacks the
  environment, and puts the secrets only into the two steps that talk to the stores (the run
  of the approved commit, and the report);
- ``refused``: answers on the pull request when ``authorize`` said no.

The comment never reaches a script: the body reaches ``qflow ci parse-comment`` through an
environment variable, the checked arguments reach ``qflow run`` as a bash array read from a
file, and the report is posted with ``gh pr comment --body-file``. Each launch has its own
concurrency group (the comment's id), so no later comment can cancel a queued launch.
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
# by someone with write permission runs the workflow on the PR's head commit (pinned when the
# comment is handled) and answers with a QFlow report. Ending the comment with @<commit>
# (e.g. "LAUNCH: train lr=0.1 @1a2b3c4") launches only if the head is still that commit.
#
# Secrets (optional; best as environment secrets of the `qflow-launch` environment):
# QFLOW_STORE (metadata store URL, e.g. the team's PostgreSQL) and QFLOW_ARTIFACTS (s3://...,
# gs://...). They reach only the steps that run the approved commit and write its report, never
# the install. Without them each launch uses a fresh SQLite store on the runner, and the report
# has no earlier run of the base branch to compare against.
# Pull requests from forks: @FORKS_NOTE@
name: qflow-launch

on:
  issue_comment:
    types: [created]

permissions: {}

concurrency:
  group: qflow-launch-${{ github.event.issue.number }}-${{ github.event.comment.id }}
  cancel-in-progress: false

jobs:
  authorize:
    if: >-
      github.event.issue.pull_request &&
      startsWith(github.event.comment.body, 'LAUNCH:')
    runs-on: ubuntu-latest
    timeout-minutes: 5
    permissions:
      contents: read
      pull-requests: read
    outputs:
      sha: ${{ steps.check.outputs.sha }}
      fork: ${{ steps.check.outputs.fork }}
      reason: ${{ steps.check.outputs.reason }}
    steps:
      - name: Check the commenter's permission and pin the head commit
        id: check
        env:
          GH_TOKEN: ${{ github.token }}
          PR_NUMBER: ${{ github.event.issue.number }}
          COMMENTER: ${{ github.event.comment.user.login }}
          COMMENTED_AT: ${{ github.event.comment.created_at }}
          COMMENT_BODY: ${{ github.event.comment.body }}
          ALLOW_FORKS: "@ALLOW_FORKS@"
        run: |
          set -euo pipefail
          refuse() {
            echo "::error::$1"
            echo "$1" >> "$GITHUB_STEP_SUMMARY"
            echo "reason=$1" >> "$GITHUB_OUTPUT"
            exit 1
          }
          role=$(gh api "repos/$GITHUB_REPOSITORY/collaborators/$COMMENTER/permission" \\
            --jq .role_name) || refuse "Could not read $COMMENTER's permission."
          case "$role" in
            admin|maintain|write) ;;
            *) refuse "$COMMENTER has '$role' permission; launching needs write/maintain/admin." ;;
          esac
          gh api "repos/$GITHUB_REPOSITORY/pulls/$PR_NUMBER" > "$RUNNER_TEMP/pr.json"
          state=$(jq -r .state "$RUNNER_TEMP/pr.json")
          sha=$(jq -r .head.sha "$RUNNER_TEMP/pr.json")
          head_repo=$(jq -r '.head.repo.full_name // ""' "$RUNNER_TEMP/pr.json")
          [ "$state" = open ] || refuse "Pull request #$PR_NUMBER is $state."
          [[ "$sha" =~ ^[0-9a-f]{40}$ ]] || refuse "No head commit found for #$PR_NUMBER."
          fork=false
          if [ "$head_repo" != "$GITHUB_REPOSITORY" ]; then
            fork=true
            [ "$ALLOW_FORKS" = true ] || refuse "Pull request #$PR_NUMBER comes from a fork \\
          ($head_repo); fork launches are off (qflow ci init github --allow-forks)."
          fi
          pinned_re='[[:space:]]@([0-9a-f]{7,40})[[:space:]]*$'
          if [[ "$(head -n 1 <<< "$COMMENT_BODY")" =~ $pinned_re ]]; then
            # The comment names the commit it approves: only that commit is launched.
            [[ "$sha" == "${BASH_REMATCH[1]}"* ]] || refuse "The comment approves commit \\
          ${BASH_REMATCH[1]}, but the head of #$PR_NUMBER is now $sha. Comment again."
          elif [ "$fork" = true ]; then
            # A fork's owner pushes without write permission and chooses the commit dates:
            # only the commit the maintainer names can be trusted.
            refuse "A launch of a pull request from a fork must name the commit it approves: \\
          end the comment with @$sha (after reviewing it)."
          else
            # Whoever pushes to this repository's branches has write permission already.
            committed=$(gh api "repos/$GITHUB_REPOSITORY/commits/$sha" \\
              --jq .commit.committer.date)
            if [[ "$committed" > "$COMMENTED_AT" ]]; then
              refuse "Head commit $sha is dated $committed, after the comment \\
          ($COMMENTED_AT): it was pushed after the launch was asked for. Comment again."
            fi
          fi
          echo "sha=$sha" >> "$GITHUB_OUTPUT"
          echo "fork=$fork" >> "$GITHUB_OUTPUT"
          echo "Launching $sha for $COMMENTER ($role)." >> "$GITHUB_STEP_SUMMARY"

  build:
    needs: authorize
    runs-on: ubuntu-latest
    timeout-minutes: 60
    permissions:
      contents: read
    outputs:
      python: ${{ steps.python.outputs.python-version }}
    steps:
      - name: Check out the approved commit
        uses: actions/checkout@v5
        with:
          ref: ${{ needs.authorize.outputs.sha }}
          persist-credentials: false

      - name: Make sure it is the approved commit
        env:
          HEAD_SHA: ${{ needs.authorize.outputs.sha }}
        run: test "$(git rev-parse HEAD)" = "$HEAD_SHA"

      - name: Set up Python
        id: python
        uses: actions/setup-python@v6
        with:
          python-version: "@PYTHON@"

      - name: Install the project (no secrets in this job)
        run: |
          python -m venv "$RUNNER_TEMP/venv"
          source "$RUNNER_TEMP/venv/bin/activate"
          @INSTALL@
          tar -C "$RUNNER_TEMP" -czf "$RUNNER_TEMP/venv.tar.gz" venv

      - name: Hand the environment on
        uses: actions/upload-artifact@v6
        with:
          name: qflow-venv-${{ github.event.comment.id }}
          path: ${{ runner.temp }}/venv.tar.gz
          retention-days: 1

  launch:
    needs: [authorize, build]
    runs-on: ubuntu-latest
    timeout-minutes: @TIMEOUT@
    environment: >-
      ${{ needs.authorize.outputs.fork == 'true' && 'qflow-fork-launch' || 'qflow-launch' }}
    permissions:
      contents: read
      issues: write
      pull-requests: write
    env:
      PR_NUMBER: ${{ github.event.issue.number }}
      COMMENT_ID: ${{ github.event.comment.id }}
      HEAD_SHA: ${{ needs.authorize.outputs.sha }}
      QFLOW_BASE_BRANCH: ${{ github.event.repository.default_branch }}
      NO_COLOR: "1"
    steps:
      - name: Check out the approved commit
        uses: actions/checkout@v5
        with:
          ref: ${{ needs.authorize.outputs.sha }}
          persist-credentials: false

      - name: Make sure it is the approved commit
        run: test "$(git rev-parse HEAD)" = "$HEAD_SHA"

      - name: Set up the Python the environment was built with
        uses: actions/setup-python@v6
        with:
          python-version: ${{ needs.build.outputs.python }}

      - name: Get the environment
        uses: actions/download-artifact@v7
        with:
          name: qflow-venv-${{ github.event.comment.id }}
          path: ${{ runner.temp }}

      - name: Unpack the environment
        run: |
          tar -C "$RUNNER_TEMP" -xzf "$RUNNER_TEMP/venv.tar.gz"
          echo "$RUNNER_TEMP/venv/bin" >> "$GITHUB_PATH"

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
        env:
          QFLOW_STORE: ${{ secrets.QFLOW_STORE }}
          QFLOW_ARTIFACTS: ${{ secrets.QFLOW_ARTIFACTS }}
        run: |
          mapfile -t args < "$RUNNER_TEMP/launch.args"
          qflow run "${args[@]}" --tag "github_pr=$PR_NUMBER" \\
            --tag "github_comment=$COMMENT_ID" --tag "github_sha=$HEAD_SHA"

      - name: Write the report
        id: report
        if: ${{ !cancelled() && steps.parse.outcome == 'success' }}
        env:
          QFLOW_STORE: ${{ secrets.QFLOW_STORE }}
          QFLOW_ARTIFACTS: ${{ secrets.QFLOW_ARTIFACTS }}
        run: >-
          qflow report --tag "github_comment=$COMMENT_ID"
          --format markdown --compare-to base
          --output "$RUNNER_TEMP/report"

      - name: Keep the report
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
          printf '\\nCommit %s. [Logs and report](%s)\\n' "$HEAD_SHA" "$run_url" >> "$body"
          gh pr comment "$PR_NUMBER" --repo "$GITHUB_REPOSITORY" --body-file "$body"

  refused:
    needs: authorize
    if: ${{ failure() && needs.authorize.result == 'failure' }}
    runs-on: ubuntu-latest
    timeout-minutes: 5
    permissions:
      issues: write
      pull-requests: write
    env:
      GH_TOKEN: ${{ github.token }}
      PR_NUMBER: ${{ github.event.issue.number }}
      REASON: ${{ needs.authorize.outputs.reason }}
      RUN_URL: ${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}
    steps:
      - name: Answer on the pull request
        run: |
          printf 'QFlow did not launch anything.\\n\\n~~~text\\n%s\\n~~~\\n[Log](%s)\\n' \\
            "${REASON:-The launch could not be checked.}" "$RUN_URL" > refused.md
          gh pr comment "$PR_NUMBER" --repo "$GITHUB_REPOSITORY" --body-file refused.md
"""

_FORKS_OFF = "refused (qflow ci init github --allow-forks turns them on)."
_FORKS_ON = (
    "allowed; they run in the `qflow-fork-launch` environment:\\n"
    "# give it required reviewers (Settings > Environments) before anyone comments LAUNCH:."
)


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
    *,
    python: str = "3.11",
    install: str = DEFAULT_INSTALL,
    timeout_minutes: int = 180,
    allow_forks: bool = False,
) -> str:
    """The text of ``.github/workflows/qflow.yml``."""
    return (
        _PR_TEMPLATE.replace("@PYTHON@", _check_python(python))
        .replace("@INSTALL@", _check_install(install))
        .replace("@TIMEOUT@", str(int(timeout_minutes)))
        .replace("@ALLOW_FORKS@", "true" if allow_forks else "false")
        .replace("@FORKS_NOTE@", _FORKS_ON if allow_forks else _FORKS_OFF)
    )


def write_pr_workflow(
    root: Path,
    *,
    python: str = "3.11",
    install: str = DEFAULT_INSTALL,
    force: bool = False,
    output: Path | None = None,
    allow_forks: bool = False,
) -> Path:
    """Write the PR-launch workflow under ``root``; refuse to overwrite without ``force``."""
    path = output if output is not None else root / PR_WORKFLOW_PATH
    if path.exists() and not force:
        raise QFlowError(f"{path} exists already; nothing was written. Hint: --force replaces it.")
    write_atomic(path, pr_workflow(python=python, install=install, allow_forks=allow_forks))
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


GITHUB_SHORTEST_INTERVAL = 300.0
"""GitHub Actions runs scheduled workflows at most once every 5 minutes."""


def schedule_warnings(schedules: Sequence[Schedule], now: float) -> list[str]:
    """What will not behave on GitHub as in ``qflow scheduler``: crons under 5 minutes."""
    from qflow.ci.schedule import shortest_interval

    warnings = []
    for schedule in schedules:
        interval = shortest_interval(schedule.cron, now)
        if interval < GITHUB_SHORTEST_INTERVAL:
            warnings.append(
                f"schedule {schedule.id} ('{schedule.cron}') fires every {interval / 60:g} "
                "minute(s); GitHub Actions runs scheduled workflows at most every 5 minutes "
                "(and may start them late), so on GitHub it runs less often than with "
                "qflow scheduler. Hint: a cron like '*/5 * * * *' or slower."
            )
    return warnings


def schedule_workflow(
    schedules: Sequence[Schedule], *, python: str = "3.11", install: str = DEFAULT_INSTALL
) -> str:
    """The text of ``.github/workflows/qflow-schedules.yml``: one job per schedule, run when
    its cron fires (GitHub's cron is UTC, like QFlow's scheduler) or by hand, where the
    ``schedule`` input says which one schedule to run (never all of them)."""
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
                f"(github.event_name == 'schedule' && github.event.schedule == '{schedule.cron}')"
                f" || (github.event_name == 'workflow_dispatch' && "
                f"inputs.schedule == '{schedule.id}')"
            ),
            "runs-on": "ubuntu-latest",
            "env": {"NO_COLOR": "1"},
            "steps": [
                *_steps(python, install),
                {
                    "name": "Run the workflow",
                    "env": {
                        "QFLOW_STORE": "${{ secrets.QFLOW_STORE }}",
                        "QFLOW_ARTIFACTS": "${{ secrets.QFLOW_ARTIFACTS }}",
                    },
                    "run": command,
                },
            ],
        }
    crons = sorted({s.cron for s in schedules})
    dispatch = {
        "inputs": {
            "schedule": {
                "description": "The schedule to run now (qflow schedule list)",
                "type": "choice",
                "required": True,
                "options": [s.id for s in schedules],
            }
        }
    }
    document = {
        "name": "qflow-schedules",
        "on": {"schedule": [{"cron": c} for c in crons], "workflow_dispatch": dispatch},
        "permissions": {"contents": "read"},
        "jobs": jobs,
    }
    header = "# Written by `qflow schedule export github` from .qflow/schedules.json.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
