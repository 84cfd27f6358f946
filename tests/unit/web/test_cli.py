"""``qflow runs --filter``, ``qf.Client.runs(filter=)``, ``qflow ui`` and ``qflow server``."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import qflow as qf
from qflow.cli.app import run_cli
from tests.unit.web.conftest import WebProject


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runs_filter_on_the_command_line(
    web_project: WebProject, capsys: pytest.CaptureFixture[str]
):
    root = str(web_project.root)
    code = run_cli(
        ["runs", "--filter", "params.C = 0.1 and metrics.accuracy >= 0.5", "--json", "-C", root]
    )
    assert code == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == [web_project.runs[1]]
    assert run_cli(["runs", "--filter", "metrics.accuracy >", "-C", root]) == 1
    assert "expected a value" in capsys.readouterr().err


def test_client_runs_filter(web_project: WebProject):
    client = qf.Client(web_project.root)
    found = client.runs(filter="tags.team = 'a' and params.C > 0.5")
    assert [r.id for r in found] == [web_project.runs[0]]
    assert found[0].metrics_summary["accuracy"] == 1.0
    assert client.runs("train", status="failed", filter="params.C > 0") == []


def test_server_refuses_a_public_address_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.delenv("QFLOW_SERVER_TOKEN", raising=False)
    code = run_cli(
        [
            "server",
            "--store",
            f"sqlite:///{tmp_path}/q.db",
            "--artifacts",
            str(tmp_path / "a"),
            "--host",
            "0.0.0.0",
        ]
    )
    assert code == 1
    assert "Refusing to listen on '0.0.0.0' without a token" in capsys.readouterr().err


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "qflow", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"(http://\S+\?token=\S+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no URL in {line!r}: {process.stderr.read()}")
    return process, match.group(1)


def _wait(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_qflow_ui_serves_the_project_on_loopback(web_project: WebProject):
    port = _free_port()
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("QFLOW_SERVER_TOKEN", None)
    process, url = _start(["ui", "--port", str(port)], web_project.root, env)
    try:
        assert url.startswith(f"http://127.0.0.1:{port}/runs?token=")
        _wait(f"http://127.0.0.1:{port}/health")
        token = url.rsplit("=", 1)[1]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/runs").status_code == 401
        runs = httpx.get(
            f"{base}/api/runs?workflow=train", headers={"Authorization": f"Bearer {token}"}
        )
        assert [r["id"] for r in runs.json()["runs"]] == web_project.runs[::-1]
        with httpx.Client(base_url=base, follow_redirects=False) as browser:
            login = browser.get(url.removeprefix(base))
            assert login.status_code == 303
            assert browser.get("/api/models").status_code == 200
        with socket.socket() as sock:  # nothing listens on other addresses
            sock.settimeout(1)
            ip = socket.gethostbyname(socket.gethostname())
            if not ip.startswith("127."):
                assert sock.connect_ex((ip, port)) != 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_qflow_server_with_token_over_given_stores(web_project: WebProject, tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "NO_COLOR": "1", "QFLOW_SERVER_TOKEN": "s3cret-token-for-tests"}
    process, _ = _start(
        [
            "server",
            "--store",
            web_project.store_url,
            "--artifacts",
            web_project.artifacts_url,
            "--port",
            str(port),
        ],
        tmp_path,
        env,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        headers = {"Authorization": "Bearer s3cret-token-for-tests"}
        models = httpx.get(f"http://127.0.0.1:{port}/api/models", headers=headers)
        assert models.json()[0]["name"] == "clf"
        launch = httpx.get(f"http://127.0.0.1:{port}/api/launch/workflows", headers=headers)
        assert launch.status_code == 404  # a team server has no project to launch from
    finally:
        process.terminate()
        process.wait(timeout=30)
