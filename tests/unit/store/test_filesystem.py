"""SQLite on a network file system is refused with the reason and the fix (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qflow.errors import StoreError
from qflow.store.metadata import filesystem
from qflow.store.metadata.store import MetadataStore


@pytest.fixture
def on_nfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mount table in which ``tmp_path/share`` is an NFS mount."""
    share = tmp_path / "share"
    share.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda1 / ext4 rw 0 0\n"
        f"server:/export {share.resolve()} nfs4 rw,relatime 0 0\n"
        "tmpfs /dev/shm tmpfs rw 0 0\n"
    )
    monkeypatch.setattr(filesystem, "MOUNTS", mounts)
    monkeypatch.delenv(filesystem.ALLOW_ENV, raising=False)
    return share


def test_sqlite_on_nfs_is_refused_and_nothing_is_created(on_nfs: Path) -> None:
    database = on_nfs / "proj" / ".qflow" / "qflow.db"
    with pytest.raises(StoreError, match=r"(?s)network file system \(nfs4\).*Hint: use PostgreSQL"):
        MetadataStore(f"sqlite:///{database}")
    assert not database.parent.exists()


def test_the_risk_can_be_accepted(on_nfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(filesystem.ALLOW_ENV, "1")
    store = MetadataStore(f"sqlite:///{on_nfs / 'qflow.db'}")
    assert store.list_runs() == []
    store.dispose()


def test_a_local_folder_next_to_the_mount_is_not_mistaken_for_it(
    on_nfs: Path, tmp_path: Path
) -> None:
    beside = tmp_path / "share-local"  # a prefix of the mount's name, not inside it
    beside.mkdir()
    assert filesystem.network_filesystem(beside) is None
    assert filesystem.network_filesystem(on_nfs / "deep" / "er") == "nfs4"


def test_this_machines_temp_folder_is_local(tmp_path: Path) -> None:
    assert filesystem.network_filesystem(tmp_path) is None
