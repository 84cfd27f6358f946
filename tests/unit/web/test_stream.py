"""The run stream (Server-Sent Events) read from a real server on loopback: a running run's
state first, then the points logged afterwards, then ``end`` when the run finishes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.unit.web.conftest import TOKEN, WebProject, make_settings


@pytest.fixture
def served(web_project: WebProject, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, store URL) of a server over a fresh store."""
    import uvicorn

    from qflow.web.app import create_app

    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    app = create_app(make_settings(web_project, store_url=url))  # type: ignore[arg-type]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", url
    server.should_exit = True
    thread.join(timeout=10)


def _events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :])


def _next(events: Iterator[tuple[str, object]], name: str) -> dict:
    for got, data in events:
        if got == name:
            return data  # type: ignore[return-value]
    raise AssertionError(f"the stream ended before a {name!r} event")


def test_stream_pushes_new_points_then_ends(served: tuple[str, str]):
    from qflow.store import SqlMetadataStore

    base, url = served
    store = SqlMetadataStore(url)
    run = store.create_run(workflow="train", config={"lr": 0.1})
    store.log_metrics([(run.id, None, "loss", 1.0 / (i + 1), i, time.time()) for i in range(3)])
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
    with httpx.stream(
        "GET", f"{base}/api/runs/{run.id}/stream?full=true", headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines())
        first = _next(events, "run")
        assert first["status"] == "running" and first["metric_keys"][0]["points"] == 3
        snapshot = _next(events, "history")
        assert snapshot["reset"] and snapshot["x"] == [0, 1, 2] and len(snapshot["timestamp"]) == 3
        store.log_metrics([(run.id, None, "loss", 0.1, 3, time.time())])
        pushed = _next(events, "history")
        assert not pushed["reset"] and pushed["x"] == [3] and pushed["y"] == [0.1]
        store.finish_run(run.id, "succeeded")
        assert _next(events, "end") == {"status": "succeeded"}
        assert list(events) == []  # and the stream closes
    store.dispose()


def test_stream_of_an_unknown_run_is_404_before_it_opens(served: tuple[str, str]):
    base, _ = served
    response = httpx.get(
        f"{base}/api/runs/nosuchrun/stream", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 404 and "nosuchrun" in response.text


def test_stream_ends_when_the_run_is_removed(served: tuple[str, str]):
    from qflow.store import SqlMetadataStore

    base, url = served
    store = SqlMetadataStore(url)
    run = store.create_run(workflow="train", config={})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.stream("GET", f"{base}/api/runs/{run.id}/stream", headers=headers) as response:
        events = _events(response.iter_lines())
        assert _next(events, "run")["id"] == run.id
        with store.engine.begin() as conn:  # what qflow gc does to a deleted run's rows
            conn.exec_driver_sql("DELETE FROM runs WHERE id = ?", (run.id,))
        end = _next(events, "end")
        assert end["status"] is None and run.id in end["error"]
        assert list(events) == []
    store.dispose()


def test_stream_needs_the_token_and_an_allowed_host(
    anonymous: TestClient, client: TestClient, web_project: WebProject
):
    from tests.unit.web.test_security import route_table

    path = f"/api/runs/{web_project.runs[0]}/stream"
    assert ("/api/runs/{run_id}/stream", {"GET"}) in route_table(client.app)  # walked there too
    assert anonymous.get(path).status_code == 401
    assert client.get(path, headers={"Host": "evil.example"}).status_code == 421


def test_ctrl_c_stops_the_server_while_a_stream_is_open(tmp_path: Path):
    """A browser watching a running run must not keep ``qflow server`` from stopping."""
    import signal
    import subprocess
    import sys

    from qflow.store import SqlMetadataStore
    from tests.fixtures.servers import free_port

    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    store = SqlMetadataStore(url)
    run = store.create_run(workflow="train", config={})
    store.dispose()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "qflow", "server", "--store", url, "--artifacts",
         str(tmp_path / "artifacts"), "--port", str(port), "--token", TOKEN],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.1)
        with httpx.stream("GET", f"{base}/api/runs/{run.id}/stream", headers=headers) as response:
            events = _events(response.iter_lines())
            assert _next(events, "run")["status"] == "running"
            server.send_signal(signal.SIGINT)
            assert list(events) == []  # the stream ends cleanly
            _, errors = server.communicate(timeout=30)
        assert server.returncode == 0 and "Traceback" not in errors, errors
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
