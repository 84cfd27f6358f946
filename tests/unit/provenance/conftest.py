"""Projects for provenance tests: real folders, real git repositories, real scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=T", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def init_repo(root: Path) -> str:
    """``git init`` + commit everything in ``root``; returns the commit sha."""
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".qflow/\n__pycache__/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def wf_project(project: Path, monkeypatch: pytest.MonkeyPatch, cli_env: None) -> Path:
    """A project whose own module holds a two-step workflow, in a git repository."""
    (project / "pyproject.toml").write_text(
        '[project]\nname = "prov"\n[tool.qflow]\nworkflow-modules = ["provwf"]\n'
    )
    (project / "provwf.py").write_text(PROVWF)
    init_repo(project)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(__import__("sys").modules, "provwf", raising=False)
    return project


PROVWF = """import qflow as qf


@qf.step
def make(n: int) -> list[int]:
    return list(range(n))


@qf.step
def score(xs: list[int], scale: float = 1.0) -> float:
    value = sum(xs) * scale
    qf.log_metric("score", value)
    return value


@qf.workflow
def pipeline(n: int = 3, scale: float = 1.0):
    return score(make(n), scale=scale)
"""
