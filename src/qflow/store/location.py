"""Where a project's stores live: environment overrides, else under ``<project>/.qflow``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from qflow.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore

TRACKING_URI_ENV = "QFLOW_TRACKING_URI"


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
    return open_metadata(project_dir, create=create), ArtifactStore(
        default_artifacts_url(project_dir)
    )


def open_metadata(project_dir: Path, *, create: bool = True) -> MetadataStore:
    """The project's metadata store: the tracking server in ``QFLOW_TRACKING_URI`` when set,
    else the SQL store at ``default_store_url``."""
    tracking_uri = os.environ.get(TRACKING_URI_ENV)
    if tracking_uri:
        from qflow.store.remote import RemoteMetadataStore

        return RemoteMetadataStore(tracking_uri)
    from qflow.store.metadata.store import SqlMetadataStore

    url = default_store_url(project_dir)
    if not create and _missing_sqlite_file(url):
        url = EMPTY_STORE_URL
    return SqlMetadataStore(url)


def _missing_sqlite_file(url: str) -> bool:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return False
    path = url.removeprefix(prefix).split("?", 1)[0]
    return path not in ("", ":memory:") and not Path(path).exists()
