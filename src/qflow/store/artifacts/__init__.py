"""Content-addressed, immutable artifact blobs on local disk or any fsspec URL.

A blob lives at ``<root>/<key[:2]>/<key[2:4]>/<key>`` where ``key`` is the sha256 of its
bytes. The package is split by job:

- ``ref``: ``ArtifactRef`` and content addresses (no I/O);
- ``verify``: the ``QFLOW_VERIFY`` policy and the checks a read runs;
- ``writer``: serialize into a hashing sink, stage, hand to a back end to publish atomically;
- ``local``: blobs as read-only files (publish = fsync + rename);
- ``remote``: blobs as objects through fsspec (S3, GCS, …), made again after a fork;
- ``store``: ``ArtifactStore``, the one class callers use, over either back end.
"""

from __future__ import annotations

from qflow.store.artifacts.local import UNPACKED_FOLDER, LocalBackend, remove_folder
from qflow.store.artifacts.ref import EMPTY_KEY, ArtifactRef, check_inline
from qflow.store.artifacts.remote import FsspecBackend
from qflow.store.artifacts.store import ArtifactStore, is_local_url
from qflow.store.artifacts.verify import (
    AUTO_HASH_MAX,
    VERIFY_ENV,
    VERIFY_POLICIES,
    verify_policy,
)

__all__ = [
    "AUTO_HASH_MAX",
    "EMPTY_KEY",
    "UNPACKED_FOLDER",
    "VERIFY_ENV",
    "VERIFY_POLICIES",
    "ArtifactRef",
    "ArtifactStore",
    "FsspecBackend",
    "LocalBackend",
    "check_inline",
    "is_local_url",
    "remove_folder",
    "verify_policy",
]
