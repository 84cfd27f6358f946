"""A project for the automation tests: a workflow module in a git repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CIWF = """import qflow as qf


@qf.step
def fit(epochs: int, lr: float = 0.1) -> float:
    loss = 1.0
    for epoch in range(epochs):
        loss = loss * (1 - lr)
        qf.log_metric("loss", loss, step=epoch)
    qf.log_metric("accuracy", 1 - loss)
    return loss


@qf.workflow
def train(epochs: int = 4, lr: float = 0.1):
    return fit(epochs, lr=lr)
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture
def ci_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project declaring workflow ``train`` (module ``ciwf``), committed on branch main."""
    (project / "pyproject.toml").write_text(
        '[project]\nname = "cip"\n[tool.qflow]\nworkflow-modules = ["ciwf"]\n'
    )
    (project / "ciwf.py").write_text(CIWF)
    (project / ".gitignore").write_text(".qflow/\n__pycache__/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "ciwf", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return project
