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


def open_stores(project_dir: Path) -> tuple[MetadataStore, ArtifactStore]:
    """The metadata and artifact stores of the project in ``project_dir``; with
    ``QFLOW_TRACKING_URI=http://host:port`` the metadata lives on that tracking server."""
    if os.environ.get("QFLOW_TRACKING_URI"):
        from qflow.store.remote import open_stores as open_remote

        return open_remote(project_dir)  # type: ignore[return-value]
    return (
        MetadataStore(default_store_url(project_dir)),
        ArtifactStore(default_artifacts_url(project_dir)),
    )
