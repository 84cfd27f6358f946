"""How much a read trusts a blob: the ``QFLOW_VERIFY`` policy and the checks it runs."""

from __future__ import annotations

import hashlib
import os
from typing import IO

from qflow.errors import ArtifactIntegrityError

VERIFY_ENV = "QFLOW_VERIFY"
VERIFY_POLICIES = ("auto", "always", "size", "never")
AUTO_HASH_MAX = 16 << 20
"""Under the ``auto`` policy, blobs up to this size are hashed on every load; bigger ones
(memory-mapped arrays, large tables) are checked by size only."""
_REPAIR = (
    "Hint: run `qflow doctor`, then re-run the step that wrote it (publishing repairs the blob)."
)


def verify_policy() -> str:
    """How loads verify a blob, from ``QFLOW_VERIFY``.

    ``auto`` (default): regular file, size, and sha256 for blobs up to 16 MiB; ``always``: also
    sha256 of bigger blobs; ``size``: regular file and size; ``never``: regular file only.
    """
    from qflow.errors import ConfigError

    value = os.environ.get(VERIFY_ENV, "").strip().lower() or "auto"
    if value not in VERIFY_POLICIES:
        raise ConfigError(
            f"{VERIFY_ENV}={value!r} is not a verify policy. "
            f"Use one of: {', '.join(VERIFY_POLICIES)}."
        )
    return value


def should_hash(policy: str, size: int) -> bool:
    return policy == "always" or (policy == "auto" and size <= AUTO_HASH_MAX)


def check_size(key: str, expected: int | None, actual: int, policy: str) -> None:
    if expected is not None and policy != "never" and actual != expected:
        raise ArtifactIntegrityError(
            f"Artifact {key[:12]!r}: the stored blob has {actual} bytes, not the {expected} "
            f"its record says; it was changed or truncated, so it is not loaded. {_REPAIR}",
            key=key,
        )


def check_hash(key: str, digest: str) -> None:
    if digest != key:
        raise ArtifactIntegrityError(
            f"Artifact {key[:12]!r}: the stored blob hashes to {digest[:12]!r}, not to its "
            f"key; it was changed or corrupted, so it is not loaded. {_REPAIR}",
            key=key,
        )


def stream_digest(file: IO[bytes]) -> str:
    """sha256 of the rest of ``file``, which is then rewound."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.read(1 << 20), b""):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def not_regular(key: str, where: str, kind: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"Artifact {key[:12]!r}: the blob at {where!r} is {kind}, not a regular file "
        f"in the store. It is not read. {_REPAIR}",
        key=key,
        detail=kind,
    )
