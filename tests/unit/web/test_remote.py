"""QFLOW_TRACKING_URI: a workflow on one "machine" logs to a real uvicorn tracking server,
and ``qf.Client`` reads it back over HTTP (``qflow.store.location.open_stores`` selects the
remote store when the variable is set)."""

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

from qflow.errors import StoreError
from qflow.store.remote import RemoteMetadataStore
from tests.fixtures.web_project import write_project

TOKEN = "remote-token-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``qflow server`` on loopback over a fresh SQLite store; yields (URL, artifact folder)."""
    folder = tmp_path_factory.mktemp("server")
    artifacts = folder / "artifacts"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qflow",
            "server",
            "--store",
            f"sqlite:///{folder / 's.db'}",
            "--artifacts",
            str(artifacts),
            "--port",
            str(port),
        ],
        env={**env, "QFLOW_SERVER_TOKEN": TOKEN, "NO_COLOR": "1"},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and process.poll() is None, "server did not start"
            time.sleep(0.1)
    try:
        yield url, artifacts
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_bad_token_and_unreachable_server_are_store_errors(server: tuple[str, Path]):
    with pytest.raises(StoreError, match="refused the token"):
        RemoteMetadataStore(server[0], "wrong").workflows()
    with pytest.raises(StoreError, match="Cannot reach"):
        RemoteMetadataStore(f"http://127.0.0.1:{_free_port()}", TOKEN).workflows()
    with pytest.raises(StoreError, match="not an http"):
        RemoteMetadataStore("ftp://x")


def test_a_workflow_logs_to_the_server_end_to_end(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url, artifacts = server
    project = write_project(tmp_path / "client")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    env.update(QFLOW_TRACKING_URI=url, QFLOW_TRACKING_TOKEN=TOKEN, QFLOW_ARTIFACTS=str(artifacts))
    script = "import qflow as qf\nprint(qf.run('train', project_dir='.').id)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip().splitlines()[-1]

    headers = {"Authorization": f"Bearer {TOKEN}"}
    run = httpx.get(f"{url}/api/runs/{run_id}", headers=headers).json()
    assert run["status"] == "succeeded" and run["params"] == {"C": 1.0}
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 4
    history = httpx.get(
        f"{url}/api/runs/{run_id}/history", params={"key": "loss"}, headers=headers
    ).json()
    assert history["total_points"] == 300
    table = next(a for a in run["artifacts"] if a["name"] == "0_make.return")
    preview = httpx.get(
        f"{url}/api/runs/{run_id}/artifacts/{table['key']}/preview", headers=headers
    ).json()
    assert preview["kind"] == "table" and preview["total_rows"] == 20

    # qf.Client over HTTP, in this process.
    import qflow as qf

    for name, value in env.items():
        if name.startswith("QFLOW_"):
            monkeypatch.setenv(name, value)
    client = qf.Client(project)
    assert isinstance(client.metadata, RemoteMetadataStore)
    found = client.runs("train", filter="metrics.accuracy >= 0.5 and params.C = 1.0")
    assert [r.id for r in found] == [run_id]
    view = client.run(run_id)
    assert len(view.metric_history("loss")) == 300
    assert list(view.step("make").load().columns) == ["x", "y"]
    assert {a.name for a in view.artifacts} == {"notes.txt", "sample.csv"}
