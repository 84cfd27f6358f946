from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from qflow.ci.github import (
    DEFAULT_INSTALL,
    pr_workflow,
    schedule_warnings,
    schedule_workflow,
    write_pr_workflow,
)
from qflow.ci.schedule import Schedule
from qflow.errors import QFlowError


def actionlint() -> str:
    """The actionlint binary of the dev extra (next to this interpreter), else on PATH."""
    found = Path(sys.executable).parent / "actionlint"
    path = str(found) if found.is_file() else shutil.which("actionlint")
    assert path, "actionlint is missing: pip install -e '.[dev]'"
    return path


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint, with shellcheck on every ``run:`` script when shellcheck is on PATH."""
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_script_passes_shellcheck(tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: apt-get install shellcheck"
    schedules = [Schedule("s1", "train", "0 3 * * *", ("a=b c",))]
    for name, text in {
        "pr.yml": pr_workflow(),
        "forks.yml": pr_workflow(allow_forks=True),
        "schedules.yml": schedule_workflow(schedules),
    }.items():
        (tmp_path / name).write_text(text)
        result = lint(tmp_path / name)
        assert result.returncode == 0, result.stdout + result.stderr
    # shellcheck does run: a script with an unquoted variable is reported.
    (tmp_path / "bad.yml").write_text(
        pr_workflow().replace('test "$(git rev-parse HEAD)" = "$HEAD_SHA"', "test $HEAD_SHA")
    )
    result = lint(tmp_path / "bad.yml")
    assert result.returncode == 1 and "SC2086" in result.stdout, result.stdout


def test_pr_workflow_passes_actionlint(tmp_path: Path) -> None:
    path = write_pr_workflow(tmp_path)
    assert path == tmp_path / ".github" / "workflows" / "qflow.yml"
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_the_injection_the_template_avoids(tmp_path: Path) -> None:
    text = pr_workflow().replace(
        "qflow ci parse-comment --from-env COMMENT_BODY",
        'qflow ci parse-comment "${{ github.event.comment.body }}"',
    )
    path = tmp_path / "bad.yml"
    path.write_text(text)
    result = lint(path)
    assert result.returncode == 1
    assert "github.event.comment.body" in result.stdout and "untrusted" in result.stdout


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            name = value.get("id") or value.get("name") if isinstance(value, dict) else None
            yield from _walk(value, f"{path}[{name or index}]")
    elif isinstance(node, str):
        yield path, node


def _steps(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s.get("id") or s["name"]: s for s in job["steps"]}


def test_pr_workflow_structure() -> None:
    document = yaml.safe_load(pr_workflow(python="3.12"))
    assert document[True] == {"issue_comment": {"types": ["created"]}}  # YAML 1.1: on is True
    assert document["permissions"] == {}  # each job asks for what it needs
    jobs = document["jobs"]
    assert set(jobs) == {"authorize", "build", "launch", "refused"}
    refused = jobs["refused"]
    assert refused["needs"] == "authorize"
    assert refused["env"]["REASON"] == "${{ needs.authorize.outputs.reason }}"
    assert '"${REASON:-The launch could not be checked.}"' in refused["steps"][0]["run"]
    assert jobs["authorize"]["permissions"] == {"contents": "read", "pull-requests": "read"}
    assert jobs["build"]["permissions"] == {"contents": "read"}
    assert jobs["launch"]["needs"] == ["authorize", "build"]
    condition = " ".join(jobs["authorize"]["if"].split())
    assert condition == (
        "github.event.issue.pull_request && startsWith(github.event.comment.body, 'LAUNCH:')"
    )
    assert _steps(jobs["build"])["python"]["with"]["python-version"] == "3.12"
    assert jobs["build"]["outputs"]["python"] == "${{ steps.python.outputs.python-version }}"
    steps = _steps(jobs["launch"])
    setup = steps["Set up the Python the environment was built with"]  # the venv's exact one
    assert setup["with"]["python-version"] == "${{ needs.build.outputs.python }}"
    parse = steps["parse"]
    assert parse["env"] == {"COMMENT_BODY": "${{ github.event.comment.body }}"}
    assert "--from-env COMMENT_BODY" in parse["run"]
    assert 'qflow run "${args[@]}"' in steps["run"]["run"]
    assert "--compare-to base" in steps["report"]["run"]
    assert "--body-file" in steps["Answer on the pull request"]["run"]
    # No script interpolates anything: only environment variables reach the shell.
    for where, text in _walk(jobs):
        if where.endswith(".run"):
            assert "${{" not in text, where


def test_secrets_reach_only_the_run_and_report_steps() -> None:
    """QFLOW_STORE/QFLOW_ARTIFACTS are in no job- or workflow-level env, in nothing of the
    build job (where pip install runs the pull request's build code), and in no step that
    installs: only in the two launch steps that talk to the stores."""
    for forks in (False, True):
        document = yaml.safe_load(pr_workflow(allow_forks=forks))
        found = sorted(where for where, text in _walk(document) if "secrets." in text)
        assert found == [
            ".jobs.launch.steps[report].env.QFLOW_ARTIFACTS",
            ".jobs.launch.steps[report].env.QFLOW_STORE",
            ".jobs.launch.steps[run].env.QFLOW_ARTIFACTS",
            ".jobs.launch.steps[run].env.QFLOW_STORE",
        ]
        build = document["jobs"]["build"]
        install = _steps(build)["Install the project (no secrets in this job)"]["run"]
        assert DEFAULT_INSTALL in install
        assert "env" not in build and "environment" not in build
        launch = document["jobs"]["launch"]
        assert not any("pip" in s.get("run", "") for s in launch["steps"])
        assert "QFLOW_STORE" not in json.dumps(launch["env"])


def test_launch_runs_the_commit_pinned_when_the_comment_was_handled() -> None:
    document = yaml.safe_load(pr_workflow())
    text = pr_workflow()
    assert "refs/pull/" not in text  # never "whatever the head is when the job starts"
    jobs = document["jobs"]
    assert jobs["authorize"]["outputs"]["sha"] == "${{ steps.check.outputs.sha }}"
    for name in ("build", "launch"):
        steps = _steps(jobs[name])
        checkout = steps["Check out the approved commit"]
        assert checkout["uses"].startswith("actions/checkout@")
        assert checkout["with"] == {
            "ref": "${{ needs.authorize.outputs.sha }}",
            "persist-credentials": False,
        }
        verify = steps["Make sure it is the approved commit"]
        assert verify["run"] == 'test "$(git rev-parse HEAD)" = "$HEAD_SHA"'
        names = list(steps)
        assert names.index("Make sure it is the approved commit") == 1
    assert jobs["launch"]["env"]["HEAD_SHA"] == "${{ needs.authorize.outputs.sha }}"
    assert '--tag "github_sha=$HEAD_SHA"' in _steps(jobs["launch"])["run"]["run"]


def test_one_concurrency_group_per_launch() -> None:
    """A later comment ("LGTM") starts a run of this workflow too; it must not share a group
    with a queued launch, or GitHub cancels the launch."""
    document = yaml.safe_load(pr_workflow())
    concurrency = document["concurrency"]
    assert "${{ github.event.comment.id }}" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is False
    assert all("concurrency" not in job for job in document["jobs"].values())


def test_forks_are_refused_unless_allowed() -> None:
    refused = yaml.safe_load(pr_workflow())
    check = _steps(refused["jobs"]["authorize"])["check"]
    assert check["env"]["ALLOW_FORKS"] == "false"
    allowed = yaml.safe_load(pr_workflow(allow_forks=True))
    assert _steps(allowed["jobs"]["authorize"])["check"]["env"]["ALLOW_FORKS"] == "true"
    environment = " ".join(allowed["jobs"]["launch"]["environment"].split())
    assert environment == (
        "${{ needs.authorize.outputs.fork == 'true' && 'qflow-fork-launch' || 'qflow-launch' }}"
    )
    assert "required reviewers" in pr_workflow(allow_forks=True)


FAKE_GH = """#!/usr/bin/env bash
# Answers the three API calls of the authorize step from files in $FAKE_API.
case "$2" in
  */collaborators/*/permission) file=permission.json ;;
  */pulls/*) file=pull.json ;;
  */commits/*) file=commit.json ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
echo "$2" >> "$FAKE_API/calls"
if [ "${3:-}" = --jq ]; then jq -r "$4" "$FAKE_API/$file"; else cat "$FAKE_API/$file"; fi
"""


def authorize(
    tmp_path: Path,
    *,
    role: str = "write",
    head_repo: str = "org/repo",
    committed: str = "2025-03-01T10:00:00Z",
    state: str = "open",
    allow_forks: bool = False,
    body: str = "LAUNCH: train lr=0.1",
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """Run the authorize step's script with bash and jq against recorded API answers."""
    jq = shutil.which("jq")
    assert jq, "jq is missing (GitHub's runners have it; .ci/run installs it)"
    document = yaml.safe_load(pr_workflow(allow_forks=allow_forks))
    step = _steps(document["jobs"]["authorize"])["check"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    api = tmp_path / "api"
    api.mkdir(exist_ok=True)
    sha = "ab" * 20
    (api / "permission.json").write_text(json.dumps({"permission": "x", "role_name": role}))
    pull = {"state": state, "head": {"sha": sha, "repo": {"full_name": head_repo}}}
    (api / "pull.json").write_text(json.dumps(pull))
    (api / "commit.json").write_text(json.dumps({"commit": {"committer": {"date": committed}}}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_API": str(api),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": "org/repo",
        "GH_TOKEN": "t",
        "PR_NUMBER": "7",
        "COMMENTER": "alice",
        "COMMENTED_AT": "2025-03-01T10:05:00Z",
        "COMMENT_BODY": body,
        "ALLOW_FORKS": step["env"]["ALLOW_FORKS"],
    }
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=False
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done, outputs, (api / "calls").read_text() if (api / "calls").exists() else ""


def test_authorize_pins_the_head_for_a_writer(tmp_path: Path) -> None:
    for role in ("write", "maintain", "admin"):
        done, outputs, calls = authorize(tmp_path, role=role)
        assert done.returncode == 0, done.stdout + done.stderr
        assert outputs == {"sha": "ab" * 20, "fork": "false"}
    assert calls.splitlines()[:3] == [
        "repos/org/repo/collaborators/alice/permission",
        "repos/org/repo/pulls/7",
        f"repos/org/repo/commits/{'ab' * 20}",
    ]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"role": "triage"}, "alice has 'triage' permission; launching needs write/maintain/admin"),
        ({"role": "read"}, "alice has 'read' permission"),
        ({"head_repo": "mallory/repo"}, "comes from a fork (mallory/repo)"),
        ({"committed": "2025-03-01T10:06:00Z"}, "pushed after the launch was asked for"),
        ({"state": "closed"}, "Pull request #7 is closed"),
    ],
    ids=["triage", "read", "fork", "pushed-later", "closed"],
)
def test_authorize_refuses(tmp_path: Path, case: dict[str, str], message: str) -> None:
    done, outputs, _ = authorize(tmp_path, **case)  # type: ignore[arg-type]
    assert done.returncode == 1
    assert message in done.stdout
    assert message in (tmp_path / "summary").read_text()
    assert "sha" not in outputs
    assert message in outputs["reason"]  # the refused job answers with it


def test_a_commit_named_in_the_comment_is_the_only_one_launched(tmp_path: Path) -> None:
    """With @<commit>, the head must be that commit, however the commits are dated."""
    late = "2025-03-01T11:00:00Z"  # dated after the comment: only a pin lets it through
    bodies = [f"LAUNCH: train lr=0.1 @{'ab' * 4}", f"LAUNCH: train @{'ab' * 20}\r\n"]
    for index, body in enumerate(bodies):
        done, outputs, calls = authorize(tmp_path / str(index), committed=late, body=body)
        assert done.returncode == 0, done.stdout + done.stderr
        assert outputs == {"sha": "ab" * 20, "fork": "false"}
        assert "/commits/" not in calls  # the date is not looked at
    done, outputs, _ = authorize(tmp_path / "other", body="LAUNCH: train @abcdef1")
    assert done.returncode == 1
    assert f"The comment approves commit abcdef1, but the head of #7 is now {'ab' * 20}" in (
        done.stdout
    )
    assert "sha" not in outputs
    # A pin-like token that is not at the end of the first line is no pin.
    done, _, _ = authorize(tmp_path / "x", committed=late, body="LAUNCH: train @abababab x=1")
    assert done.returncode == 1 and "pushed after the launch was asked for" in done.stdout


def test_authorize_lets_forks_in_when_allowed_and_the_commit_is_named(tmp_path: Path) -> None:
    named = f"LAUNCH: train @{'ab' * 4}"
    done, outputs, _ = authorize(tmp_path, head_repo="mallory/repo", allow_forks=True, body=named)
    assert done.returncode == 0, done.stdout
    assert outputs == {"sha": "ab" * 20, "fork": "true"}
    # without the commit, a fork is refused whatever its commits' dates say
    done, outputs, _ = authorize(tmp_path / "unnamed", head_repo="mallory/repo", allow_forks=True)
    assert done.returncode == 1
    assert f"must name the commit it approves: end the comment with @{'ab' * 20}" in done.stdout
    assert "sha" not in outputs


def test_pr_workflow_with_forks_passes_actionlint(tmp_path: Path) -> None:
    path = tmp_path / "qflow.yml"
    path.write_text(pr_workflow(allow_forks=True, install="pip install -r req.txt -e ."))
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"python": "3.11; rm"}, "is not like 3.11"),
        ({"install": "pip install ${{ x }}"}, "'\\$\\{\\{'"),
    ],
    ids=["python", "install"],
)
def test_pr_workflow_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(QFlowError, match=message):
        pr_workflow(**options)


def test_existing_workflow_is_kept_without_force(tmp_path: Path) -> None:
    path = write_pr_workflow(tmp_path)
    path.write_text("mine\n")
    with pytest.raises(QFlowError, match="exists already"):
        write_pr_workflow(tmp_path)
    assert path.read_text() == "mine\n"
    write_pr_workflow(tmp_path, force=True)
    assert "issue_comment" in path.read_text()


def fires(condition: str, event: str, cron: str = "", chosen: str = "") -> bool:
    """Evaluate a job's ``if`` for one event (the few operators the export uses)."""
    text = (
        condition.replace("&&", " and ")
        .replace("||", " or ")
        .replace("github.event_name", repr(event))
        .replace("github.event.schedule", repr(cron))
        .replace("inputs.schedule", repr(chosen))
    )
    return bool(eval(text, {"__builtins__": {}}))  # only literals, and/or, == remain


def test_schedule_export_passes_actionlint(tmp_path: Path) -> None:
    schedules = [
        Schedule("s000001", "train", "0 3 * * *", ("model.C=0.5", "data.path=a b.csv")),
        Schedule("s000002", "evaluate", "*/15 * * * 1-5"),
        Schedule("s000003", "train", "0 3 * * *", ("lr=0.01",)),
    ]
    path = tmp_path / "schedules.yml"
    path.write_text(schedule_workflow(schedules))
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr
    document = yaml.safe_load(path.read_text())
    assert document["on"]["schedule"] == [{"cron": "*/15 * * * 1-5"}, {"cron": "0 3 * * *"}]
    chosen = document["on"]["workflow_dispatch"]["inputs"]["schedule"]
    assert chosen["type"] == "choice" and chosen["required"] is True
    assert chosen["options"] == ["s000001", "s000002", "s000003"]
    job = document["jobs"]["schedule_s000001"]
    assert job["steps"][-1]["run"] == (
        "qflow run train model.C=0.5 'data.path=a b.csv' --tag schedule=s000001"
    )
    assert job["steps"][-1]["env"] == {
        "QFLOW_STORE": "${{ secrets.QFLOW_STORE }}",
        "QFLOW_ARTIFACTS": "${{ secrets.QFLOW_ARTIFACTS }}",
    }
    assert "QFLOW_STORE" not in json.dumps(job["env"])
    conditions = {name: job["if"] for name, job in document["jobs"].items()}
    # Run by hand: only the chosen schedule's job runs.
    for schedule in schedules:
        ran = [n for n, c in conditions.items() if fires(c, "workflow_dispatch", "", schedule.id)]
        assert ran == [f"schedule_{schedule.id}"]
    # A cron firing runs the jobs of that cron, and a dispatch of nothing runs nothing.
    ran = [n for n, c in conditions.items() if fires(c, "schedule", cron="0 3 * * *")]
    assert ran == ["schedule_s000001", "schedule_s000003"]
    assert not [n for n, c in conditions.items() if fires(c, "workflow_dispatch")]
    assert not [n for n, c in conditions.items() if fires(c, "push", cron="0 3 * * *")]


def test_schedule_export_warns_under_five_minutes() -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
    schedules = [
        Schedule("s1", "train", "* * * * *"),
        Schedule("s2", "train", "*/2 * * * *"),
        Schedule("s3", "train", "0,58 * * * *"),  # 2 minutes apart over the hour
        Schedule("s4", "train", "*/5 * * * *"),
        Schedule("s5", "train", "0 3 * * *"),
    ]
    warnings = schedule_warnings(schedules, now)
    assert [w.split(" (")[0] for w in warnings] == ["schedule s1", "schedule s2", "schedule s3"]
    assert (
        "fires every 1 minute(s); GitHub Actions runs scheduled workflows at most every 5"
        in (warnings[0])
    )
    assert "every 2 minute(s)" in warnings[1] and "every 2 minute(s)" in warnings[2]


def test_schedule_export_needs_schedules() -> None:
    with pytest.raises(QFlowError, match="no schedules"):
        schedule_workflow([])
