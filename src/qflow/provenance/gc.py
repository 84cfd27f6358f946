"""``qflow gc``: remove deleted runs, then the artifacts nothing live uses, then old temp files.

1. **Deleted runs** (``qflow runs delete``) lose their rows: steps, lineage, params, metrics,
   tags, logged artifacts. A deleted run a model version was registered from is kept.
2. **Referenced** are the artifacts of every run that is not deleted (archived ones count):
   step inputs and outputs (the cache entries are step outputs), artifacts logged with runs,
   step sources, the git diffs and source snapshots in runs' meta, and model versions.
   Everything else in the artifact store (blob files) and in the ``artifacts`` table (inline
   rows) is garbage once it is older than ``min_age`` seconds.
3. **Temp files** left by killed writes (``<store>/.tmp/put-*``) and folder loads
   (``qflow-dir-*``, ``qflow-put-*`` in the system temp folder) older than ``tmp_age``.

A run that reuses a blob touches it (``LocalBackend.publish``), and gc never unlinks a
blob in place: it moves each candidate into ``<store>/.trash/`` first, then re-reads the
references and re-checks the moved file's mtime, and puts back any blob that a run touched or
recorded in between. A run that tries to touch a blob already moved finds it missing and
writes it again. So a run that reuses a blob while gc walks the store never loses it.
Inline rows are deleted by one statement that re-checks the references itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.store.artifacts import UNPACKED_FOLDER, remove_folder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

    from qflow.store import contract
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.metadata.store import MetadataStore

MIN_AGE = 3600.0
TMP_AGE = 86400.0
PAUSE_ENV = "QFLOW_GC_PAUSE"
"""Seconds gc sleeps between choosing candidates and moving them (tests inject races)."""
TRASH = ".trash"


@dataclass
class Collected:
    """What ``collect`` deleted (or, in a dry run, would delete)."""

    blobs: int = 0
    blob_bytes: int = 0
    rows: int = 0
    row_bytes: int = 0
    kept: int = 0
    runs: int = 0
    runs_kept: int = 0
    rescued: int = 0
    tmp_files: int = 0
    tmp_bytes: int = 0
    dry_run: bool = False
    keys: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "runs": self.runs,
            "run_ids": self.run_ids,
            "runs_kept": self.runs_kept,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "rows": self.rows,
            "row_bytes": self.row_bytes,
            "kept": self.kept,
            "rescued": self.rescued,
            "tmp_files": self.tmp_files,
            "tmp_bytes": self.tmp_bytes,
            "freed_bytes": self.blob_bytes + self.row_bytes + self.tmp_bytes,
        }


def _live_runs() -> Any:
    """Runs whose artifacts count: not deleted, or deleted but a model version's source."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    registered = sa.select(t.model_versions.c.run_id).where(
        t.model_versions.c.run_id == t.runs.c.id
    )
    return sa.select(t.runs.c.id).where(
        sa.or_(t.runs.c.deleted_at.is_(None), sa.exists(registered))
    )


def _has_registry(conn: Connection) -> bool:
    import sqlalchemy as sa

    return "model_versions" in sa.inspect(conn).get_table_names()


