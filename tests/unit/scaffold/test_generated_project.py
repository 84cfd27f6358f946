"""A generated project works out of the box: installed with pip into its own venv, its tests
pass under pytest and its example workflow runs through `qflow run`, in real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from qflow.cli.app import run_cli

pytestmark = pytest.mark.integration


def _venv(folder: Path) -> Path:
    """A fresh venv that sees this environment's packages (QFlow, scikit-learn, pytest)."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "outer_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def _run(args: list[object], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFLOW_", "PYTEST_"))}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=300,
        check=False,
    )


def test_generated_project_installs_tests_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["new", "-n", "example", "-d", str(tmp_path), "--yes"]) == 0
    capsys.readouterr()
    root = tmp_path / "example"
    python = _venv(tmp_path / "venv")
    installed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            root,
        ],
        root,
    )
    assert installed.returncode == 0, installed.stderr
    imported = _run(
        [python, "-c", "import example.workflows.logistic_regression as m; print(m.__file__)"],
        tmp_path,
    )
    assert imported.stdout.strip() == str(root / "src/example/workflows/logistic_regression.py")

    tests = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], root)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout

    ran = _run([python, "-m", "qflow", "run", "logistic_regression", "model.C=0.5"], root)
    assert ran.returncode == 0, ran.stderr
    assert "succeeded" in ran.stdout

    swept = _run(
        [
            python,
            "-m",
            "qflow",
            "run",
            "logistic_regression",
            "-m",
            "model=logistic_regression,svm",
        ],
        root,
    )
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.count("succeeded") == 2

    (root / "src/example/workflows/quick.py").write_text(
        "import qflow as qf\n\n\n@qf.step\ndef answer() -> int:\n    return 42\n\n\n"
        "@qf.workflow\ndef quick() -> object:\n    return answer()\n"
    )
    found = _run([python, "-m", "qflow", "run", "quick"], root)  # no registration needed
    assert found.returncode == 0, found.stdout + found.stderr
    assert "succeeded" in found.stdout

    shown = _run(
        [python, "-m", "qflow", "runs", "--json", "--workflow", "logistic_regression"], root
    )
    assert shown.returncode == 0, shown.stderr
    import json

    runs = json.loads(shown.stdout)
    assert len(runs) == 3
    assert all(r["metrics"]["accuracy"] > 0.9 for r in runs)
    assert {r["config"]["model"]["_target_"] for r in runs} == {
        "example.steps.model.FitLogisticRegression",
        "example.steps.model.FitSVM",
    }
