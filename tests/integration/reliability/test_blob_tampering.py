"""Issue 17: a blob replaced by a symlink, a folder or other bytes is never loaded or served;
``qflow doctor`` names it without crashing; a re-run of the step repairs it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import ArtifactIntegrityError, ConfigError

pytestmark = pytest.mark.integration

PAYLOAD = b"genuine bytes " * 4096  # 56 KiB: a blob file, not an inline value
SECRET = b"root:x:0:0:secret\n"


@qf.step
def produce(n: int) -> bytes:
    return PAYLOAD[:n]


@qf.workflow
def blob_flow(n: int = len(PAYLOAD)) -> object:
    return produce(n)


def _blob(project: Path) -> tuple[str, Path]:
    run = qf.run(blob_flow, {}, project_dir=project)
    key = run.step("produce").outputs["return"].key
    path = project / ".qflow" / "artifacts" / key[:2] / key[2:4] / key
    assert path.is_file()
    return key, path


def _load(project: Path) -> object:
    client = qf.Client(project)
    return client.runs()[0].step("produce").load()


def _replace_with_symlink(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def test_a_symlinked_blob_is_refused_on_load_and_a_rerun_repairs_it(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, blob = _blob(project)
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    _replace_with_symlink(blob, secret)
    for policy in ("auto", "always", "size", "never"):
        monkeypatch.setenv("QFLOW_VERIFY", policy)
        with pytest.raises(ArtifactIntegrityError, match=r"is a symlink, not a regular file"):
            _load(project)
    monkeypatch.delenv("QFLOW_VERIFY")

    assert run_cli(["doctor", "--project", str(project)]) == 1

    rerun = qf.run(blob_flow, {}, project_dir=project)
    assert not rerun.step("produce").cached_from
    assert not blob.is_symlink()
    assert blob.read_bytes() == PAYLOAD
    assert secret.read_bytes() == SECRET
    assert _load(project) == PAYLOAD
    assert run_cli(["doctor", "--project", str(project)]) == 0


def test_a_blob_reached_through_a_symlinked_folder_is_refused(
    project: Path, tmp_path: Path
) -> None:
    _, blob = _blob(project)
    outside = tmp_path / "outside"
    shutil.copytree(blob.parent, outside)
    shutil.rmtree(blob.parent)
    blob.parent.symlink_to(outside)
    with pytest.raises(ArtifactIntegrityError, match=r"symlinked folder, outside the store"):
        _load(project)


def test_a_folder_at_a_blob_path_is_reported_by_doctor_and_repaired_by_a_rerun(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, blob = _blob(project)
    os.chmod(blob, 0o644)
    blob.unlink()
    blob.mkdir()
    (blob / "junk").write_bytes(b"x")
    capsys.readouterr()
    assert run_cli(["doctor", "--project", str(project)]) == 1
    assert f"artifact {key}: blob path is a folder" in capsys.readouterr().out
    with pytest.raises(ArtifactIntegrityError, match=r"is a folder, not a regular file"):
        _load(project)

    qf.run(blob_flow, {}, project_dir=project)
    assert blob.is_file()
    assert _load(project) == PAYLOAD
    assert run_cli(["doctor", "--project", str(project)]) == 0


def test_other_bytes_are_refused_by_hash_and_size_per_policy(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, blob = _blob(project)
    os.chmod(blob, 0o644)
    forged = b"X" + PAYLOAD[1:]
    blob.write_bytes(forged)
    with pytest.raises(ArtifactIntegrityError, match=r"hashes to .*, not to its key"):
        _load(project)
    monkeypatch.setenv("QFLOW_VERIFY", "size")
    assert _load(project) == forged  # same size: only hashing can tell, and "size" does not
    blob.write_bytes(PAYLOAD[:100])
    with pytest.raises(ArtifactIntegrityError, match=r"has 100 bytes, not the 57344"):
        _load(project)
    monkeypatch.setenv("QFLOW_VERIFY", "sometimes")
    with pytest.raises(ConfigError, match=r"QFLOW_VERIFY='sometimes' is not a verify policy"):
        _load(project)

    monkeypatch.delenv("QFLOW_VERIFY")
    client = qf.Client(project)
    assert not client.artifacts.intact(client.runs()[0].step("produce").outputs["return"])
    qf.run(blob_flow, {}, project_dir=project, rerun=["produce"])
    assert _load(project) == PAYLOAD


def test_the_dashboard_never_serves_a_symlink_target(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from qflow.web.app import Settings, create_app

    key, blob = _blob(project)
    run_id = qf.Client(project).runs()[0].id
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    _replace_with_symlink(blob, secret)
    settings = Settings(
        store_url=f"sqlite:///{project / '.qflow' / 'qflow.db'}",
        artifacts_url=str(project / ".qflow" / "artifacts"),
        token="tok-0123456789",
        allowed_hosts=("testserver",),
    )
    with TestClient(create_app(settings), headers={"Authorization": "Bearer tok-0123456789"}) as c:
        raw = c.get(f"/api/runs/{run_id}/artifacts/{key}/raw")
        assert raw.status_code == 400
        assert "is a symlink" in raw.json()["error"]["message"]
        preview = c.get(f"/api/runs/{run_id}/artifacts/{key}/preview")
        assert "is a symlink" in preview.text
        for response in (raw, preview):
            assert b"secret" not in response.content


def test_a_cache_hit_on_a_damaged_blob_runs_the_step_again(project: Path) -> None:
    """A truncated blob is no cache hit: the step runs again and the store holds it whole."""
    _, path = _blob(project)
    os.chmod(path, 0o644)
    path.write_bytes(PAYLOAD[:100])
    again = qf.run(blob_flow, {}, project_dir=project)
    assert again.step("produce").status == "succeeded"
    assert again.step("produce").load() == PAYLOAD
    assert path.read_bytes() == PAYLOAD
