"""``ArtifactStore``: values in, refs out, and back; one class over both back ends.

It picks a serializer, has the writer stage and publish the bytes through the back end
(``LocalBackend`` for a folder, ``FsspecBackend`` for any other URL), and on reading checks
what the back end returns against the ref under the ``QFLOW_VERIFY`` policy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from qflow.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    QFlowError,
    SerializationError,
    StoreError,
)
from qflow.store import serializers as ser
from qflow.store.artifacts import writer
from qflow.store.artifacts.local import LocalBackend, read_only, remove_folder
from qflow.store.artifacts.ref import ArtifactRef, checked_member, known_size
from qflow.store.artifacts.remote import FsspecBackend
from qflow.store.artifacts.verify import (
    AUTO_HASH_MAX,
    check_hash,
    check_size,
    should_hash,
    stream_digest,
    verify_policy,
)

_HINT = "Hint: return data (arrays, DataFrames, JSON-able values) or a picklable object."
_PATH_LOADERS = frozenset({"npy", "file", "dir"})
"""Serializers that load from the blob's path (memory map, path result, tar extraction)."""


def is_local_url(url: str) -> bool:
    """Whether an artifact store URL is a local folder (a path or ``file://``)."""
    return "://" not in url or url.startswith("file://")


class ArtifactStore:
    """Puts values in and gets them back by ``ArtifactRef``; pickles as its URL (and options).

    ``serializers`` (a ``SerializerRegistry`` or the formats to build one from, pickle last)
    are the formats to choose from; without them the process's registry is used.
    ``storage_options`` go to fsspec for a remote URL (``endpoint_url``, ``key``…; usually the
    environment's standard credential chain is enough).
    """

    def __init__(
        self,
        url: str,
        *,
        serializers: ser.SerializerRegistry | Iterable[ser.Serializer] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self._serializers: ser.SerializerRegistry | None = None
        if isinstance(serializers, ser.SerializerRegistry):
            self._serializers = serializers
        elif serializers is not None:
            self._serializers = ser.SerializerRegistry(serializers)
        self._options = dict(storage_options or {})
        self.backend: LocalBackend | FsspecBackend
        if is_local_url(url):
            root = Path(url.removeprefix("file://")).expanduser().absolute()
            self.backend = LocalBackend(root)
        else:
            self.backend = FsspecBackend(url, self._options)

    def __getstate__(self) -> dict[str, object]:
        state: dict[str, object] = {"url": self.url}
        if self._options:
            state["storage_options"] = self._options
        if self._serializers is not None:
            state["serializers"] = list(self._serializers)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            serializers=state.get("serializers"),
            storage_options=state.get("storage_options"),
        )

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.backend, LocalBackend)

    # -- serializers -----------------------------------------------------------------------

    @property
    def serializers(self) -> ser.SerializerRegistry:
        """The serializers this store writes and reads with: its own when it was given some,
        else the process's (``serializers.current()``, filled by the plugin registry)."""
        return self._serializers if self._serializers is not None else ser.current()

    def _choose(self, value: object) -> ser.Serializer:
        return self.serializers.choose(value)

    def _by_name(self, name: str) -> ser.Serializer:
        return self.serializers.by_name(name)

    def _pickle(self) -> ser.Serializer:
        return self.serializers.by_name(ser.PICKLE.name)

    # -- writing ---------------------------------------------------------------------------

    def put(self, value: object, *, name: str = "output", inline_max: int = 0) -> ArtifactRef:
        """Serialize ``value`` with the first matching serializer and store it once.

        With ``inline_max``, a value whose bytes fit is not written at all: the ref carries the
        bytes (``ref.inline``) and the caller keeps them in the metadata store, which saves two
        fsyncs (or a round trip to an object store) per small output.

        Raises:
            SerializationError: the value cannot be serialized.
            StoreError: the store could not take the bytes (disk full, bucket missing,
                credentials refused…), naming where and why.
        """
        serializer = self._choose(value)
        try:
            return self._put(serializer, value, name, inline_max)
        except ser.Unsupported:
            return self._put(self._pickle(), value, name, inline_max)

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
        ref = self._put(self._by_name("bytes"), data, "collection", inline_max=0)
        return ArtifactRef(ref.key, "collection", ref.size, "builtins.list", False)

    def collection_members(self, ref: ArtifactRef) -> list[ArtifactRef]:
        """The artifacts a collection lists, in order."""
        raw = self.get(ArtifactRef(ref.key, "bytes", ref.size, "builtins.bytes", False))
        return [
            ArtifactRef.from_dict(m) if m["inline"] is None else checked_member(m)
            for m in json.loads(raw)  # type: ignore[arg-type]
        ]

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store raw bytes (serializer "bytes")."""
        return self._put(self._by_name("bytes"), data, "bytes")

    def _put(
        self, serializer: ser.Serializer, value: object, name: str, inline_max: int = 0
    ) -> ArtifactRef:
        def dump(sink: ser.Sink) -> None:
            serializer.dump(value, sink)

        try:
            written = writer.write(self.backend, dump, inline_max=inline_max)
        except (QFlowError, ser.Unsupported):
            raise
        except writer.BlobWriteError as exc:
            hint = exc.hint or "Hint: free space or fix permissions where the store lives."
            raise StoreError(
                f"Output {name!r} could not be written to the artifact store at {self.url}: "
                f"{exc.where}: {writer.describe(exc.cause)}. {hint}"
            ) from exc.cause
        except Exception as exc:
            reason = str(exc).rstrip(".") or type(exc).__name__
            raise SerializationError(
                f"Output {name!r} of type {type(value).__name__!r} cannot be stored: "
                f"{reason}. {_HINT}"
            ) from exc
        kind = "pathlib.Path" if serializer.name in ("file", "dir") else ser.type_name(value)
        return ArtifactRef(
            written.key,
            serializer.name,
            written.size,
            kind,
            serializer.pickled,
            written.inline,
            serializer.version,
        )

    # -- reading ---------------------------------------------------------------------------

    def get(self, ref: ArtifactRef) -> object:
        """Load an artifact; local numpy arrays come back memory-mapped copy-on-write
        (zero-copy reads; a reader's writes stay private to it).

        What is read is verified first (``QFLOW_VERIFY``, see ``verify_policy``): a blob must
        be a regular file inside the store (never a symlink or a folder) of the size the ref
        records, and its bytes must hash to its key when the policy says so.

        Raises:
            ArtifactNotFoundError: no blob for the key.
            ArtifactIntegrityError: the blob is not what the ref describes.
            StoreError: a remote store cannot be reached or refuses the read.
        """
        if ref.serializer == "collection":
            return [self.get(member) for member in self.collection_members(ref)]
        serializer = self._by_name(ref.serializer)
        if ref.inline is not None:
            return serializer.load(io.BytesIO(ref.inline))
        policy = verify_policy()
        path = None
        with self.backend.open(ref.key) as (file, size):
            check_size(ref.key, known_size(ref), size, policy)
            data = None
            if should_hash(policy, size):
                if (self.is_local and ref.serializer in _PATH_LOADERS) or size > AUTO_HASH_MAX:
                    check_hash(ref.key, stream_digest(file))
                else:
                    data = file.read()
                    check_hash(ref.key, hashlib.sha256(data).hexdigest())
            if data is None:
                path = self.backend.local_path(ref.key)
                if path is None:  # a remote blob: load while it is open
                    return self._load(ref, serializer, file)
        return self._load(ref, serializer, path if path is not None else io.BytesIO(data or b""))

    def _load(self, ref: ArtifactRef, serializer: ser.Serializer, source: Any) -> object:
        if ref.serializer == "dir":
            return self._unpacked(ref.key, source)
        return serializer.load(source)

    def _unpacked(self, key: str, source: ser.Source) -> Path:
        """The folder a "dir" blob holds, extracted once per store and key and then reused
        (read-only: an input folder is immutable like every artifact), so loads leave no temp
        folders behind. Local stores keep it in ``<root>/.unpacked/<key>``, remote ones in the
        system temp folder."""
        base = self.backend.unpack_base()
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
            read_only(staging)
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
        with self.backend.open(key) as (file, actual):
            if size is not None:
                check_size(key, size, actual, policy)
            data = file.read() if limit is None else file.read(limit)
        if limit is None and policy != "never":
            check_hash(key, hashlib.sha256(data).hexdigest())
        return data

    def digest(self, key: str) -> str | None:
        """sha256 of the blob's bytes as stored, or None when there is no blob.

        Raises:
            ArtifactIntegrityError: the blob path is a symlink or a folder.
        """
        try:
            with self.backend.open(key) as (file, _):
                return _digest(file)
        except ArtifactNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        """Whether the store holds the blob as a regular file (a symlink or a folder at its
        path does not count: a step whose output it is runs again and repairs it)."""
        try:
            return self.backend.size(key) is not None
        except ArtifactIntegrityError:
            return False

    def local_path(self, key: str) -> Path | None:
        """Where the blob is on local disk; None for remote stores and missing blobs.

        Raises:
            ArtifactIntegrityError: the blob path is a symlink, a folder, or outside the store.
        """
        return self.backend.local_path(key)

    def intact(self, ref: ArtifactRef) -> bool:
        """Whether ``ref`` can be loaded as recorded: inline, or a regular blob of its size
        (and bytes, under the ``QFLOW_VERIFY`` policy). A cache hit should ask this rather
        than ``exists``, so a damaged blob is rewritten by running the step again."""
        if ref.inline is not None:
            return True
        return self.backend.intact(ref.key, ref.size)

    def check_blob_size(self, ref: ArtifactRef) -> None:
        """Refuse a ref whose blob this store holds with another size (or as a symlink or a
        folder); a blob this store does not hold is not checked (another store may hold it)."""
        if not self.is_local:
            return
        actual = self.backend.size(ref.key)
        if actual is not None and actual != ref.size:
            raise ArtifactIntegrityError(
                f"Artifact {ref.key[:12]!r}: the ref says {ref.size} bytes but the stored blob "
                f"has {actual}. The ref is refused. "
                "Hint: an artifact's size is the length of the bytes its key was computed from.",
                key=ref.key,
            )


def _digest(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()
