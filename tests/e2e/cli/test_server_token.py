"""``qflow ui`` and ``qflow server`` take their token from ``--token-file`` or
``$QFLOW_SERVER_TOKEN``, so it need not be on the command line (readable by every user in
``ps``): real processes, checked over loopback HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.report_project import write_project
from tests.fixtures.servers import free_port, running

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

QFLOW = [sys.executable, "-m", "qflow"]


def _statuses(url: str, token: str) -> tuple[int, int, int]:
    """/api/runs without a token, with a wrong one and with ``token``."""
    path = f"{url}/api/runs"
    return (
        httpx.get(path).status_code,
        httpx.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code,
        httpx.get(path, headers={"Authorization": f"Bearer {token}"}).status_code,
    )


def _qflow(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    return subprocess.run(
        [*QFLOW, *args],
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ui_reads_the_token_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("QFLOW_SERVER_TOKEN", raising=False)
    root = write_project(tmp_path / "proj")
    token_file = tmp_path / "token"
    token_file.write_text("token-from-a-file-123\nignored second line\n")
    token_file.chmod(0o644)
    port = free_port()
    command = [*QFLOW, "ui", "--port", str(port), "--token-file", str(token_file), "-C", str(root)]
    with running(command, f"http://127.0.0.1:{port}", tmp_path / "ui.log") as url:
        assert _statuses(url, "token-from-a-file-123") == (401, 401, 200)
    log = " ".join((tmp_path / "ui.log").read_text().split())
    assert f"other users may read the token file {token_file} (mode 644)" in log
    assert f"Hint: chmod 600 {token_file}" in log


def test_server_reads_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("QFLOW_SERVER_TOKEN", "token-from-the-environment")
    port = free_port()
    command = [
        *QFLOW,
        "server",
        "--store",
        f"sqlite:///{tmp_path / 'qflow.db'}",
        "--artifacts",
        str(tmp_path / "artifacts"),
        "--port",
        str(port),
    ]
    with running(command, f"http://127.0.0.1:{port}", tmp_path / "server.log") as url:
        assert _statuses(url, "token-from-the-environment") == (401, 401, 200)


def test_a_token_file_that_cannot_be_used_is_named(tmp_path: Path):
    store = ["--store", f"sqlite:///{tmp_path / 'q.db'}", "--artifacts", str(tmp_path / "a")]
    missing = tmp_path / "missing"
    done = _qflow("server", *store, "--token-file", str(missing))
    assert done.returncode == 2
    assert "Invalid value for --token-file: cannot read" in done.stderr
    assert str(missing) in done.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n\n")
    done = _qflow("server", *store, "--token-file", str(empty))
    assert done.returncode == 2 and "is empty; its first line must be the token" in done.stderr
    done = _qflow("server", *store, "--token-file", str(empty), "--token", "x")
    assert done.returncode == 2 and "give --token or --token-file, not both" in done.stderr
    done = _qflow("server", *store, "--host", "0.0.0.0")
    assert done.returncode == 1 and "Hint: pass --token-file FILE" in done.stderr


@pytest.mark.parametrize("command", ["ui", "server"])
def test_help_says_where_the_token_comes_from(command: str):
    done = _qflow(command, "--help")
    text = " ".join(done.stdout.split())
    assert "--token-file" in text and "$QFLOW_SERVER_TOKEN" in text
    assert "other users can read in ps" in text
