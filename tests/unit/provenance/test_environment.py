from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

import qflow as qf
from qflow import environment
from qflow.store import ArtifactRef, open_stores
from tests.unit.provenance.conftest import git, init_repo


def test_git_state_records_commit_branch_and_the_uncommitted_diff(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('v1')\n")
    commit = init_repo(tmp_path)
    clean = environment.git_state(tmp_path)
    assert clean is not None
    assert clean["commit"] == commit and clean["branch"] == "main"
    assert clean["dirty"] is False and clean["diff"] == ""

    (tmp_path / "train.py").write_text("print('v2')\n")
    (tmp_path / "new.py").write_text("x = 1\n")
    dirty = environment.git_state(tmp_path)
    assert dirty is not None and dirty["dirty"] is True
    assert "-print('v1')" in dirty["diff"] and "+print('v2')" in dirty["diff"]
    assert "+++ b/new.py" in dirty["diff"] and "+x = 1" in dirty["diff"]
    # the recorded diff applies to the recorded commit
    git(tmp_path, "stash", "-u")
    (tmp_path / "patch.diff").write_text(dirty["diff"])
    git(tmp_path, "apply", "patch.diff")
    assert (tmp_path / "train.py").read_text() == "print('v2')\n"
    assert (tmp_path / "new.py").read_text() == "x = 1\n"


def test_outside_git_a_reproducible_source_snapshot(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("A = 1\n")
    (tmp_path / "conf.yaml").write_text("n: 1\n")
    (tmp_path / "data.bin").write_bytes(b"\0" * 10)
    (tmp_path / ".qflow").mkdir()
    (tmp_path / ".qflow" / "x.py").write_text("skip")
    assert environment.git_state(tmp_path) is None
    first = environment.source_snapshot(tmp_path)
    assert first is not None and first == environment.source_snapshot(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first))) as tar:
        assert sorted(tar.getnames()) == ["conf.yaml", "src/a.py"]
    target = tmp_path / "out"
    environment.extract_snapshot(first, target)
    assert (target / "src" / "a.py").read_text() == "A = 1\n"
    assert environment.source_snapshot(tmp_path / "src" / "empty-nothing") is None


def test_package_list_is_cached_on_disk_by_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environment, "_memo", {})
    digest, packages = environment.installed_packages(tmp_path)
    assert "sqlalchemy" in packages and digest == environment.packages_digest(packages)
    assert (tmp_path / "environment-cache.json").is_file()
    monkeypatch.setattr(environment, "_memo", {})
    monkeypatch.setattr(environment, "scan_packages", lambda: pytest.fail("not cached"))
    assert environment.installed_packages(tmp_path) == (digest, packages)


def test_a_run_records_its_environment_once_per_package_list(wf_project: Path) -> None:
    (wf_project / "provwf.py").write_text(
        (wf_project / "provwf.py").read_text() + "\n# local change\n"
    )
    first = qf.run("pipeline", project_dir=wf_project)
    second = qf.run("pipeline", {"n": 4}, project_dir=wf_project)
    meta = first.meta
    assert meta["git"]["commit"] == git(wf_project, "rev-parse", "HEAD")
    assert meta["git"]["branch"] == "main" and meta["git"]["dirty"] is True
    assert meta["python"] and meta["platform"] and meta["host"] and meta["user"]
    assert "packages" not in meta and meta["packages_count"] > 10
    assert second.meta["packages_hash"] == meta["packages_hash"]
    metadata, artifacts = open_stores(wf_project)
    packages = metadata.environment(meta["packages_hash"])
    assert packages is not None and "sqlalchemy" in packages
    diff = artifacts.get(metadata_ref(meta["git"]["diff"]))
    assert isinstance(diff, bytes) and b"+# local change" in diff
    with metadata.engine.connect() as conn:
        import sqlalchemy as sa

        assert conn.execute(sa.text("SELECT count(*) FROM environments")).scalar() == 1


def metadata_ref(key: str) -> ArtifactRef:
    return ArtifactRef(key, "bytes", 0, "builtins.bytes", False)