def referenced_keys(metadata: MetadataStore) -> set[str]:
    """Every artifact key something live still points at (deleted runs' references don't
    count: gc removes those runs)."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    keys: set[str] = set()
    with metadata.engine.connect() as conn:
        live = _live_runs()
        live_steps = sa.select(t.step_runs.c.id).where(t.step_runs.c.run_id.in_(live))
        keys.update(
            conn.execute(
                sa.select(t.step_io.c.artifact_key)
                .where(t.step_io.c.step_run_id.in_(live_steps))
                .distinct()
            ).scalars()
        )
        keys.update(
            conn.execute(
                sa.select(t.run_artifacts.c.artifact_key)
                .where(t.run_artifacts.c.run_id.in_(live))
                .distinct()
            ).scalars()
        )
        sources = sa.select(t.step_runs.c.source_key).where(t.step_runs.c.run_id.in_(live))
        keys.update(k for k in conn.execute(sources.distinct()).scalars() if k)
        for meta in conn.execute(sa.select(t.runs.c.meta).where(t.runs.c.id.in_(live))).scalars():
            data = json.loads(meta or "{}")
            git = data.get("git") or {}
            keys.update(k for k in (git.get("diff"), data.get("snapshot")) if k)
        if _has_registry(conn):
            keys.update(
                conn.execute(sa.select(t.model_versions.c.artifact_key).distinct()).scalars()
            )
    return keys


def purge_deleted_runs(metadata: MetadataStore, *, dry_run: bool = False) -> tuple[list[str], int]:
    """Remove deleted runs' rows (their children go by cascade); returns the ids removed and
    how many deleted runs were kept because a model version was registered from them."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    with metadata.engine.begin() as conn:
        deleted = list(
            conn.execute(
                sa.select(t.runs.c.id).where(t.runs.c.deleted_at.is_not(None)).order_by(t.runs.c.id)
            ).scalars()
        )
        registered: set[str] = set()
        if deleted and _has_registry(conn):
            registered = set(
                conn.execute(
                    sa.select(t.model_versions.c.run_id).where(
                        t.model_versions.c.run_id.in_(deleted)
                    )
                ).scalars()
            )
        gone = [r for r in deleted if r not in registered]
        if not dry_run:
            for start in range(0, len(gone), 500):
                chunk = gone[start : start + 500]
                # Deleted again here: a run restored since the select stays.
                conn.execute(
                    t.runs.delete().where(t.runs.c.id.in_(chunk), t.runs.c.deleted_at.is_not(None))
                )
    return gone, len(registered)


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
                with contextlib.suppress(FileNotFoundError):
                    stat = blob.lstat()
                    yield blob.name, blob, stat.st_size, stat.st_mtime


def _restore_trash(root: Path) -> None:
    """Put back blobs a gc moved aside and never decided on (it was killed): the walk that
    follows judges them again."""
    for folder in (root / TRASH).glob("*"):
        for aside in folder.glob("*"):
            if len(aside.name) == 64:
                path = root / aside.name[:2] / aside.name[2:4] / aside.name
                path.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.replace(aside, path)
        with contextlib.suppress(OSError):
            folder.rmdir()


def _pause(stage: str) -> None:
    """Between gc's stages (``listed``: candidates chosen; ``moved``: candidates moved aside,
    references not yet re-read). ``QFLOW_GC_PAUSE=SECONDS`` sleeps after listing, so tests
    can run work against gc's window; tests also replace this function to act in it."""
    seconds = os.environ.get(PAUSE_ENV)
    if seconds and stage == "listed":
        time.sleep(float(seconds))


def _sweep_local(
    metadata: MetadataStore, root: Path, result: Collected, keep: set[str], cutoff: float
) -> None:
    """Move old unreferenced blobs aside, re-check, then delete them or put them back."""
    if not result.dry_run:
        _restore_trash(root)
    candidates: list[tuple[str, Path]] = []
    for key, path, _size, mtime in _local_blobs(root):
        if key in keep:
            continue
        if mtime > cutoff:
            result.kept += 1
            continue
        candidates.append((key, path))
    if result.dry_run:
        for key, path in candidates:
            with contextlib.suppress(FileNotFoundError):
                result.blob_bytes += path.lstat().st_size
                result.blobs += 1
                result.keys.append(key)
        return
    _pause("listed")
    trash = root / TRASH / uuid.uuid4().hex
    trash.mkdir(parents=True, exist_ok=True)
    moved: list[tuple[str, Path, Path]] = []
    for key, path in candidates:
        aside = trash / key
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, aside)
            moved.append((key, path, aside))
    _pause("moved")
    again = referenced_keys(metadata)  # what runs recorded while we walked
    for key, path, aside in moved:
        try:
            stat = aside.lstat()
        except FileNotFoundError:  # another gc put it back
            continue
        if key in again or stat.st_mtime > cutoff:  # touched by a run reusing it: put back
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(aside, path)
            result.rescued += 1
            continue
        os.unlink(aside)
        remove_folder(root / UNPACKED_FOLDER / key)  # a folder blob's extracted copy goes with it
        result.blobs += 1
        result.blob_bytes += stat.st_size
        result.keys.append(key)
        for folder in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()
    with contextlib.suppress(OSError):
        trash.rmdir()
        trash.parent.rmdir()


