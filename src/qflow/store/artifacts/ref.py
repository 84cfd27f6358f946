"""What a blob is called: ``ArtifactRef`` and the content address of its bytes.

A key is the sha256 of a blob's bytes (64 lowercase hex digits); a blob lives at
``<key[:2]>/<key[2:4]>/<key>`` under the store's root. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from qflow.errors import ArtifactIntegrityError

EMPTY_KEY = hashlib.sha256(b"").hexdigest()
_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ArtifactRef:
    """What the metadata store keeps about a blob; enough to load it back."""

    key: str
    serializer: str
    size: int
    type_name: str
    pickled: bool
    inline: bytes | None = field(default=None, repr=False, compare=False)
    """The bytes themselves for small values kept in the metadata store instead of a file."""
    serializer_version: str = field(default="", compare=False)
    """The serializer's version when it wrote the bytes; a cached output written by an older
    version is not reused."""

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "serializer": self.serializer,
            "size": self.size,
            "type_name": self.type_name,
            "pickled": self.pickled,
            "serializer_version": self.serializer_version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArtifactRef:
        return cls(
            key=str(d["key"]),
            serializer=str(d["serializer"]),
            size=int(d["size"]),
            type_name=str(d["type_name"]),
            pickled=bool(d["pickled"]),
            serializer_version=str(d.get("serializer_version") or ""),
        )


def blob_parts(key: str) -> tuple[str, str, str]:
    """The folders and file name of a blob under a store's root.

    Raises:
        ArtifactIntegrityError: ``key`` is not a sha256 hex digest, so it names no blob (a key
            such as ``../../x`` would otherwise lead out of the store).
    """
    if not _KEY.fullmatch(key):
        raise ArtifactIntegrityError(
            f"Artifact key {key[:80]!r} is not a content address (64 lowercase hex digits of "
            "sha256). Nothing is read or written for it. Hint: keys come from the metadata "
            "store; a key typed by hand must be copied whole.",
            key=key,
            detail="not a content address",
        )
    return key[:2], key[2:4], key


def known_size(ref: ArtifactRef) -> int | None:
    """The ref's size, or None where a caller made a ref without one (size 0, non-empty key)."""
    return None if ref.size == 0 and ref.key != EMPTY_KEY else ref.size


def check_inline(key: str, size: int, data: bytes) -> None:
    """Refuse bytes that do not hash to ``key`` or whose length is not ``size``.

    Raises:
        ArtifactIntegrityError: naming the key, what it expected and what it got.
    """
    if len(data) != size:
        raise ArtifactIntegrityError(
            f"Artifact {key[:12]!r}: its bytes are {len(data)} long but the ref says {size}. "
            "The bytes are refused. Hint: send the bytes the key was computed from.",
            key=key,
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != key:
        raise ArtifactIntegrityError(
            f"Artifact {key[:12]!r}: its bytes hash to {digest[:12]!r}, not to the key. "
            "The bytes are refused. Hint: an artifact key is the sha256 of its bytes.",
            key=key,
        )


def checked_member(member: dict[str, Any]) -> ArtifactRef:
    """A collection member with inline bytes, checked against its key and size."""
    data = base64.b64decode(member["inline"])
    check_inline(str(member["key"]), int(member["size"]), data)
    return ArtifactRef(
        member["key"],
        member["serializer"],
        int(member["size"]),
        member["type_name"],
        bool(member["pickled"]),
        data,
        str(member.get("serializer_version") or ""),
    )
