from __future__ import annotations

import json
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.provenance.reproduce import reproduce
from qflow.provenance.script import exec_script
from qflow.store import open_stores
from tests.unit.provenance.conftest import git

pytestmark = pytest.mark.integration


def test_reproduce_uses_the_recorded_commit_and_diff_in_a_worktree(
    wf_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = wf_project / "provwf.py"
    original = source.read_text()
    source.write_text(original.replace("sum(xs) * scale", "sum(xs) * scale + 1"))
    dirty = qf.run("pipeline", {"n": 4}, project_dir=wf_project)  # uncommitted change
    assert dirty.meta["git"]["dirty"] is True
    source.write_text(original.replace("sum(xs) * scale", "sum(xs) * scale * 100"))
    git(wf_project, "commit", "-qam", "change the score")

    report = reproduce(dirty.id, project_dir=wf_project)
    assert "worktree of commit" in report.source and "uncommitted" in report.source
    assert report.status == "succeeded" and report.identical
    assert [o.name for o in report.outputs] == ["0_make.return", "1_score.return"]
    metadata, _ = open_stores(wf_project)
    new = metadata.get_run(report.run_id or "")
    assert new.tags == {"reproduces": dirty.id} and new.metrics_summary == {"score": 7.0}
    assert "worktree" not in git(wf_project, "worktree", "list").split("\n", 1)[-1]

    assert "* 100" in source.read_text()  # the working tree is left as it was

    code = run_cli(["reproduce", dirty.id[:12], "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["identical"] is True
    assert all(o["matches"] for o in data["outputs"])


def test_reproduce_a_script_run_from_its_snapshot_and_report_differences(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    script = project / "make.py"
    script.write_text("open('out.txt', 'w').write('v1')\n")
    first = exec_script("make.py", project_dir=project)
    script.write_text("open('out.txt', 'w').write('v2')\n")
    report = reproduce(first.run_id, project_dir=project)
    assert "snapshot" in report.source and report.identical
    assert [o.name for o in report.outputs] == ["0_main.out.txt"]
    assert (project / "out.txt").read_text() == "v1"  # written by the first run only

    (project / "clock.py").write_text("import time\nopen('t.txt', 'w').write(str(time.time()))\n")
    timed = exec_script("clock.py", project_dir=project)
    code = run_cli(["reproduce", timed.run_id])
    out = capsys.readouterr().out
    assert code == 1 and "differs" in out and "outputs differ" in out
