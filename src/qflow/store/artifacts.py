"""Content-addressed, immutable artifact blobs on local disk or any fsspec URL.

A blob lives at ``<root>/<key[:2]>/<key[2:4]>/<key>`` where ``key`` is the sha256 of its bytes.
Local writes go to a temp file under ``<root>/.tmp``, are fsynced and then renamed into place,
so a reader never sees a partial blob; bytes are hashed in a thread while they are written.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import json
import mmap
import os
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from qflow.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    QFlowError,
    SerializationError,
)
from qflow.store import serializers as ser

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_THREADED_HASH_MIN = 1 << 20
# Object stores publish an object atomically, so these need no temp key + move.
_ATOMIC_PROTOCOLS = {"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"}
_HINT = "Hint: return data (arrays, DataFrames, JSON-able values) or a picklable object."


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


EMPTY_KEY = hashlib.sha256(b"").hexdigest()


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


VERIFY_ENV = "QFLOW_VERIFY"
VERIFY_POLICIES = ("auto", "always", "size", "never")
AUTO_HASH_MAX = 16 << 20
"""Under the ``auto`` policy, blobs up to this size are hashed on every load; bigger ones
(memory-mapped arrays, large tables) are checked by size only."""
_PATH_LOADERS = frozenset({"npy", "file", "dir"})
"""Serializers that load from the blob's path (memory map, path result, tar extraction)."""


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


def _should_hash(policy: str, size: int) -> bool:
    return policy == "always" or (policy == "auto" and size <= AUTO_HASH_MAX)


def _known_size(ref: ArtifactRef) -> int | None:
    """The ref's size, or None where a caller made a ref without one (size 0, non-empty key)."""
    return None if ref.size == 0 and ref.key != EMPTY_KEY else ref.size


def _check_size(key: str, expected: int | None, actual: int, policy: str) -> None:
    if expected is not None and policy != "never" and actual != expected:
        raise ArtifactIntegrityError(
            f"Artifact {key[:12]!r}: the stored blob has {actual} bytes, not the {expected} "
            "its record says; it was changed or truncated, so it is not loaded. "
            "Hint: run `qflow doctor`, then re-run the step that wrote it (publishing "
            "repairs the blob).",
            key=key,
        )


def _check_hash(key: str, digest: str) -> None:
    if digest != key:
        raise ArtifactIntegrityError(
            f"Artifact {key[:12]!r}: the stored blob hashes to {digest[:12]!r}, not to its "
            "key; it was changed or corrupted, so it is not loaded. "
            "Hint: run `qflow doctor`, then re-run the step that wrote it (publishing "
            "repairs the blob).",
            key=key,
        )


def _stream_digest(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.read(1 << 20), b""):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def _not_regular(key: str, path: Path, kind: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"Artifact {key[:12]!r}: the blob at {str(path)!r} is {kind}, not a regular file "
        "in the store. It is not read. Hint: run `qflow doctor`, then re-run the step that "
        "wrote it (publishing repairs the blob).",
        key=key,
        detail=kind,
    )


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


def _read_only(folder: Path) -> None:
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


def _checked_member(member: dict[str, Any]) -> ArtifactRef:
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


_DIRECT_CHUNK = 8 << 20
_DIRECT_ALIGN = 4096


