"""Artifact blobs (content-addressed) and run metadata (SQLAlchemy): what QFlow remembers."""

from qflow.store.artifacts import ArtifactRef, ArtifactStore
from qflow.store.location import default_store_url, open_stores
from qflow.store.metadata import records
from qflow.store.metadata.store import MetadataStore

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "MetadataStore",
    "default_store_url",
    "open_stores",
    "records",
]
