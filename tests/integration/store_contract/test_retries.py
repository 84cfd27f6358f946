"""The HTTP store retries every call through transient failures, and a retried write is
recorded once: a real ``qflow server`` is killed (SIGKILL) and restarted between calls, and a
loopback proxy drops the server's answers after the server has acted on the request."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import pytest

from qflow.ids import new_run_id
from qflow.store.metadata.records import DataFileRecord, StepOutcome, StepStatus
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
    _during_an_outage(
        server, lambda: store.finish_step_run(ids[0], StepOutcome(StepStatus.SUCCEEDED))
    )
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
        store.finish_step_run(ids[0], StepOutcome(StepStatus.SUCCEEDED, attempts=1))
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


WORKFLOW = """
import time
from pathlib import Path

import qflow as qf

GATE = Path({gate!r})


@qf.step
def work(i: int) -> int:
    (GATE / f"waiting{{i}}").touch()
    while not (GATE / f"go{{i}}").exists():  # the test says when the step may go on
        time.sleep(0.05)
    qf.log_param(f"p{{i}}", i)
    for k in range(20):
        qf.log_metric(f"m{{i}}", float(k), step=k)
        time.sleep(0.02)
    return i


@qf.step
def total(values: list[int]) -> int:
    return sum(values)


@qf.workflow
def chain(cfg):
    return total([work(i) for i in range(6)])
"""


def test_a_workflow_run_survives_repeated_server_kills(server: Server, tmp_path: Path) -> None:
    """A six-step run logs to the server; as steps 1, 3 and 5 are let go, the server is
    SIGKILLed and restarted (the steps finish, log and the next ones start meanwhile). The run
    ends succeeded with every step run, param and metric recorded once."""
    gate = tmp_path / "gate"
    gate.mkdir()
    project = tmp_path / "client"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "killproj"\n[tool.qflow]\nworkflow-modules = ["killwf"]\n'
    )
    (project / "killwf.py").write_text(WORKFLOW.format(gate=str(gate)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    env.update(
        QFLOW_TRACKING_URI=server.url,
        QFLOW_TRACKING_TOKEN=TOKEN,
        QFLOW_ARTIFACTS=str(server.artifacts),
    )
    script = "import qflow as qf\nprint(qf.run('chain', project_dir='.').id)\n"
    client = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for i in range(6):
            while not (gate / f"waiting{i}").exists():
                assert client.poll() is None, client.communicate()
                time.sleep(0.05)
            (gate / f"go{i}").touch()
            if i % 2:
                server.kill()
                time.sleep(1.0)
                server.start()
        out, err = client.communicate(timeout=240)
    finally:
        client.kill()
    assert client.returncode == 0, err[-3000:]
    run_id = out.strip().splitlines()[-1]
    store = RemoteMetadataStore(server.url, TOKEN)
    run = store.get_run(run_id)
    assert run.status == "succeeded"
    assert run.params == {f"p{i}": i for i in range(6)}
    steps = store.step_runs(run_id)
    assert len(steps) == 7 and {s.status for s in steps} == {"succeeded"}
    for i in range(6):
        assert [m.step for m in store.metrics(run_id, f"m{i}")] == list(range(20))
    assert [r.id for r in store.list_runs(workflow="chain")] == [run_id]
    store.dispose()