class _DirectFile:
    """Writes a new file with O_DIRECT through an aligned 8 MiB buffer.

    Big blobs skip the page cache: on the VMs we measured, a buffered 100 MB write spends
    most of its time having the kernel allocate cache pages (0.07-0.3 s, bimodal), while a
    direct write is a steady 0.05-0.1 s. The last block is padded and the file truncated to
    its real size.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = mmap.mmap(-1, _DIRECT_CHUNK)
        self.used = 0
        self.size = 0
        self.finished = False

    @classmethod
    def open(cls, path: str) -> _DirectFile | None:
        """The file opened for direct writes, or None where the filesystem has no O_DIRECT."""
        flag = getattr(os, "O_DIRECT", 0)
        if not flag:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | flag)
        except OSError:
            return None
        return cls(fd)

    def write(self, data: bytes | memoryview, /) -> int:
        view = memoryview(data).cast("B")
        position = 0
        while position < view.nbytes:
            take = min(view.nbytes - position, _DIRECT_CHUNK - self.used)
            self.buffer[self.used : self.used + take] = view[position : position + take]
            self.used += take
            position += take
            if self.used == _DIRECT_CHUNK:
                self._write_block(_DIRECT_CHUNK)
        self.size += view.nbytes
        return view.nbytes

    def _write_block(self, length: int) -> None:
        """Write the buffer's first ``length`` bytes; a full disk raises ENOSPC here."""
        with memoryview(self.buffer) as whole:
            written = 0
            while written < length:
                with whole[written:length] as rest:
                    done = os.write(self.fd, rest)
                if done == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += done
        self.used = 0

    def flush(self) -> None:
        """Write the padded last block and cut the file to its real size (once)."""
        if self.finished:
            return
        self.finished = True
        if self.used:
            self._write_block(-(-self.used // _DIRECT_ALIGN) * _DIRECT_ALIGN)
            os.ftruncate(self.fd, self.size)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(BufferError):  # a view still held by a traceback
            self.buffer.close()

    def __enter__(self) -> _DirectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SpillFile:
    """Keeps the first ``limit`` bytes in memory and moves to a temp file beyond that, so small
    values never touch the disk and big ones are never copied in memory."""

    def __init__(self, limit: int, tmp_dir: Path) -> None:
        self.limit = limit
        self.tmp_dir = tmp_dir
        self.buffer = io.BytesIO()
        self.file: IO[bytes] | _DirectFile | None = None
        self.path = ""

    def write(self, data: memoryview, /) -> int:
        if self.file is None and self.buffer.tell() + data.nbytes > self.limit:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, self.path = tempfile.mkstemp(dir=self.tmp_dir, prefix="put-")
            direct = _DirectFile.open(self.path)
            if direct is not None:
                os.close(fd)
                self.file = direct
            else:
                self.file = os.fdopen(fd, "wb")
            self.file.write(self.buffer.getbuffer())
        if self.file is not None:
            return self.file.write(data)
        return self.buffer.write(data)


class _HashingWriter:
    """A write-only file that hashes what passes through; big chunks hash in a thread."""

    def __init__(self, file: IO[bytes] | _SpillFile) -> None:
        self._file = file
        self._hasher = hashlib.sha256()
        self._pending: threading.Thread | None = None
        self.size = 0
        self.closed = False

    def write(self, data: bytes | memoryview, /) -> int:
        view = memoryview(data).cast("B")
        self.wait()
        if view.nbytes >= _THREADED_HASH_MIN:
            self._pending = threading.Thread(target=self._hasher.update, args=(view,))
            self._pending.start()
        else:
            self._hasher.update(view)
        self._file.write(view)
        self.size += view.nbytes
        return view.nbytes

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.join()
            self._pending = None

    def hexdigest(self) -> str:
        self.wait()
        return self._hasher.hexdigest()

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to do: the store flushes and fsyncs the underlying file itself."""

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        """Writers such as pyarrow close their sink; the store owns the real file."""


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    """Puts values in and gets them back by ``ArtifactRef``; pickles as its URL alone."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._fs: Any = None
        self._real_root: str | None = None
        if _is_local(url):
            self._root = Path(url.removeprefix("file://")).expanduser().absolute()
            self._remote_root = ""
        else:
            import fsspec

            self._fs, self._remote_root = fsspec.core.url_to_fs(url)
            self._root = Path()

    def __getstate__(self) -> dict[str, object]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # -- writing ---------------------------------------------------------------------------

    def put(self, value: object, *, name: str = "output", inline_max: int = 0) -> ArtifactRef:
        """Serialize ``value`` with the first matching serializer and store it once.

        With ``inline_max``, a value whose bytes fit is not written at all: the ref carries the
        bytes (``ref.inline``) and the caller keeps them in the metadata store, which saves two
        fsyncs per small output.
        """
        serializer = ser.choose(value)
        try:
            return self._put(serializer, value, name, inline_max)
        except ser.Unsupported:
            return self._put(ser.PICKLE, value, name, inline_max)

    def put_path(self, path: str | os.PathLike[str]) -> ArtifactRef:
        """Store a file's bytes (serializer "file") or a folder as a tar (serializer "dir")."""
        target = Path(path)
        if not target.exists():
            raise SerializationError(
                f"Path {str(target)!r} cannot be stored: it does not exist. "
                "Hint: check the path, or return the data instead of a path."
            )
        return self.put(target, name=str(target))

    def put_collection(self, members: list[ArtifactRef]) -> ArtifactRef:
        """Store a list of already stored artifacts (a mapped step's results) as one artifact
        whose value is the list of their values. Small members travel with it inline."""
        listed = [
            {**m.to_dict(), "inline": base64.b64encode(m.inline).decode() if m.inline else None}
            for m in members
        ]
        data = json.dumps(listed, sort_keys=True, separators=(",", ":")).encode()
        ref = self._put(ser.by_name("bytes"), data, "collection", inline_max=0)
        return ArtifactRef(ref.key, "collection", ref.size, "builtins.list", False)

    def collection_members(self, ref: ArtifactRef) -> list[ArtifactRef]:
        """The artifacts a collection lists, in order."""
        raw = self.get(ArtifactRef(ref.key, "bytes", ref.size, "builtins.bytes", False))
        return [
            ArtifactRef.from_dict(m) if m["inline"] is None else _checked_member(m)
            for m in json.loads(raw)  # type: ignore[arg-type]
        ]

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store raw bytes (serializer "bytes")."""
        return self._put(ser.by_name("bytes"), data, "bytes")

    def _put(
        self, serializer: ser.Serializer, value: object, name: str, inline_max: int = 0
    ) -> ArtifactRef:
        def dump(sink: ser.Sink) -> None:
            serializer.dump(value, sink)

        inline: bytes | None = None
        try:
            if inline_max > 0 and self._fs is None:
                key, size, inline = self._write_small(dump, inline_max)
            else:
                key, size = self._write(dump)
        except (QFlowError, ser.Unsupported):
            raise
        except Exception as exc:
            reason = str(exc).rstrip(".") or type(exc).__name__
            raise SerializationError(
                f"Output {name!r} of type {type(value).__name__!r} cannot be stored: "
                f"{reason}. {_HINT}"
            ) from exc
        kind = "pathlib.Path" if serializer.name in ("file", "dir") else ser.type_name(value)
        return ArtifactRef(
            key, serializer.name, size, kind, serializer.pickled, inline, serializer.version
        )

    def _write_small(
        self, dump: Callable[[ser.Sink], None], inline_max: int
    ) -> tuple[str, int, bytes | None]:
        """Serialize into memory; past ``inline_max`` bytes spill into a temp file as usual."""
        spill = _SpillFile(inline_max, self._root / ".tmp")
        sink = _HashingWriter(spill)
        try:
            dump(sink)
            key = sink.hexdigest()
            if spill.file is None:
                return key, sink.size, spill.buffer.getvalue()
            with spill.file as file:
                self._publish(file, spill.path, key, sink.size)
            return key, sink.size, None
        except BaseException:
            sink.wait()
            if spill.file is not None:
                spill.file.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(spill.path)
            raise

    def _publish(self, file: IO[bytes] | _DirectFile, tmp: str, key: str, size: int) -> None:
        """fsync the temp file and rename it into place, unless the blob exists already.

        An existing blob is touched instead: ``qflow gc`` keeps blobs younger than its
        ``--min-age`` and re-checks a candidate's mtime after moving it aside, so a blob this
        run reuses is never collected under it. If gc took it away meanwhile, it is written.
        A blob that is not intact (a symlink, a folder, another size, other bytes under the
        ``QFLOW_VERIFY`` policy) is replaced: publishing repairs the store."""
        dest = self._blob_path(key)
        if self._intact(key, size):
            with contextlib.suppress(FileNotFoundError):
                os.utime(dest, follow_symlinks=False)
                os.unlink(tmp)
                return
        remove_folder(dest)
        file.flush()
        os.fsync(file.fileno())
        os.chmod(tmp, 0o444)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)

    def _write(self, dump: Callable[[ser.Sink], None]) -> tuple[str, int]:
        if self._fs is not None:
            return self._write_remote(dump)
        tmp_dir = self._root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        sink: _HashingWriter | None = None
        try:
            with os.fdopen(fd, "wb") as file:
                sink = _HashingWriter(file)
                dump(sink)
                key = sink.hexdigest()
                self._publish(file, tmp, key, sink.size)
            return key, sink.size
        except BaseException:
            if sink is not None:
                sink.wait()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _write_remote(self, dump: Callable[[ser.Sink], None]) -> tuple[str, int]:
        fd, tmp = tempfile.mkstemp(prefix="qflow-put-")
        try:
            with os.fdopen(fd, "wb") as file:
                sink = _HashingWriter(file)
                dump(sink)
                key = sink.hexdigest()
            dest = self._remote_path(key)
            if not self._fs.exists(dest) or self._fs.size(dest) != sink.size:
                protocols = self._fs.protocol
                protocols = {protocols} if isinstance(protocols, str) else set(protocols)
                if protocols & _ATOMIC_PROTOCOLS:
                    self._fs.put_file(tmp, dest)
                else:
                    staging = f"{dest}.tmp-{os.getpid()}-{threading.get_ident()}"
                    self._fs.put_file(tmp, staging)
                    self._fs.mv(staging, dest)
            return key, sink.size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- reading ---------------------------------------------------------------------------

    def get(self, ref: ArtifactRef) -> object:
        """Load an artifact; local numpy arrays come back memory-mapped copy-on-write
        (zero-copy reads; a reader's writes stay private to it).

        What is read is verified first (``QFLOW_VERIFY``, see ``verify_policy``): a local blob
        must be a regular file inside the store (never a symlink or a folder) of the size the
        ref records, and its bytes must hash to its key when the policy says so.

        Raises:
            ArtifactNotFoundError: no blob for the key.
            ArtifactIntegrityError: the blob is not what the ref describes.
        """
        if ref.serializer == "collection":
            return [self.get(member) for member in self.collection_members(ref)]
        serializer = ser.by_name(ref.serializer)
        if ref.inline is not None:
            return serializer.load(io.BytesIO(ref.inline))
        policy = verify_policy()
        if self._fs is not None:
            return self._get_remote(ref, serializer, policy)
        path = self._blob_path(ref.key)
        with self._open_blob(ref.key) as (file, info):
            _check_size(ref.key, _known_size(ref), info.st_size, policy)
            if not _should_hash(policy, info.st_size):
                data = None
            elif ref.serializer in _PATH_LOADERS or info.st_size > AUTO_HASH_MAX:
                _check_hash(ref.key, _stream_digest(file))
                data = None
            else:
                data = file.read()
                _check_hash(ref.key, hashlib.sha256(data).hexdigest())
        if ref.serializer == "dir":
            return self._unpacked(ref.key, path)
        if data is not None:
            return serializer.load(io.BytesIO(data))
        return serializer.load(path)

    def _get_remote(self, ref: ArtifactRef, serializer: ser.Serializer, policy: str) -> object:
        remote = self._remote_path(ref.key)
        if not self._fs.exists(remote):
            raise self._not_found(ref.key)
        if policy != "never":
            _check_size(ref.key, _known_size(ref), int(self._fs.size(remote)), policy)
        if _should_hash(policy, ref.size):
            data = bytes(self._fs.cat_file(remote))
            _check_hash(ref.key, hashlib.sha256(data).hexdigest())
            source: ser.Source = io.BytesIO(data)
            if ref.serializer == "dir":
                return self._unpacked(ref.key, source)
            return serializer.load(source)
        with self._fs.open(remote, "rb") as file:
            if ref.serializer == "dir":
                return self._unpacked(ref.key, file)
            return serializer.load(file)

    def _unpacked(self, key: str, source: ser.Source) -> Path:
        """The folder a "dir" blob holds, extracted once per store and key and then reused
        (read-only: an input folder is immutable like every artifact), so loads leave no temp
        folders behind. Local stores keep it in ``<root>/.unpacked/<key>``, remote ones in the
        system temp folder."""
        if self._fs is None:
            base = self._root / UNPACKED_FOLDER
        else:
            base = Path(tempfile.gettempdir()) / f"qflow-unpacked-{os.getuid()}"
        target = base / key
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(target)
            if stat.S_ISDIR(info.st_mode):
                return target
            os.unlink(target)  # not a folder (a symlink planted there): extract again
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=base, prefix=".unpack-"))
        try:
            ser.unpack_dir(source, staging, key)
            _read_only(staging)
            try:
                os.rename(staging, target)
            except OSError:  # another process extracted it first
                if not target.is_dir() or target.is_symlink():
                    raise
                remove_folder(staging)
        except BaseException:
            remove_folder(staging)
            raise
        return target

    def read_bytes(self, key: str, *, size: int | None = None, limit: int | None = None) -> bytes:
        """The stored bytes of a blob, as written: a regular file inside the store, of ``size``
        bytes when given; read whole, they must hash to ``key`` (any policy but ``never``)."""
        policy = verify_policy()
        if self._fs is None:
            with self._open_blob(key) as (file, info):
                if size is not None:
                    _check_size(key, size, info.st_size, policy)
                data = file.read() if limit is None else file.read(limit)
        else:
            remote = self._remote_path(key)
            if not self._fs.exists(remote):
                raise self._not_found(key)
            data = bytes(self._fs.cat_file(remote))
            if size is not None:
                _check_size(key, size, len(data), policy)
            data = data if limit is None else data[:limit]
        if limit is None and policy != "never":
            _check_hash(key, hashlib.sha256(data).hexdigest())
        return data

    def digest(self, key: str) -> str | None:
        """sha256 of the blob's bytes as stored, or None when there is no blob.

        Raises:
            ArtifactIntegrityError: the blob path is a symlink or a folder.
        """
        if self._fs is None:
            try:
                with self._open_blob(key) as (file, _):
                    return _stream_digest(file)
            except ArtifactNotFoundError:
                return None
        remote = self._remote_path(key)
        if not self._fs.exists(remote):
            return None
        digest = hashlib.sha256()
        with self._fs.open(remote, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def exists(self, key: str) -> bool:
        """Whether the store holds the blob as a regular file (a symlink or a folder at its
        path does not count: a step whose output it is runs again and repairs it)."""
        if self._fs is None:
            try:
                return self._lstat(key) is not None
            except ArtifactIntegrityError:
                return False
        return bool(self._fs.exists(self._remote_path(key)))

    def local_path(self, key: str) -> Path | None:
        """Where the blob is on local disk; None for remote stores and missing blobs.

        Raises:
            ArtifactIntegrityError: the blob path is a symlink, a folder, or outside the store.
        """
        if self._fs is not None:
            return None
        if self._lstat(key) is None:
            return None
        path = self._blob_path(key)
        self._check_inside(key, path)
        return path

    def intact(self, ref: ArtifactRef) -> bool:
        """Whether ``ref`` can be loaded as recorded: inline, or a regular blob of its size
        (and bytes, under the ``QFLOW_VERIFY`` policy). A cache hit should ask this rather
        than ``exists``, so a damaged blob is rewritten by running the step again."""
        if ref.inline is not None:
            return True
        if self._fs is not None:
            remote = self._remote_path(ref.key)
            return bool(self._fs.exists(remote)) and int(self._fs.size(remote)) == ref.size
        return self._intact(ref.key, ref.size)

    def _intact(self, key: str, size: int) -> bool:
        """The blob is a regular file of ``size`` bytes (hashing to ``key`` under the policy)."""
        try:
            info = self._lstat(key)
        except ArtifactIntegrityError:
            return False
        if info is None or info.st_size != size:
            return False
        policy = verify_policy()
        if not _should_hash(policy, size):
            return True
        try:
            with self._open_blob(key) as (file, _):
                return _stream_digest(file) == key
        except (ArtifactIntegrityError, ArtifactNotFoundError):
            return False

    @contextlib.contextmanager
    def _open_blob(self, key: str) -> Iterator[tuple[IO[bytes], os.stat_result]]:
        """The blob opened without following a symlink, checked to be a regular file inside
        the store, with its stat."""
        path = self._blob_path(key)
        if self._lstat(key) is None:
            raise self._not_found(key)
        self._check_inside(key, path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise self._not_found(key) from None
        except OSError as exc:  # ELOOP: swapped for a symlink since the check
            raise _not_regular(key, path, "a symlink") from exc
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(key, path, "not a regular file")
            yield file, info

    def _check_inside(self, key: str, path: Path) -> None:
        """Refuse a blob whose folders lead out of the store (a symlinked ``ab/`` folder)."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self._root)
        expected = os.path.join(self._real_root, key[:2], key[2:4])
        if os.path.realpath(path.parent) != expected:
            raise _not_regular(key, path, "reached through a symlinked folder, outside the store")

    def check_blob_size(self, ref: ArtifactRef) -> None:
        """Refuse a ref whose blob this store holds with another size (or as a symlink or a
        folder); a blob this store does not hold is not checked (another store may hold it)."""
        if self._fs is not None:
            return
        info = self._lstat(ref.key)
        if info is not None and info.st_size != ref.size:
            raise ArtifactIntegrityError(
                f"Artifact {ref.key[:12]!r}: the ref says {ref.size} bytes but the stored blob "
                f"has {info.st_size}. The ref is refused. "
                "Hint: an artifact's size is the length of the bytes its key was computed from.",
                key=ref.key,
            )

    def _lstat(self, key: str) -> os.stat_result | None:
        """The blob's own stat (not a symlink's target), or None when there is none.

        Raises:
            ArtifactIntegrityError: the blob path is a symlink, a folder or anything but a
                regular file.
        """
        path = self._blob_path(key)
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
            raise _not_regular(key, path, kind)
        return info

    def _blob_path(self, key: str) -> Path:
        return self._root / key[:2] / key[2:4] / key

    def _remote_path(self, key: str) -> str:
        return f"{self._remote_root.rstrip('/')}/{key[:2]}/{key[2:4]}/{key}"

    def _not_found(self, key: str) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(
            f"Artifact {key[:12]!r} is not in the artifact store at {self.url}. "
            "Hint: check QFLOW_ARTIFACTS points at the store the run used."
        )
