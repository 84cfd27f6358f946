"""Issue 17, server security against a real ``qflow server`` / ``qflow ui`` process.

DNS rebinding: a page on ``evil.example`` whose name is re-pointed at 127.0.0.1 reaches the
server with ``Host: evil.example``; it is refused (421) before any route, even with a valid
token, and nothing is recorded. Resource limits: bodies over the limit (declared or streamed),
oversized metric batches, long or deeply nested filters and hostile ids get a clear 4xx, and
the server stays up and keeps what it had acknowledged."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qflow.store.methods import METRIC_BATCH_ROWS
from tests.integration.reliability.conftest import (
    TOKEN,
    free_port,
    start_qflow,
    start_server,
    write_project,
)

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024 * 1024  # qflow.web.settings.MAX_BODY_BYTES
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_HOSTS = [
    "evil.example",
    "evil.example:{port}",
    "127.0.0.1.evil.example:{port}",
    "localhost.evil.example",
    "[::2]:{port}",
]


def _refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 421
        and response.json()["error"]["code"] == "host_not_allowed"
        and "runs" not in response.json()
    )


def _refused_runs_absent(runs: list[dict[str, object]]) -> bool:
    """No run of workflow ``refused``: the create_run sent with a foreign Host."""
    return all(r["workflow"] != "refused" for r in runs)


def _check_host_header(url: str, port: int, allowed: list[str]) -> None:
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        for pattern in HOSTILE_HOSTS:
            host = pattern.format(port=port)
            for method, path in (("GET", "/api/runs"), ("GET", "/health"), ("GET", "/runs")):
                response = client.request(method, path, headers={"host": host})
                assert _refused(response), (host, path, response.status_code, response.text)
            created = client.post(
                "/api/store/create_run",
                json={"workflow": "refused", "config": {}},
                headers={"host": host},
            )
            assert _refused(created), (host, created.text)
        for pattern in allowed:
            host = pattern.format(port=port)
            response = client.get("/api/runs", headers={"host": host})
            assert response.status_code == 200, (host, response.text)
            assert _refused_runs_absent(response.json()["runs"])


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One ``qflow server --allowed-host team.example`` for this module; yields (URL, port)."""
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    process = start_server(
        f"sqlite:///{folder / 'server.db'}",
        folder / "artifacts",
        port,
        "--allowed-host",
        "team.example",
    )
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_qflow_server_refuses_foreign_host_headers(team_server: tuple[str, int]) -> None:
    url, port = team_server
    _check_host_header(
        url, port, ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "team.example:{port}"]
    )


def test_qflow_ui_refuses_foreign_host_headers(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj")
    port = free_port()
    process = start_qflow(
        ["ui", "--project", str(project), "--port", str(port), "--allowed-host", "me.example"],
        port,
    )
    try:
        _check_host_header(
            f"http://127.0.0.1:{port}", port, ["127.0.0.1:{port}", "me.example:{port}"]
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def _raw_status(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request byte for byte (a Content-Length no client library would send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def test_oversized_and_hostile_requests_get_a_clear_4xx_and_the_server_stays_up(
    team_server: tuple[str, int],
) -> None:
    url, port = team_server
    client = httpx.Client(base_url=url, headers=AUTH, timeout=60)
    run_id = client.post("/api/store/create_run", json={"workflow": "w", "config": {}}).json()[
        "result"
    ]["id"]

    def row(i: int) -> dict[str, object]:
        return {
            "run_id": run_id,
            "step_run_id": None,
            "key": "loss",
            "bits": i,
            "step": i,
            "timestamp": 1.0,
        }

    def metric_count() -> int:
        return len(client.post("/api/store/metrics", json={"run_id": run_id}).json()["result"])

    small = client.post("/api/store/log_metrics", json={"rows": [row(i) for i in range(10)]})
    assert small.status_code == 200, small.text
    assert metric_count() == 10

    # a declared body over the limit: refused before a byte of it is read
    status, answer = _raw_status(
        port,
        b"POST /api/store/log_metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n",
    )
    assert status == 413 and b'"too_large"' in answer

    # a real metric batch over the limit, declared and streamed (chunked, no length)
    one = json.dumps(row(0)).encode()
    rows = LIMIT // len(one) + 1000
    batch = b'{"rows": [' + b", ".join([one] * rows) + b"]}"
    assert len(batch) > LIMIT
    declared = client.post(
        "/api/store/log_metrics", content=batch, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(batch), 1 << 20):
            yield batch[start : start + (1 << 20)]

    streamed = client.post(
        "/api/store/log_metrics", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["error"]["code"] == "too_large"

    # a batch of more rows than a request may hold, under the byte limit: a clear 422
    too_many = client.post(
        "/api/store/log_metrics", json={"rows": [row(0)] * (5 * METRIC_BATCH_ROWS + 1)}
    )
    assert too_many.status_code == 422, too_many.text
    assert "rows" in too_many.json()["error"]["message"]

    # filters: too long, too deeply nested, injected sort keys; hostile run ids
    long_filter = client.get("/api/runs", params={"filter": "metrics.x > 1 and " * 400 + "1"})
    assert long_filter.status_code == 422
    assert "filter" in long_filter.json()["error"]["message"]
    nested = client.get("/api/runs", params={"filter": "(" * 1990 + "metrics.x > 1" + ")" * 1990})
    assert nested.status_code == 400 and nested.json()["error"]["code"] == "invalid_filter"
    sort = client.get("/api/runs", params={"sort": "metrics.`; drop table runs; --"})
    assert sort.status_code == 400 and sort.json()["error"]["code"] == "invalid_filter"
    quoted = client.get("/api/runs", params={"filter": "params.`x'; drop table runs; --` = 1"})
    assert quoted.status_code in (200, 400), quoted.text
    for bad_id in ("a" * 5000, "..%2F..%2Fetc%2Fpasswd", "%00", "' or 1=1 --"):
        response = client.get(f"/api/runs/{bad_id}")
        assert response.status_code in (400, 404, 422), (bad_id, response.status_code)
        assert "error" in response.json()

    # still up, nothing of the refused requests recorded, what was acknowledged kept
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    runs = client.get("/api/runs").json()["runs"]
    assert [r["id"] for r in runs] == [run_id]  # and no run from a refused Host
    assert metric_count() == 10
    client.close()
