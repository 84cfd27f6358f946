"""The HTTP store retries every call through transient failures, and a retried write is
recorded once: a real ``qflow server`` is killed (SIGKILL) and restarted between calls, and a
loopback proxy drops the server's answers after the server has acted on the request."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import pytest

from qflow.ids import new_run_id
from qflow.store.metadata.records import DataFileRecord
from qflow.store.remote import RemoteMetadataStore
from tests.integration.store_contract.conftest import TOKEN, Server, free_port, start_server

pytestmark = pytest.mark.integration

T = TypeVar("T")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _during_an_outage(server: Server, call: Callable[[], T]) -> T:
    """Kill the server, make ``call`` while it is down, restart it on the same port; the call
    returns once the server is back."""
    server.kill()

    def restart() -> None:
        time.sleep(1.0)
        server.start()

    restarted = threading.Thread(target=restart)
    restarted.start()
    try:
        return call()
    finally:
        restarted.join()


def test_every_kind_of_call_survives_a_server_restart(server: Server) -> None:
    store = RemoteMetadataStore(server.url, TOKEN)
    assert store.list_runs(workflow="restart") == []  # the server answered once
    run_id = new_run_id()
    run = _during_an_outage(
        server, lambda: store.create_run(workflow="restart", config={}, run_id=run_id)
    )
    entries = [{"name": f"{i}_s", "step": "s", "position": i, "params": {}} for i in range(2)]
    ids = _during_an_outage(server, lambda: store.create_step_runs(run_id, entries))
    _during_an_outage(server, lambda: store.start_step_run(ids[0], cache_key="k"))
    rows = [(run_id, None, "loss", 1.0 / (i + 1), i, 100.0 + i) for i in range(500)]
    _during_an_outage(server, lambda: store.log_metrics(rows))
    _during_an_outage(server, lambda: store.log_params(run_id, {"C": 0.5}))
    _during_an_outage(server, lambda: store.finish_step_run(ids[0], status="succeeded"))
    _during_an_outage(server, lambda: store.finish_run(run_id, "succeeded"))
    found = _during_an_outage(server, lambda: store.runs_matching("params.C = 0.5"))
    assert [r.id for r in found] == [run.id] == [run_id]
    loaded = _during_an_outage(server, lambda: store.get_run(run_id))
    assert (loaded.status, loaded.params) == ("succeeded", {"C": 0.5})
    assert [s.status for s in store.step_runs(run_id)] == ["succeeded", "pending"]
    assert [m.step for m in store.metrics(run_id, "loss")] == list(range(500))
    store.dispose()


class AnswerDropper:
    """A loopback proxy to the server that forwards each request and, for the first answer to
    each path in ``drop``, closes the client's connection instead of answering: the server has
    acted, the client never hears of it."""

    def __init__(self, upstream_port: int, drop: set[str]) -> None:
        self.upstream_port = upstream_port
        self.drop = set(drop)
        self.dropped: list[str] = []
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            reader, upstream_reader = client.makefile("rb"), upstream.makefile("rb")
            while True:
                request = _message(reader)
                if request is None:
                    return
                path = request.split(b" ", 2)[1].decode()
                upstream.sendall(request)
                answer = _message(upstream_reader)
                if answer is None:
                    return
                if path in self.drop:
                    self.drop.discard(path)
                    self.dropped.append(path)
                    return  # the connection closes unanswered
                client.sendall(answer)


def _message(stream: BinaryIO) -> bytes | None:
    """One HTTP/1.1 message (head and Content-Length body) from a socket file, or None."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + (stream.read(length) if length else b"")


def test_writes_whose_answers_were_lost_are_recorded_once(server: Server) -> None:
    writes = {
        "create_run",
        "create_step_runs",
        "log_metrics",
        "record_data_files",
        "log_params",
        "set_tags",
        "finish_step_run",
        "save_sources",
    }
    proxy = AnswerDropper(server.port, {f"/api/store/{w}" for w in writes})
    store = RemoteMetadataStore(proxy.url, TOKEN)
    try:
        assert store.workflows() is not None  # reached: later failures are retried
        run = store.create_run(workflow="lost-answers", config={"a": 1})
        entries = [{"name": f"{i}_s", "step": "s", "position": i, "params": {}} for i in range(3)]
        ids = store.create_step_runs(run.id, entries)
        rows = [(run.id, ids[0], "acc", i / 10, i, 50.0 + i) for i in range(10)]
        store.log_metrics(rows)
        sha = hashlib.sha256(b"data").hexdigest()
        store.record_data_files(ids[0], [DataFileRecord("path", "/d.csv", sha, 4)])
        store.log_params(run.id, {"C": 1.0})
        store.set_tags(run.id, {"team": "a"})
        store.finish_step_run(ids[0], status="succeeded", attempts=1)
        [key] = store.save_sources(["def f(): pass"])
    finally:
        proxy.close()
    assert sorted(proxy.dropped) == sorted(f"/api/store/{w}" for w in writes)
    direct = RemoteMetadataStore(server.url, TOKEN)
    assert [r.id for r in direct.list_runs(workflow="lost-answers")] == [run.id]
    assert [s.id for s in direct.step_runs(run.id)] == ids
    assert [(m.step, m.value) for m in direct.metrics(run.id, "acc")] == [
        (i, i / 10) for i in range(10)
    ]
    assert [f.path for f in direct.data_files(run.id)] == ["/d.csv"]
    loaded = direct.get_run(run.id)
    assert (loaded.params, loaded.tags) == ({"C": 1.0}, {"team": "a"})
    assert direct.get_step_run(run.id, "0_s").status == "succeeded"
    assert direct.source(key) == "def f(): pass"
    direct.dispose()
    store.dispose()
