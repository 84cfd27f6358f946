"""Which store a project opens, and what needs the SQL store rather than the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qflow.errors import StoreError
from qflow.store.location import open_stores
from qflow.store.metadata.store import SqlMetadataStore, sql_store
from qflow.store.remote import RemoteMetadataStore


def test_a_tracking_uri_opens_the_http_store(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QFLOW_TRACKING_URI", "http://127.0.0.1:9")
    metadata, _ = open_stores(project)
    assert isinstance(metadata, RemoteMetadataStore) and metadata.url == "http://127.0.0.1:9"
    assert not (project / ".qflow" / "qflow.db").exists()
    with pytest.raises(StoreError, match=r"qflow gc needs direct database access.*QFLOW_STORE"):
        sql_store(metadata, "qflow gc")


def test_the_sql_store_is_its_own_sql_store(project: Path) -> None:
    metadata, _ = open_stores(project)
    assert isinstance(metadata, SqlMetadataStore)
    assert sql_store(metadata, "qflow gc") is metadata
    metadata.dispose()


def test_the_http_store_loads_neither_sqlalchemy_nor_the_server() -> None:
    code = (
        "import sys\n"
        "from qflow.store.remote import RemoteMetadataStore\n"
        "RemoteMetadataStore('http://127.0.0.1:9')\n"
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'alembic') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
