"""The automation commands through the CLI, in a real project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qflow.cli.app import run_cli


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_parse_comment_from_env_checks_the_project_workflows(
    ci_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMENT_BODY", "LAUNCH: train lr=0.5 epochs=2")
    code, out, err = cli(
        capsys,
        "ci", "parse-comment", "--from-env", "COMMENT_BODY",
        "--output", "launch.json", "--args-file", "launch.args", "--reply", "reply.md",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["argv"] == ["train", "lr=0.5", "epochs=2"]
    assert json.loads((ci_project / "launch.json").read_text())["workflow"] == "train"
    assert (ci_project / "launch.args").read_text() == "train\nlr=0.5\nepochs=2\n"
    assert not (ci_project / "reply.md").exists()

    monkeypatch.setenv("COMMENT_BODY", "LAUNCH: deploy x=1")
    code, out, err = cli(
        capsys, "ci", "parse-comment", "--from-env", "COMMENT_BODY", "--reply", "reply.md"
    )
    assert code == 1
    assert json.loads(out) == {"ok": False, "error": json.loads(out)["error"]}
    assert "no workflow named 'deploy'" in err and "Known workflows: train" in err
    assert "rejected" in (ci_project / "reply.md").read_text()


def test_ci_init_and_infra_init(ci_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ci", "init", "github", "--python", "3.12")
    assert code == 0 and (ci_project / ".github" / "workflows" / "qflow.yml").is_file()
    assert cli(capsys, "ci", "init", "github")[0] == 1  # exists: not replaced
    assert cli(capsys, "ci", "init", "gitlab")[0] == 1
    code, _, err = cli(capsys, "ci", "init", "github", "--allow-forks", "--force")
    assert code == 0, err
    written = (ci_project / ".github" / "workflows" / "qflow.yml").read_text()
    assert 'ALLOW_FORKS: "true"' in written and "qflow-fork-launch" in written
    code, out, _ = cli(capsys, "infra", "init", "gcp", "-o", "tf")
    assert code == 0 and (ci_project / "tf" / "kubernetes.tf").is_file()
    assert "terraform init" in out


def test_schedule_commands(ci_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "schedule", "add", "train", "lr=0.2", "--cron", "0 3 * * *")
    assert code == 0, err
    code, out, _ = cli(capsys, "schedule", "list", "--json")
    (schedule,) = json.loads(out)
    assert schedule["workflow"] == "train" and schedule["overrides"] == ["lr=0.2"]
    assert schedule["next"].endswith("T03:00:00Z")
    code, out, _ = cli(capsys, "schedule", "list")
    assert schedule["id"] in out and "0 3 * * *" in out
    code, out, err = cli(capsys, "schedule", "export", "github")
    assert code == 0, err
    exported = (ci_project / ".github" / "workflows" / "qflow-schedules.yml").read_text()
    assert "cron: 0 3 * * *" in exported and "qflow run train lr=0.2" in exported
    assert cli(capsys, "schedule", "add", "train", "--cron", "0 3 * *")[0] == 1
    assert cli(capsys, "schedule", "remove", schedule["id"])[0] == 0
    code, _, err = cli(capsys, "schedule", "remove", schedule["id"])
    assert code == 1 and "No schedule with id" in err
