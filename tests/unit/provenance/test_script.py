from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qflow.cli.app import run_cli
from qflow.errors import WorkflowNotFoundError
from qflow.provenance.script import exec_script
from qflow.store import open_stores

SCRIPT = """\
import sys
from pathlib import Path

import qflow as qf

rows = Path("data.csv").read_text().splitlines()
print("rows", len(rows), "args", sys.argv[1:])
print("warn", file=sys.stderr)
qf.log_param("lr", float(sys.argv[2]))
for i, row in enumerate(rows):
    qf.log_metric("value", float(row), step=i)
Path("out").mkdir(exist_ok=True)
Path("out/result.txt").write_text(str(len(rows)))
"""


@pytest.fixture
def script_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "train.py").write_text(SCRIPT)
    (project / "data.csv").write_text("1\n2\n3\n")
    monkeypatch.chdir(project)
    return project


def test_exec_records_code_args_files_output_and_log_calls(
    script_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = exec_script("train.py", ["--lr", "0.5"], project_dir=script_project)
    assert result.status == "succeeded" and result.exit_code == 0
    data_sha = hashlib.sha256(b"1\n2\n3\n").hexdigest()
    assert result.read == {"data.csv": {"sha256": data_sha, "size": 6}}
    assert list(result.written) == ["out/result.txt"]
    assert capsys.readouterr().out.startswith("rows 3 args ['--lr', '0.5']")

    metadata, artifacts = open_stores(script_project)
    run = metadata.get_run(result.run_id)
    assert run.workflow == "train.py" and run.status == "succeeded"
    assert run.config == {"args": ["--lr", "0.5"]}
    assert run.meta["script"]["path"] == "train.py"
    assert run.meta["snapshot"] and run.meta["packages_hash"]
    assert run.params == {"lr": 0.5}
    assert [m.value for m in metadata.metrics(run.id, "value")] == [1.0, 2.0, 3.0]
    (step,) = metadata.step_runs(run.id)
    assert step.name == "0_main" and step.stdout.startswith("rows 3")
    assert step.stderr == "warn\n"
    assert step.source_key is not None and metadata.source(step.source_key) == SCRIPT
    out = step.outputs["out/result.txt"]
    assert out.key == hashlib.sha256(b"3").hexdigest()
    assert Path(artifacts.get(out)).read_text() == "3"  # type: ignore[arg-type]
    files = metadata.data_files(run.id)
    assert [(f.name, f.sha256, f.step_name) for f in files] == [
        ("read:data.csv", data_sha, "0_main"),
        ("write:out/result.txt", out.key, "0_main"),
    ]


def test_a_failing_script_fails_its_run_and_keeps_what_it_logged(
    script_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (script_project / "bad.py").write_text(
        "import qflow as qf\nqf.log_metric('m', 1)\nraise RuntimeError('nope')\n"
    )
    (script_project / "quits.py").write_text("import sys\nsys.exit(3)\n")
    bad = exec_script("bad.py", project_dir=script_project)
    quits = exec_script("quits.py", project_dir=script_project)
    assert (bad.status, bad.exit_code, quits.status, quits.exit_code) == ("failed", 1, "failed", 3)
    metadata, _ = open_stores(script_project)
    run = metadata.get_run(bad.run_id)
    assert run.error == "RuntimeError: nope" and run.metrics_summary == {"m": 1.0}
    assert "RuntimeError: nope" in (metadata.step_runs(run.id)[0].traceback or "")
    assert metadata.get_run(quits.run_id).error == "exit code 3"
    with pytest.raises(WorkflowNotFoundError, match=r"Script 'missing\.py' does not exist"):
        exec_script("missing.py", project_dir=script_project)


def test_cli_exec_passes_arguments_through_and_lists_the_run(
    script_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert run_cli(["exec", "--tag", "kind=script", "train.py", "--lr", "0.1"]) == 0
    captured = capsys.readouterr()
    assert "rows 3" in captured.out and "1 files read, 1 written" in captured.err
    assert run_cli(["runs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["workflow"] == "train.py" and listed["tags"] == {"kind": "script"}
    (script_project / "quits.py").write_text("import sys\nsys.exit(4)\n")
    assert run_cli(["exec", "quits.py"]) == 4


@pytest.mark.integration
def test_exec_as_a_real_command(script_project: Path) -> None:
    qflow = Path(sys.executable).parent / "qflow"
    done = subprocess.run(
        [str(qflow), "exec", "train.py", "--lr", "2"],
        cwd=script_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rows 3" in done.stdout
    metadata, _ = open_stores(script_project)
    (run,) = metadata.list_runs()
    assert run.params == {"lr": 2.0} and run.status == "succeeded"
    assert run.command == "qflow exec train.py --lr 2"