def _sweep_remote(metadata: MetadataStore, url: str, result: Collected, keep: set[str]) -> None:
    import fsspec

    fs, base = fsspec.core.url_to_fs(url)
    candidates = [
        (path, int(info.get("size") or 0))
        for path, info in fs.find(base, detail=True).items()
        if len(key := path.rsplit("/", 1)[-1]) == 64 and key not in keep
    ]
    if not result.dry_run and candidates:
        _pause("listed")
        keep = referenced_keys(metadata)
    for path, size in candidates:
        key = path.rsplit("/", 1)[-1]
        if key in keep:
            result.rescued += 1
            continue
        result.blobs += 1
        result.blob_bytes += size
        result.keys.append(key)
        if not result.dry_run:
            fs.rm(path)


def _delete_rows(metadata: MetadataStore, result: Collected, keep: set[str], cutoff: float) -> None:
    """Delete old unreferenced inline rows; the statement re-checks step and run references
    itself, so a row a run recorded meanwhile stays."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    key = t.artifacts.c.key
    with metadata.engine.begin() as conn:
        length = sa.func.coalesce(sa.func.length(t.artifacts.c.data), 0)
        rows = conn.execute(sa.select(key, length).where(t.artifacts.c.created_at < cutoff)).all()
        garbage = [k for k, _ in rows if k not in keep]
        sizes = dict(rows)
        if result.dry_run:
            result.rows = len(garbage)
            result.row_bytes = sum(int(sizes[k]) for k in garbage)
            return
        unused = [
            ~sa.exists().where(t.step_io.c.artifact_key == key),
            ~sa.exists().where(t.run_artifacts.c.artifact_key == key),
            ~sa.exists().where(t.step_runs.c.source_key == key),
        ]
        if _has_registry(conn):
            unused.append(~sa.exists().where(t.model_versions.c.artifact_key == key))
        for start in range(0, len(garbage), 500):
            chunk = garbage[start : start + 500]
            conn.execute(t.artifacts.delete().where(key.in_(chunk), *unused))
            stayed = set(conn.execute(sa.select(key).where(key.in_(chunk))).scalars())
            gone = [k for k in chunk if k not in stayed]
            result.rows += len(gone)
            result.row_bytes += sum(int(sizes[k]) for k in gone)


def _temp_files(root: Path | None) -> Iterator[Path]:
    """Temp files and folders QFlow writes: puts under the store, folder loads elsewhere."""
    if root is not None and (root / ".tmp").is_dir():
        yield from (root / ".tmp").glob("put-*")
    system = Path(tempfile.gettempdir())
    for pattern in ("qflow-dir-*", "qflow-put-*"):
        yield from system.glob(pattern)


def _size_of(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())
    return path.lstat().st_size


def clean_temp_files(root: Path | None, result: Collected, tmp_age: float) -> None:
    """Remove this user's QFlow temp files older than ``tmp_age`` seconds."""
    cutoff = time.time() - tmp_age
    uid = os.getuid()
    for path in _temp_files(root):
        try:
            stat = path.lstat()
            if stat.st_uid != uid or stat.st_mtime > cutoff:
                continue
            size = _size_of(path)
            if not result.dry_run:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        except FileNotFoundError:
            continue
        result.tmp_files += 1
        result.tmp_bytes += size


def collect(
    store: contract.MetadataStore,
    artifacts: ArtifactStore,
    *,
    dry_run: bool = False,
    min_age: float = MIN_AGE,
    tmp_age: float = TMP_AGE,
) -> Collected:
    """Remove deleted runs, unreferenced blobs and artifact rows, and old temp files; return
    counts and bytes freed (``dry_run``: what would be). Needs the SQL store."""
    from qflow.store.metadata.store import sql_store

    metadata = sql_store(store, "qflow gc")
    result = Collected(dry_run=dry_run)
    cutoff = time.time() - min_age
    result.run_ids, result.runs_kept = purge_deleted_runs(metadata, dry_run=dry_run)
    result.runs = len(result.run_ids)
    keep = referenced_keys(metadata)
    url = artifacts.url
    root: Path | None = None
    if "://" not in url or url.startswith("file://"):
        root = Path(url.removeprefix("file://")).expanduser().absolute()
        _sweep_local(metadata, root, result, keep, cutoff)
    else:
        _sweep_remote(metadata, url, result, keep)
    _delete_rows(metadata, result, keep, cutoff)
    clean_temp_files(root, result, tmp_age)
    return result
