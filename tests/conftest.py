"""Shared fixtures. ``metadata_store`` runs a test on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from qflow.store import MetadataStore

POSTGRES_ADMIN_URL = "postgresql://root@127.0.0.1:5432/test"


def _postgres_database() -> Iterator[str]:
    """Create a throwaway database, yield its URL, and drop it afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"qflow_t_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def metadata_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        store = MetadataStore(f"sqlite:///{tmp_path / '.qflow' / 'qflow.db'}")
        yield store
        store.dispose()
        return
    for url in _postgres_database():
        store = MetadataStore(url)
        yield store
        store.dispose()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder using the embedded defaults (SQLite, local artifacts)."""
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1:5432, dropped afterwards."""
    yield from _postgres_database()
