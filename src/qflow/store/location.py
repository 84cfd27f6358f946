"""Where a project's stores live: environment overrides, else under ``<project>/.qflow``."""

from __future__ import annotations

import os
from pathlib import Path

from qflow.store.artifacts import ArtifactStore
from qflow.store.metadata.store import MetadataStore


def default_store_url(project_dir: Path) -> str:
    """``QFLOW_STORE`` if set, else the project's SQLite file."""
    url = os.environ.get("QFLOW_STORE")
    if url:
        return url
    return f"sqlite:///{Path(project_dir).absolute() / '.qflow' / 'qflow.db'}"


def default_artifacts_url(project_dir: Path) -> str:
    """``QFLOW_ARTIFACTS`` if set, else the project's local artifact folder."""
    return os.environ.get("QFLOW_ARTIFACTS") or str(
        Path(project_dir).absolute() / ".qflow" / "artifacts"
    )


EMPTY_STORE_URL = "sqlite://"
"""An in-memory store: what a reader sees of a project that has recorded nothing yet."""


def open_stores(project_dir: Path, *, create: bool = True) -> tuple[MetadataStore, ArtifactStore]:
    """The metadata and artifact stores of the project in ``project_dir``; with
    ``QFLOW_TRACKING_URI=http://host:port`` the metadata lives on that tracking server.

    With ``create=False`` (commands that only read) a SQLite store that does not exist yet
    is not created: the reader gets an empty in-memory store and nothing is written."""
    if os.environ.get("QFLOW_TRACKING_URI"):
        from qflow.store.remote import open_stores as open_remote

        return open_remote(project_dir)  # type: ignore[return-value]
    url = default_store_url(project_dir)
    if not create and _missing_sqlite_file(url):
        url = EMPTY_STORE_URL
    return MetadataStore(url), ArtifactStore(default_artifacts_url(project_dir))


def _missing_sqlite_file(url: str) -> bool:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return False
    path = url.removeprefix(prefix).split("?", 1)[0]
    return path not in ("", ":memory:") and not Path(path).exists()
