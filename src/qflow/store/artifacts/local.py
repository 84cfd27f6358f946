"""The local back end: blobs as read-only regular files under a folder.

Publishing is fsync + rename of a temp file staged in ``<root>/.tmp`` (same file system), so
a reader never sees a partial blob. Reads open a blob without following symlinks and refuse
anything that is not a regular file inside the store.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING

from qflow.errors import ArtifactIntegrityError, ArtifactNotFoundError
from qflow.store.artifacts.ref import blob_parts
from qflow.store.artifacts.verify import not_regular as _not_regular
from qflow.store.artifacts.verify import should_hash, stream_digest, verify_policy
from qflow.store.artifacts.writer import BlobWriteError, DirectFile

if TYPE_CHECKING:
    from collections.abc import Iterator

UNPACKED_FOLDER = ".unpacked"
"""Where a local store keeps the extracted copy of each folder blob, by key."""


def remove_folder(path: Path) -> None:
    """Remove a folder (or anything but a file or symlink) squatting on a blob's path;
    ``os.replace`` replaces files and symlinks itself."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        import shutil

        os.chmod(path, 0o700)
        for parent, dirs, _ in os.walk(path):  # read-only folders (an unpacked one) first
            for name in dirs:
                child = os.path.join(parent, name)
                if not os.path.islink(child):
                    os.chmod(child, 0o700)
        shutil.rmtree(path)


def read_only(folder: Path) -> None:
    """Take write permission off everything under ``folder`` and itself (links untouched)."""
    for parent, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o555)
        for name in dirs:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o555)
    os.chmod(folder, 0o555)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend:
    """Blobs at ``<root>/<key[:2]>/<key[2:4]>/<key>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root: str | None = None

    def where(self, key: str) -> str:
        return str(self.blob_path(key))

    def blob_path(self, key: str) -> Path:
        first, second, name = blob_parts(key)
        return self.root / first / second / name

    def staging(self) -> tuple[Path, str]:
        return self.root / ".tmp", "put-"

    def unpack_base(self) -> Path:
        return self.root / UNPACKED_FOLDER

    # -- writing ---------------------------------------------------------------------------

    def publish(self, file: IO[bytes] | DirectFile, path: str, key: str, size: int) -> None:
        """fsync the temp file and rename it into place, unless the blob exists already.

        An existing blob is touched instead: ``qflow gc`` keeps blobs younger than its
        ``--min-age`` and re-checks a candidate's mtime after moving it aside, so a blob this
        run reuses is never collected under it. If gc took it away meanwhile, it is written.
        A blob that is not intact (a symlink, a folder, another size, other bytes under the
        ``QFLOW_VERIFY`` policy) is replaced: publishing repairs the store."""
        dest = self.blob_path(key)
        if self.intact(key, size):
            with contextlib.suppress(FileNotFoundError):
                os.utime(dest, follow_symlinks=False)
                return
        try:
            remove_folder(dest)
            file.flush()
            os.fsync(file.fileno())
            os.chmod(path, 0o444)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            _fsync_dir(dest.parent)
        except OSError as exc:
            raise BlobWriteError(f"{str(dest)!r}", exc) from exc

    # -- reading ---------------------------------------------------------------------------

    def size(self, key: str) -> int | None:
        """The blob's size, or None when there is none.

        Raises:
            ArtifactIntegrityError: the blob path is a symlink, a folder or anything but a
                regular file.
        """
        info = self.lstat(key)
        return None if info is None else info.st_size

    def lstat(self, key: str) -> os.stat_result | None:
        """The blob's own stat (not a symlink's target), or None when there is none.

        Raises:
            ArtifactIntegrityError: as ``size``.
        """
        path = self.blob_path(key)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a symlink"
                if stat.S_ISLNK(info.st_mode)
                else "a folder"
                if stat.S_ISDIR(info.st_mode)
                else "not a regular file"
            )
            raise _not_regular(key, str(path), kind)
        return info

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[tuple[IO[bytes], int]]:
        """The blob opened without following a symlink, checked to be a regular file inside
        the store, with its size.

        Raises:
            ArtifactNotFoundError: no blob for the key.
            ArtifactIntegrityError: not a regular file inside the store.
        """
        path = self.blob_path(key)
        if self.lstat(key) is None:
            raise self.not_found(key)
        self.check_inside(key, path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise self.not_found(key) from None
        except OSError as exc:  # ELOOP: swapped for a symlink since the check
            raise _not_regular(key, str(path), "a symlink") from exc
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(key, str(path), "not a regular file")
            yield file, info.st_size

    def local_path(self, key: str) -> Path | None:
        """Where the blob is, or None when there is none (checked as ``open`` does)."""
        if self.lstat(key) is None:
            return None
        path = self.blob_path(key)
        self.check_inside(key, path)
        return path

    def check_inside(self, key: str, path: Path) -> None:
        """Refuse a blob whose folders lead out of the store (a symlinked ``ab/`` folder)."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        expected = os.path.join(self._real_root, key[:2], key[2:4])
        if os.path.realpath(path.parent) != expected:
            raise _not_regular(
                key, str(path), "reached through a symlinked folder, outside the store"
            )

    def intact(self, key: str, size: int) -> bool:
        """The blob is a regular file of ``size`` bytes (hashing to ``key`` under the policy)."""
        try:
            info = self.lstat(key)
        except ArtifactIntegrityError:
            return False
        if info is None or info.st_size != size:
            return False
        if not should_hash(verify_policy(), size):
            return True
        try:
            with self.open(key) as (file, _):
                return stream_digest(file) == key
        except (ArtifactIntegrityError, ArtifactNotFoundError):
            return False

    def not_found(self, key: str, cause: str = "") -> ArtifactNotFoundError:
        return ArtifactNotFoundError(
            f"Artifact {key[:12]!r} is not in the artifact store at {self.root}. "
            "Hint: check QFLOW_ARTIFACTS points at the store the run used."
        )
