"""``qflow gc``: delete artifacts that no run, model version or cache entry references.

Referenced are: step inputs and outputs (the cache entries are step outputs), artifacts logged
with runs, step sources, the git diffs and source snapshots in runs' meta, and model versions
(the registry's ``model_versions`` table, when it exists). Everything else in the artifact
store (blob files) and in the ``artifacts`` table (inline rows) is garbage. Blobs younger than
``min_age`` seconds are kept: a running step may have written them before its run recorded them.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from qflow.store.artifacts import ArtifactStore
    from qflow.store.metadata.store import MetadataStore

MIN_AGE = 3600.0


@dataclass
class Collected:
    """What ``collect`` deleted (or, in a dry run, would delete)."""

    blobs: int = 0
    blob_bytes: int = 0
    rows: int = 0
    row_bytes: int = 0
    kept: int = 0
    dry_run: bool = False
    keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "rows": self.rows,
            "row_bytes": self.row_bytes,
            "kept": self.kept,
            "freed_bytes": self.blob_bytes + self.row_bytes,
        }


def referenced_keys(metadata: MetadataStore) -> set[str]:
    """Every artifact key something still points at."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    keys: set[str] = set()
    with metadata.engine.connect() as conn:
        keys.update(conn.execute(sa.select(t.step_io.c.artifact_key).distinct()).scalars())
        keys.update(conn.execute(sa.select(t.run_artifacts.c.artifact_key).distinct()).scalars())
        keys.update(
            k for k in conn.execute(sa.select(t.step_runs.c.source_key).distinct()).scalars() if k
        )
        for meta in conn.execute(sa.select(t.runs.c.meta)).scalars():
            data = json.loads(meta or "{}")
            git = data.get("git") or {}
            keys.update(k for k in (git.get("diff"), data.get("snapshot")) if k)
        if "model_versions" in sa.inspect(conn).get_table_names():
            table = sa.Table("model_versions", sa.MetaData(), autoload_with=conn)
            if "artifact_key" in table.c:
                keys.update(conn.execute(sa.select(table.c.artifact_key).distinct()).scalars())
    return keys


def _local_blobs(root: Path) -> Iterator[tuple[str, Path, int, float]]:
    if not root.is_dir():
        return
    for first in root.iterdir():
        if not first.is_dir() or len(first.name) != 2:
            continue
        for second in first.iterdir():
            if not second.is_dir():
                continue
            for blob in second.iterdir():
                stat = blob.stat()
                yield blob.name, blob, stat.st_size, stat.st_mtime


def collect(
    metadata: MetadataStore,
    artifacts: ArtifactStore,
    *,
    dry_run: bool = False,
    min_age: float = MIN_AGE,
) -> Collected:
    """Delete unreferenced blobs and artifact rows; return counts and bytes freed."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    result = Collected(dry_run=dry_run)
    keep = referenced_keys(metadata)
    cutoff = time.time() - min_age
    url = artifacts.url
    if "://" not in url or url.startswith("file://"):
        root = Path(url.removeprefix("file://")).expanduser().absolute()
        for key, path, size, mtime in _local_blobs(root):
            if key in keep:
                continue
            if mtime > cutoff:
                result.kept += 1
                continue
            result.blobs += 1
            result.blob_bytes += size
            result.keys.append(key)
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                for folder in (path.parent, path.parent.parent):
                    with contextlib.suppress(OSError):
                        folder.rmdir()
    else:
        import fsspec

        fs, base = fsspec.core.url_to_fs(url)
        for path, info in fs.find(base, detail=True).items():
            key = path.rsplit("/", 1)[-1]
            if len(key) != 64 or key in keep:
                continue
            result.blobs += 1
            result.blob_bytes += int(info.get("size") or 0)
            result.keys.append(key)
            if not dry_run:
                fs.rm(path)
    with metadata.engine.begin() as conn:
        length = sa.func.coalesce(sa.func.length(t.artifacts.c.data), 0)
        query = sa.select(t.artifacts.c.key, length).where(t.artifacts.c.created_at < cutoff)
        rows = conn.execute(query).all()
        garbage = [key for key, _ in rows if key not in keep]
        result.rows = len(garbage)
        result.row_bytes = sum(int(n) for key, n in rows if key not in keep)
        if not dry_run:
            for start in range(0, len(garbage), 500):
                chunk = garbage[start : start + 500]
                conn.execute(t.artifacts.delete().where(t.artifacts.c.key.in_(chunk)))
    return result
