"""Run lifecycle (issue 15): delete, archive and restore runs from the CLI, the client and
the dashboard API; ``qflow gc`` removes deleted runs and reclaims what only they used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import InvalidValueError, RunNotFoundError
from qflow.store import open_stores

BIG = """import qflow as qf


@qf.step
def make(n: int) -> bytes:
    return bytes([n % 256]) * 200_000


@qf.step
def shared() -> bytes:
    return b"s" * 200_000


@qf.workflow
def big(n: int = 1):
    return make(n), shared()
"""


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _listed(capsys: pytest.CaptureFixture[str], *flags: str) -> list[str]:
    code, out, _ = _cli(capsys, "runs", "--json", *flags)
    assert code == 0
    return [r["id"] for r in json.loads(out)]


def test_delete_archive_restore_from_the_cli(
    wf_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = qf.run("pipeline", {"n": 3}, project_dir=wf_project)
    second = qf.run("pipeline", {"n": 4}, project_dir=wf_project)
    third = qf.run("pipeline", {"n": 5}, project_dir=wf_project)
    capsys.readouterr()

    code, out, _ = _cli(capsys, "runs", "delete", first.id[:12], second.id)
    assert code == 0 and f"Deleted {first.id}" in out and "qflow gc" in out
    code, out, _ = _cli(capsys, "runs", "archive", third.id)
    assert code == 0 and f"Archived {third.id}" in out
    assert _listed(capsys) == []
    assert _listed(capsys, "--archived") == [third.id]
    assert _listed(capsys, "--all") == [third.id, second.id, first.id]
    code, out, _ = _cli(capsys, "runs", "--all")
    assert "deleted" in out and "archived" in out and "lifecycle" in out
    code, out, _ = _cli(capsys, "show", first.id, "--json")
    assert code == 0 and json.loads(out)["lifecycle"] == "deleted"

    code, out, _ = _cli(capsys, "runs", "restore", second.id, third.id)
    assert code == 0 and f"Restored {second.id}" in out
    assert _listed(capsys) == [third.id, second.id]


def test_bad_lifecycle_input_is_one_line_and_changes_nothing(
    wf_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = qf.run("pipeline", {"n": 3}, project_dir=wf_project)
    capsys.readouterr()
    code, _, err = _cli(capsys, "runs", "delete", run.id, "nope")
    assert code == 1
    assert err.strip().splitlines() == ["Error: No run with id 'nope'."]
    assert _listed(capsys) == [run.id]  # all or nothing: the good id stayed too

    metadata, _ = open_stores(wf_project)
    live = metadata.create_run(workflow="pipeline", config={})
    code, _, err = _cli(capsys, "runs", "archive", live.id)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"Run {live.id} is still running" in err and "Hint:" in err
    with pytest.raises(InvalidValueError, match="is not one of active, archived, deleted"):
        metadata.set_run_lifecycle([run.id], "gone")


def test_a_run_a_model_came_from_cannot_be_deleted_but_can_be_archived(
    wf_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = qf.run("pipeline", {"n": 3}, project_dir=wf_project)
    qf.models.register(run, "score", name="scorer", project_dir=wf_project)
    client = qf.Client(wf_project)
    with pytest.raises(InvalidValueError, match="model 'scorer' version 1 was registered"):
        client.delete_runs(run.id)
    (archived,) = client.archive_runs(run.id)
    assert archived.lifecycle == "archived" and client.runs() == []
    assert [r.id for r in client.runs(include_archived=True)] == [run.id]
    assert qf.models.load("scorer/1", project_dir=wf_project) == 3.0


def test_client_hides_deleted_runs_from_listings_filters_and_the_cache(wf_project: Path) -> None:
    first = qf.run("pipeline", {"n": 3}, project_dir=wf_project)
    client = qf.Client(wf_project)
    (gone,) = client.delete_runs(first.id)
    assert gone.lifecycle == "deleted" and gone.deleted_at is not None
    assert client.runs() == [] and client.runs(filter="metrics.score > 0") == []
    assert [r.id for r in client.runs(include_deleted=True)] == [first.id]
    assert [r.id for r in client.runs(filter="metrics.score > 0", include_deleted=True)] == [
        first.id
    ]
    assert client.run(first.id[:10]).id == first.id  # still readable by id until gc

    # A deleted run's steps are no cache entries: gc is about to take their outputs.
    again = qf.run("pipeline", {"n": 3}, project_dir=wf_project)
    assert again.step("make").status == "succeeded"
    assert again.step("score").status == "succeeded"
    client.restore_runs(first.id)
    assert {r.id for r in client.runs()} == {first.id, again.id}


def test_gc_removes_deleted_runs_and_only_their_blobs(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "big"\n[tool.qflow]\nworkflow-modules = ["bigwf"]\n'
    )
    (project / "bigwf.py").write_text(BIG)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(__import__("sys").modules, "bigwf", raising=False)
    keep = qf.run("big", {"n": 1}, project_dir=project)
    drop = qf.run("big", {"n": 2}, project_dir=project)
    archived = qf.run("big", {"n": 3}, project_dir=project)
    client = qf.Client(project)
    client.delete_runs(drop.id)
    client.archive_runs(archived.id)
    own = drop.step("make").outputs["return"].key
    shared = drop.step("shared").outputs["return"].key
    _, artifacts = open_stores(project)
    assert artifacts.exists(own) and artifacts.exists(shared)
    capsys.readouterr()

    code, out, _ = _cli(capsys, "gc", "--min-age", "0", "--dry-run", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["runs"] == 1 and dry["run_ids"] == [drop.id] and dry["blobs"] == 1
    assert artifacts.exists(own) and client.run(drop.id).lifecycle == "deleted"

    code, out, _ = _cli(capsys, "gc", "--min-age", "0")
    assert code == 0 and f"Removed 1 deleted runs: {drop.id}." in out and "1 blobs" in out
    assert not artifacts.exists(own)
    assert artifacts.exists(shared)  # the live runs' cache entry still uses it
    with pytest.raises(RunNotFoundError, match="No run with id"):
        client.run(drop.id)
    for run in (keep, archived):
        view = client.run(run.id)
        assert [s.load() for s in view.steps] == [
            bytes([int(run.config["n"])]) * 200_000,
            b"s" * 200_000,
        ]
    code, out, _ = _cli(capsys, "runs", "restore", drop.id)
    assert code == 1


def test_dashboard_api_deletes_archives_and_restores_with_auth_and_csrf(
    wf_project: Path,
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from qflow.web.app import Settings, create_app

    run = qf.run("pipeline", {"n": 3}, project_dir=wf_project)
    token = "lifecycle-token-0123456789"
    settings = Settings(
        store_url=f"sqlite:///{wf_project / '.qflow' / 'qflow.db'}",
        artifacts_url=str(wf_project / ".qflow" / "artifacts"),
        project_dir=wf_project,
        token=token,
        allowed_hosts=("testserver",),
    )
    app = create_app(settings)
    with TestClient(app) as anonymous:
        assert anonymous.post(f"/api/runs/{run.id}/delete").status_code == 401
        anonymous.get(f"/runs?token={token}")
        forged = anonymous.post(f"/api/runs/{run.id}/delete")
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf"
        csrf = anonymous.cookies["qflow_csrf"]
        done = anonymous.post(f"/api/runs/{run.id}/delete", headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200 and done.json()["lifecycle"] == "deleted"
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.get("/api/runs").json()["runs"] == []
        listed = api.get("/api/runs", params={"include_deleted": True}).json()["runs"]
        assert [r["id"] for r in listed] == [run.id] and listed[0]["deleted_at"] is not None
        assert api.get(f"/api/runs/{run.id}").json()["lifecycle"] == "deleted"
        assert api.post(f"/api/runs/{run.id[:10]}/restore").json()["lifecycle"] == "active"
        assert api.post(f"/api/runs/{run.id}/archive").json()["lifecycle"] == "archived"
        assert api.get("/api/runs").json()["runs"] == []
        assert len(api.get("/api/runs", params={"include_archived": True}).json()["runs"]) == 1
        bad = api.post(f"/api/runs/{run.id}/purge")
        assert bad.status_code == 422
        missing = api.post("/api/runs/nope/delete")
        assert missing.status_code == 404


@pytest.mark.integration
def test_lifecycle_through_the_tracking_server(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from qflow.store.remote import RemoteMetadataStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    token = "lifecycle-remote-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "qflow", "server", "--port", str(port)),
            *("--store", f"sqlite:///{tmp_path / 's.db'}", "--artifacts", str(tmp_path / "a")),
        ],
        env={**env, "QFLOW_SERVER_TOKEN": token, "NO_COLOR": "1"},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        store = RemoteMetadataStore(url, token)
        runs = [store.create_run(workflow="wf", config={"i": i}) for i in range(3)]
        for run in runs:
            store.finish_run(run.id, "succeeded")
        live = store.create_run(workflow="wf", config={})
        with pytest.raises(InvalidValueError, match="is still running"):
            store.set_run_lifecycle([runs[0].id, live.id], "deleted")
        (gone,) = store.set_run_lifecycle([runs[0].id[:14]], "deleted")
        (kept,) = store.set_run_lifecycle([runs[1].id], "archived")
        assert (gone.lifecycle, kept.lifecycle) == ("deleted", "archived")
        assert [r.id for r in store.list_runs()] == [live.id, runs[2].id]
        assert len(store.list_runs(include_archived=True, include_deleted=True)) == 4
        assert [r.id for r in store.runs_matching("params.x = 1", include_deleted=True)] == []
        matched = store.runs_matching("status = 'succeeded'", include_deleted=True)
        assert [r.id for r in matched] == [runs[2].id, runs[0].id]
        store.set_run_lifecycle([runs[0].id, runs[1].id], "active")
        assert len(store.list_runs()) == 4
    finally:
        server.terminate()
        server.wait(timeout=30)


@qf.step
def folder_output(tag: str, out: str) -> Path:
    folder = Path(out) / tag
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(tag.encode() * 50_000)
    return folder


@qf.step
def read_folder(folder: Path) -> int:
    return len((folder / "weights.bin").read_bytes())


@qf.workflow
def folders(tag: str = "a", out: str = "") -> object:
    return read_folder(folder_output(tag, out))


def test_gc_reclaims_a_folder_blob_with_its_unpacked_copy(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qflow.store.artifacts import UNPACKED_FOLDER

    run = qf.run(folders, {"tag": "a", "out": str(tmp_path / "w")}, project_dir=project)
    key = run.step("folder_output").outputs["return"].key
    unpacked = project / ".qflow" / "artifacts" / UNPACKED_FOLDER / key
    assert unpacked.is_dir()  # the downstream step read the folder blob
    qf.Client(project).delete_runs(run.id)
    code, out, _ = _cli(capsys, "gc", "--min-age", "0", "--project", str(project))
    assert code == 0, out
    _, artifacts = open_stores(project)
    assert not artifacts.exists(key)
    assert not unpacked.exists()
