"""Helpers for the reliability suite (issue 17): a tiny project whose steps return fixed values,
and a real ``qflow server`` on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKEN = "reliability-token-0123456789"

WORKFLOWS = """
import qflow as qf


@qf.step
def genuine() -> bytes:
    return b"genuine"


@qf.step
def size(data: bytes) -> int:
    return len(data)


@qf.workflow
def blobs(cfg):
    return size(genuine())
"""


def write_project(root: Path, workflows: str = WORKFLOWS, module: str = "relwf") -> Path:
    """A project with ``workflows`` as its workflow module ``module``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "relproj"\n[tool.qflow]\nworkflow-modules = ["{module}"]\n'
    )
    (root / f"{module}.py").write_text(workflows)
    sys.modules.pop(module, None)
    return root


def clean_env() -> dict[str, str]:
    """This process's environment without any QFLOW_ variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    store_url: str, artifacts: Path, port: int, *extra: str
) -> subprocess.Popen[bytes]:
    """``qflow server`` on 127.0.0.1:``port``; returns once it answers /health."""
    command = ["server", "--store", store_url, "--artifacts", str(artifacts), "--port", str(port)]
    return start_qflow([*command, *extra], port)


def start_qflow(args: list[str], port: int) -> subprocess.Popen[bytes]:
    """``qflow ARGS`` (``server`` or ``ui``) with the token in QFLOW_SERVER_TOKEN, listening on
    127.0.0.1:``port``; returns once it answers /health."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qflow", *args],
        env={**clean_env(), "QFLOW_SERVER_TOKEN": TOKEN, "NO_COLOR": "1"},
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("qflow server did not start") from None
            time.sleep(0.1)


def assert_doctor_clean(project: Path) -> None:
    """``qflow doctor`` finds the database whole and every artifact present and matching its
    hash (run in this process, with this process's QFLOW_STORE)."""
    from qflow.cli.app import run_cli

    assert run_cli(["doctor", "--project", str(project)]) == 0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh ``qflow server`` over SQLite; yields (URL, its artifact folder)."""
    artifacts = tmp_path / "server-artifacts"
    port = free_port()
    process = start_server(f"sqlite:///{tmp_path / 'server.db'}", artifacts, port)
    try:
        yield f"http://127.0.0.1:{port}", artifacts
    finally:
        process.terminate()
        process.wait(timeout=30)
