"""Check a store: the database's integrity, and every referenced artifact present and whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qflow.errors import ArtifactIntegrityError, StoreError

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.contract import MetadataStore

UPLOAD_AGE = 3600.0
"""Incomplete uploads younger than this (seconds) may belong to a writer still running."""


@dataclass(frozen=True)
class Problem:
    """One bad object: what it is, which one, and what is wrong with it."""

    kind: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.detail}"


def check(
    metadata: MetadataStore, artifacts: ArtifactStore, *, upload_age: float = UPLOAD_AGE
) -> tuple[list[Problem], int]:
    """Problems found, and how many artifacts were checked.

    An artifact store that cannot be reached (a remote bucket, refused credentials) is one
    problem, named with its cause, not one per artifact. On S3, multipart uploads older than
    ``upload_age`` seconds that were never completed (writers killed mid-upload) are reported
    too: readers never see them, but the bucket keeps their parts. Needs the SQL store."""
    from qflow.store.metadata.store import sql_store

    database = sql_store(metadata, "qflow doctor")
    problems = [Problem("database", database.url, p) for p in database.integrity_problems()]
    checked = 0
    for ref in database.all_artifacts():
        checked += 1
        if ref.inline is not None:
            actual: str | None = hashlib.sha256(ref.inline).hexdigest()
        else:
            try:
                actual = artifacts.digest(ref.key)
            except ArtifactIntegrityError as exc:
                problems.append(Problem("artifact", ref.key, _kind_of(exc)))
                continue
            except StoreError as exc:
                problems.append(Problem("artifact store", artifacts.url, str(exc)))
                return problems, checked
        if actual is None:
            problems.append(Problem("artifact", ref.key, "blob is missing from the store"))
        elif actual != ref.key:
            problems.append(
                Problem("artifact", ref.key, f"content does not match its hash (got {actual})")
            )
    from qflow.store.artifacts import FsspecBackend

    if isinstance(artifacts.backend, FsspecBackend):
        try:
            keys = artifacts.backend.incomplete_uploads(upload_age)
        except StoreError as exc:
            keys = []
            problems.append(Problem("artifact store", artifacts.url, str(exc)))
        problems.extend(
            Problem(
                "upload",
                key,
                "an incomplete multipart upload (a writer stopped mid-upload); no reader sees "
                "it but the bucket keeps its parts. Abort it (aws s3api abort-multipart-upload) "
                "or add a lifecycle rule with AbortIncompleteMultipartUpload",
            )
            for key in keys
        )
    return problems, checked


def _kind_of(exc: ArtifactIntegrityError) -> str:
    what = exc.detail or "not a regular file"
    return f"blob path is {what}, not a regular file (re-run the step that wrote it to repair)"
