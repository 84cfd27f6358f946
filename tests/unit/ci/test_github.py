from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qflow.ci.github import pr_workflow, schedule_workflow, write_pr_workflow
from qflow.ci.schedule import Schedule
from qflow.errors import QFlowError


def actionlint() -> str:
    """The actionlint binary of the dev extra (next to this interpreter), else on PATH."""
    found = Path(sys.executable).parent / "actionlint"
    path = str(found) if found.is_file() else shutil.which("actionlint")
    assert path, "actionlint is missing: pip install -e '.[dev]'"
    return path


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


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


def test_pr_workflow_structure() -> None:
    document = yaml.safe_load(pr_workflow(python="3.12"))
    trigger = document[True]  # YAML 1.1 reads the key `on` as True
    assert trigger == {"issue_comment": {"types": ["created"]}}
    assert document["permissions"] == {
        "contents": "read",
        "issues": "write",
        "pull-requests": "write",
    }
    job = document["jobs"]["launch"]
    condition = " ".join(job["if"].split())
    assert "github.event.issue.pull_request" in condition
    assert "startsWith(github.event.comment.body, 'LAUNCH:')" in condition
    assert '["OWNER", "MEMBER", "COLLABORATOR"]' in condition
    assert "github.event.comment.author_association" in condition
    steps = {s.get("id") or s["name"]: s for s in job["steps"]}
    checkout = steps["Check out the pull request's head"]
    assert checkout["with"]["ref"] == "refs/pull/${{ github.event.issue.number }}/head"
    assert checkout["with"]["persist-credentials"] is False
    assert steps["Set up Python"]["with"]["python-version"] == "3.12"
    parse = steps["parse"]
    assert parse["env"] == {"COMMENT_BODY": "${{ github.event.comment.body }}"}
    assert "--from-env COMMENT_BODY" in parse["run"]
    assert 'qflow run "${args[@]}"' in steps["run"]["run"]
    assert "--compare-to base" in steps["report"]["run"]
    assert "--body-file" in steps["Answer on the pull request"]["run"]
    # No script interpolates anything from the event: only env variables reach the shell.
    for step in job["steps"]:
        assert "${{" not in step.get("run", ""), step


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"python": "3.11; rm"}, "is not like 3.11"),
        ({"install": "pip install ${{ x }}"}, "'\\$\\{\\{'"),
    ],
    ids=["python", "install"],
)
def test_pr_workflow_options_are_checked(options: dict[str, str], message: str) -> None:
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
    job = document["jobs"]["schedule_s000001"]
    assert job["if"].endswith("github.event.schedule == '0 3 * * *'")
    assert job["steps"][-1]["run"] == (
        "qflow run train model.C=0.5 'data.path=a b.csv' --tag schedule=s000001"
    )


def test_schedule_export_needs_schedules() -> None:
    with pytest.raises(QFlowError, match="no schedules"):
        schedule_workflow([])
