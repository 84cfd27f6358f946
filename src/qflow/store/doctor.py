"""Check a store: the database's integrity, and every referenced artifact present and whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.metadata.store import MetadataStore


@dataclass(frozen=True)
class Problem:
    """One bad object: what it is, which one, and what is wrong with it."""

    kind: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.detail}"


def _digest(artifacts: ArtifactStore, key: str) -> str | None:
    """sha256 of the blob's bytes, or None when it is missing."""
    path = artifacts.local_path(key)
    if path is not None:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    if not artifacts.exists(key):
        return None
    return hashlib.sha256(artifacts.read_bytes(key)).hexdigest()


def check(metadata: MetadataStore, artifacts: ArtifactStore) -> tuple[list[Problem], int]:
    """Problems found, and how many artifacts were checked."""
    problems = [Problem("database", metadata.url, p) for p in metadata.integrity_problems()]
    checked = 0
    for ref in metadata.all_artifacts():
        checked += 1
        if ref.inline is not None:
            actual: str | None = hashlib.sha256(ref.inline).hexdigest()
        else:
            actual = _digest(artifacts, ref.key)
        if actual is None:
            problems.append(Problem("artifact", ref.key, "blob is missing from the store"))
        elif actual != ref.key:
            problems.append(
                Problem("artifact", ref.key, f"content does not match its hash (got {actual})")
            )
    return problems, checked
