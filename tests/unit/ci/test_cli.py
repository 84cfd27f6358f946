"""The automation commands through the CLI, in a real project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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

    monkeypatch.setenv("COMMENT_BODY", "LAUNCH: train lr=0.5 @abcdef1")
    code, out, err = cli(
        capsys, "ci", "parse-comment", "--from-env", "COMMENT_BODY", "--args-file", "pinned.args"
    )
    assert code == 0, err
    assert json.loads(out)["commit"] == "abcdef1"
    assert (ci_project / "pinned.args").read_text() == "train\nlr=0.5\n"  # not an argument

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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--cron", "0 0 31 2 *"], "Cron expression '0 0 31 2 *' never fires"),
        (["trian", "--cron", "@daily"], "No workflow named 'trian' in this project; nothing"),
        (["train", "fooo=1", "--cron", "@daily"], "Workflow 'train' has no parameter 'fooo'"),
        (["train", "epochs=x", "--cron", "@daily"], "'epochs' of workflow 'train' must be an int"),
        (["train", "lr", "--cron", "@daily"], "malformed"),
    ],
    ids=["never-fires", "workflow", "key", "value", "override"],
)
def test_schedule_add_refuses(
    ci_project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = cli(capsys, "schedule", "add", *args)
    assert code == 1
    assert message in err and "Traceback" not in out + err
    assert not (ci_project / ".qflow" / "schedules.json").exists()


def test_schedule_add_names_close_workflows(
    ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "schedule", "add", "trian", "--cron", "@daily")
    assert code == 1 and "Known workflows: train." in err and "Did you mean: train?" in err
    code, out, err = cli(capsys, "schedule", "add", "ciwf:train", "epochs=2", "--cron", "@daily")
    assert code == 0, err
    assert "ciwf:train at '0 0 * * *' (UTC); next " in out


def _hand_edit(project: Path, *entries: dict[str, object]) -> Path:
    path = project / ".qflow" / "schedules.json"
    data = json.loads(path.read_text())
    data["schedules"] += list(entries)
    path.write_text(json.dumps(data))
    return path


def test_hand_edited_broken_entries_are_reported_without_a_traceback(
    ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "schedule", "add", "train", "--cron", "*/2 * * * *")[0] == 0
    _hand_edit(ci_project, {"id": "sfeb", "workflow": "train", "cron": "0 0 31 2 *"})
    code, out, err = cli(capsys, "schedule", "list")
    assert code == 0, err
    assert "*/2 * * * *" in out and "Traceback" not in out + err
    assert "schedule sfeb (train) is broken and does not run: Cron expression '0 0 31 2 *' " in (
        " ".join(err.split())
    )
    code, out, _ = cli(capsys, "schedule", "list", "--json")
    listed = json.loads(out)
    assert [item.get("broken", False) for item in listed] == [False, True]
    code, out, err = cli(capsys, "schedule", "export", "github")
    assert code == 0, err
    flat = " ".join(err.split())
    assert "schedule sfeb (train) is broken" in flat
    assert "fires every 2 minute(s); GitHub Actions runs scheduled workflows at most" in flat
    exported = (ci_project / ".github" / "workflows" / "qflow-schedules.yml").read_text()
    assert "sfeb" not in exported and "0 0 31 2" not in exported
    code, out, err = cli(capsys, "schedule", "remove", "sfeb")
    assert code == 0 and "Removed schedule sfeb (train, broken)" in out
    assert "broken" not in cli(capsys, "schedule", "list")[2]


def test_scheduler_runs_the_good_schedules_and_reports_a_broken_one(
    ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`qflow scheduler` as a process: a hand-edited entry that never fires is logged once,
    without a traceback, and the good schedule's missed fire time is run (a real qflow run)."""
    code, out, err = cli(capsys, "schedule", "add", "train", "epochs=2", "--cron", "* * * * *")
    assert code == 0, err
    good = json.loads(cli(capsys, "schedule", "list", "--json")[1])[0]["id"]
    path = _hand_edit(ci_project, {"id": "sfeb", "workflow": "train", "cron": "0 0 31 2 *"})
    data = json.loads(path.read_text())
    data["schedules"][0]["cursor"] -= 120  # it missed two fire times while no scheduler ran
    path.write_text(json.dumps(data))
    log = ci_project / "scheduler.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "qflow", "scheduler", "--poll", "1", "--project", "."],
            cwd=ci_project,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        )
        try:
            deadline = time.monotonic() + 180
            while f"done: {good}" not in log.read_text() and process.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert text.count("skipped: sfeb (train) is broken: Cron expression '0 0 31 2 *'") == 1
    assert f"missed: {good} (train, '* * * * *') missed 2 runs" in text
    assert "scheduler stopped" in text and process.returncode == 0
    code, out, _ = cli(capsys, "runs", "--json", "--tag", f"schedule={good}")
    (run,) = json.loads(out)
    assert run["status"] == "succeeded" and run["workflow"] == "train"
