"""Issue 17, concurrency: readers never see a partial blob or a failing page while QFlow writes.

The same blob is written by two processes at once, round after round, while a third loads and
hashes it (``QFLOW_VERIFY=always``); ``qflow ui`` answers every dashboard request while a run
writes to the same SQLite database. Afterwards nothing acknowledged is missing."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import qflow as qf
from qflow.store.artifacts import ArtifactRef, ArtifactStore
from tests.integration.reliability.conftest import (
    TOKEN,
    assert_doctor_clean,
    free_port,
    start_qflow,
    write_project,
)

pytestmark = pytest.mark.integration

ROUNDS = 6
BLOB_BYTES = 6 * 1024 * 1024


def _blob(round_: int) -> bytes:
    return bytes([round_]) * BLOB_BYTES


def _writer(root: str, barrier: Any) -> list[str]:
    store = ArtifactStore(root)
    keys = []
    for round_ in range(ROUNDS):
        barrier.wait(60)  # both writers start each round together
        keys.append(store.put_bytes(_blob(round_)).key)
    return keys


def _reader(root: str, refs: list[ArtifactRef], done: Any) -> tuple[int, list[str]]:
    """Load every blob that exists, verified by hash, until told to stop; then once more."""
    import os

    from qflow.errors import ArtifactNotFoundError

    os.environ["QFLOW_VERIFY"] = "always"
    store = ArtifactStore(root)
    loads, problems = 0, []
    last = False
    while not last:
        last = done.is_set()
        for round_, ref in enumerate(refs):
            try:
                data = store.get(ref)
            except ArtifactNotFoundError:
                continue
            except Exception as exc:  # a partial or foreign blob: the failure under test
                problems.append(f"round {round_}: {type(exc).__name__}: {exc}")
                continue
            loads += 1
            if data != _blob(round_):
                problems.append(f"round {round_}: other bytes")
    return loads, problems


def test_the_same_blob_written_twice_while_a_reader_hashes_it(tmp_path: Path) -> None:
    root = str(tmp_path / "artifacts")
    refs = [
        ArtifactRef(
            hashlib.sha256(_blob(r)).hexdigest(), "bytes", BLOB_BYTES, "builtins.bytes", False
        )
        for r in range(ROUNDS)
    ]
    context = multiprocessing.get_context("forkserver")
    with context.Manager() as manager, context.Pool(3) as pool:
        barrier, done = manager.Barrier(2), manager.Event()
        reading = pool.apply_async(_reader, (root, refs, done))
        writers = [pool.apply_async(_writer, (root, barrier)) for _ in range(2)]
        written = [w.get(timeout=300) for w in writers]
        done.set()
        loads, problems = reading.get(timeout=300)
    assert problems == []
    assert loads >= ROUNDS  # the last pass alone loads every blob
    assert written == [[r.key for r in refs]] * 2
    store = ArtifactStore(root)
    blobs = [p for p in Path(root).rglob("*") if p.is_file() and ".tmp" not in p.parts]
    assert sorted(p.name for p in blobs) == sorted(r.key for r in refs)
    assert all(store.intact(r) for r in refs)
    assert [p for p in (Path(root) / ".tmp").rglob("*") if p.is_file()] == []


STEPS = 6
POINTS = 150

WORKFLOWS = f"""
import time

import qflow as qf


@qf.step
def train(previous: int, index: int) -> int:
    qf.log_param("index", index)
    for i in range({POINTS}):
        qf.log_metric("loss", 1.0 / (index * {POINTS} + i + 1), step=index * {POINTS} + i)
        time.sleep(0.002)
    return previous + 1


@qf.workflow
def busy(cfg):
    done = 0
    for index in range({STEPS}):
        done = train(done, index)
    return done
"""


def _poll(url: str, stop: threading.Event, failures: list[str], seen: list[str]) -> None:
    """What the dashboard asks for, over and over: the runs list, a run, its metrics and a
    chart's history. Every answer must be 200 with a body."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        while not stop.is_set():
            paths = ["/api/runs", "/api/workflows"]
            runs = client.get("/api/runs", timeout=30)
            if runs.status_code == 200 and runs.json()["runs"]:
                run = runs.json()["runs"][0]
                seen.append(run["status"])
                paths += [
                    f"/api/runs/{run['id']}",
                    f"/api/runs/{run['id']}/metrics",
                    f"/api/runs/{run['id']}/history?key=loss",
                    f"/api/runs/{run['id']}/graph",
                    f"/api/runs/{run['id']}/logs",
                ]
            for path in paths:
                response = client.get(path, timeout=30)
                if response.status_code != 200 or not response.content:
                    failures.append(f"{path}: {response.status_code} {response.text[:200]}")


def test_dashboard_reads_during_a_run_never_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = write_project(tmp_path / "proj", WORKFLOWS, module="busywf")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    port = free_port()
    ui = start_qflow(["ui", "--project", str(project), "--port", str(port)], port)
    url = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    seen: list[str] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(url, stop, failures, seen))
    poller.start()
    try:
        run = qf.run("busy", project_dir=project)
    finally:
        stop.set()
        poller.join(timeout=60)
    try:
        assert failures == []
        assert seen  # the dashboard saw the run
        headers = {"Authorization": f"Bearer {TOKEN}"}
        detail = httpx.get(f"{url}/api/runs/{run.id}", headers=headers, timeout=30).json()
        assert detail["status"] == "succeeded"
    finally:
        ui.terminate()
        ui.wait(timeout=30)
    view = qf.Client(project).run(run.id)
    assert [s.status for s in view.steps] == ["succeeded"] * STEPS
    history = view.metric_history("loss")
    assert [m.step for m in history] == list(range(STEPS * POINTS))
    assert_doctor_clean(project)
