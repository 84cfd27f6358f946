"""Artifact blobs (content-addressed) and run metadata (SQLAlchemy): what QFlow remembers.

The metadata store's contract is ``qflow.store.contract.MetadataStore`` (per-aggregate
Protocols); ``SqlMetadataStore`` (also ``MetadataStore``, its historical name) implements it
on SQLite and PostgreSQL, ``qflow.store.remote.RemoteMetadataStore`` over HTTP.

Names are imported on first use, so importing a light module such as
``qflow.store.serializers`` does not load SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ArtifactRef": "qflow.store.artifacts",
    "ArtifactStore": "qflow.store.artifacts",
    "MetadataStore": "qflow.store.metadata.store",
    "SqlMetadataStore": "qflow.store.metadata.store",
    "default_store_url": "qflow.store.location",
    "open_stores": "qflow.store.location",
    "records": "qflow.store.metadata",
}

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "MetadataStore",
    "SqlMetadataStore",
    "default_store_url",
    "open_stores",
    "records",
]

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef, ArtifactStore
    from qflow.store.location import default_store_url, open_stores
    from qflow.store.metadata import records
    from qflow.store.metadata.store import MetadataStore, SqlMetadataStore


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qflow.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
