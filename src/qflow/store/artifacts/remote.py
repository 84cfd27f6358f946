"""The fsspec back end: blobs as objects under any fsspec URL (``s3://``, ``gs://``, …).

Object stores publish an object atomically (S3 ``PutObject`` and ``CompleteMultipartUpload``,
GCS simple and resumable uploads), so a blob is uploaded straight to its content address and
no reader ever sees part of it; other file systems get a staging name and a move. Big blobs go
up in parts of ``PART_SIZE``. Transient errors (connection resets, 5xx, throttling) are retried
by the client libraries (botocore, s3fs, gcsfs); what still fails raises a ``StoreError`` that
names the bucket, the key and the cause.

Credentials and endpoints come from each library's standard chain: for S3, botocore's
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and ``~/.aws``, the
instance role; ``AWS_ENDPOINT_URL_S3`` or a profile's ``endpoint_url``), for GCS Google's
(``GOOGLE_APPLICATION_CREDENTIALS``, gcloud, the metadata server); fsspec's own
``FSSPEC_<PROTOCOL>_<OPTION>`` variables (``FSSPEC_S3_ENDPOINT_URL``) apply too.

fsspec's async file systems (s3fs, gcsfs) cannot be used in a forked child ("This class is not
fork-safe"), so the file system is made per process: a store forked into a worker (the parallel
executor) makes its own on first use there. fsspec's instance cache is keyed by process and
cleared in a new one; each store asks for its own instance anyway (``skip_instance_cache``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from qflow.errors import ArtifactIntegrityError, ArtifactNotFoundError, QFlowError, StoreError
from qflow.store.artifacts.ref import blob_parts
from qflow.store.artifacts.verify import not_regular, should_hash, verify_policy
from qflow.store.artifacts.writer import BlobWriteError, DirectFile, describe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ATOMIC_PROTOCOLS = frozenset({"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"})
"""Object stores that publish an object whole, so a blob needs no staging name + move."""
PART_SIZE = 8 << 20
"""Part size of multipart (S3, from two parts up) and resumable (GCS, from 5 MiB) uploads.
S3's minimum part is 5 MiB; GCS wants multiples of 256 KiB."""
_PARTED_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs"})
_BUCKETED_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"})


class FsspecBackend:
    """Blobs at ``<url>/<key[:2]>/<key[2:4]>/<key>`` through fsspec."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url
        self.options = dict(storage_options or {})
        protocol, _ = fsspec.core.split_protocol(url)
        self.protocol = protocol or "file"
        self._fs: Any = None
        self._pid = -1
        self._root = ""

    @property
    def fs(self) -> Any:
        """This process's file system (made again after a fork)."""
        pid = os.getpid()
        if self._pid != pid:  # two threads racing here both connect; one instance wins
            self._fs, self._root = self._connect()
            self._pid = pid
        return self._fs

    def _connect(self) -> tuple[Any, str]:
        import fsspec

        try:
            # Each store owns its file system: one made from the current environment (keys,
            # endpoint), never a cached instance another store made with other settings.
            fs, root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **self.options)
        except ImportError as exc:
            from qflow.errors import MissingExtraError

            extra = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}
            package = extra.get(self.protocol, "the fsspec implementation")
            raise MissingExtraError(
                f"The artifact store {self.url!r} needs {package}: {describe(exc)}. "
                f"Hint: pip install {package}."
            ) from exc
        return fs, str(root).rstrip("/")

    def blob_path(self, key: str) -> str:
        first, second, name = blob_parts(key)
        _ = self.fs  # the root comes with the file system
        return f"{self._root}/{first}/{second}/{name}"

    def where(self, key: str) -> str:
        """The blob's URL, with its bucket and key for object stores."""
        path = self.blob_path(key)
        url = f"{self.protocol}://{path}"
        if self.protocol in _BUCKETED_PROTOCOLS:
            bucket, _, name = path.partition("/")
            return f"{url} (bucket {bucket!r}, key {name!r})"
        return url

    def staging(self) -> tuple[Path, str]:
        return Path(tempfile.gettempdir()), "qflow-put-"

    def unpack_base(self) -> Path:
        return Path(tempfile.gettempdir()) / f"qflow-unpacked-{os.getuid()}"

    # -- writing ---------------------------------------------------------------------------

    def publish(self, file: IO[bytes] | DirectFile, path: str, key: str, size: int) -> None:
        """Upload the staged file to the blob's address unless an intact blob is there; a
        damaged one (another size, other bytes under the ``QFLOW_VERIFY`` policy) is replaced."""
        file.flush()
        dest = self.blob_path(key)
        try:
            if self._intact(key, size):
                return
            fs = self.fs
            options: dict[str, Any] = {}
            if self.protocol in _PARTED_PROTOCOLS:
                options["chunksize"] = PART_SIZE
            if self.protocol in ATOMIC_PROTOCOLS:
                fs.put_file(path, dest, **options)
            else:
                staging = f"{dest}.tmp-{os.getpid()}-{threading.get_ident()}"
                fs.put_file(path, staging, **options)
                fs.mv(staging, dest)
        except QFlowError:
            raise
        except Exception as exc:
            raise BlobWriteError(self.where(key), exc, _hint(exc)) from exc

    # -- reading ---------------------------------------------------------------------------

    def _call(self, key: str, what: str, call: Callable[[], Any]) -> Any:
        """Run a file-system call, turning its errors into QFlow's: a missing object is
        ``ArtifactNotFoundError``, anything else a ``StoreError`` naming where and why."""
        try:
            return call()
        except FileNotFoundError as exc:
            raise self.not_found(key, describe(exc)) from exc
        except QFlowError:
            raise
        except Exception as exc:
            raise StoreError(
                f"Artifact {key[:12]!r}: cannot {what} {self.where(key)}: {describe(exc)}. "
                f"{_hint(exc)}"
            ) from exc

    def size(self, key: str) -> int | None:
        """The blob's size, or None when there is none.

        Raises:
            ArtifactIntegrityError: something other than an object (a folder) is at its path.
            StoreError: the store cannot be reached or refuses the request.
        """
        return self._call(key, "read", lambda: self._size(key))  # type: ignore[no-any-return]

    def _size(self, key: str) -> int | None:
        """``size`` with the file system's own errors."""
        try:
            info = self.fs.info(self.blob_path(key))
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            raise not_regular(key, self.where(key), f"a {info.get('type') or 'non-file'}")
        return int(info["size"])

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[tuple[IO[bytes], int]]:
        """The blob opened for reading, with its size.

        Raises:
            ArtifactNotFoundError: no blob for the key.
            ArtifactIntegrityError: not an object (a folder).
            StoreError: the store cannot be reached or refuses the request.
        """
        size = self.size(key)
        if size is None:
            raise self.not_found(key)
        path = self.blob_path(key)
        file = self._call(key, "read", lambda: self.fs.open(path, "rb"))
        with file:
            yield file, size

    def read(self, key: str) -> bytes:
        path = self.blob_path(key)
        return bytes(self._call(key, "read", lambda: self.fs.cat_file(path)))

    def local_path(self, key: str) -> Path | None:
        return None

    def intact(self, key: str, size: int) -> bool:
        """An object of ``size`` bytes is there (hashing to ``key`` under the policy).

        Raises:
            StoreError: the store cannot be reached or refuses the request.
        """
        try:
            return bool(self._call(key, "read", lambda: self._intact(key, size)))
        except ArtifactNotFoundError:  # removed while it was being read
            return False

    def _intact(self, key: str, size: int) -> bool:
        """``intact`` with the file system's own errors."""
        try:
            if self._size(key) != size:
                return False
        except ArtifactIntegrityError:
            return False
        if not should_hash(verify_policy(), size):
            return True
        digest = hashlib.sha256()
        with self.fs.open(self.blob_path(key), "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == key

    def incomplete_uploads(self, older_than: float = 3600.0) -> list[str]:
        """Object keys of S3 multipart uploads under this store begun more than ``older_than``
        seconds ago and never completed or aborted (a writer killed mid-upload): no reader
        sees them, but the bucket keeps (and bills) their parts. Other stores: none.

        Raises:
            StoreError: the bucket cannot be listed.
        """
        if self.protocol not in ("s3", "s3a"):
            return []
        import datetime

        bucket, _, prefix = f"{self._root_path()}/".partition("/")
        try:
            uploads = self.fs.list_multipart_uploads(bucket)
        except Exception as exc:
            raise StoreError(
                f"Cannot list the incomplete uploads of bucket {bucket!r} ({self.url}): "
                f"{describe(exc)}. {_hint(exc)}"
            ) from exc
        now = datetime.datetime.now(datetime.UTC)
        return sorted(
            str(upload["Key"])
            for upload in uploads
            if str(upload["Key"]).startswith(prefix)
            and (now - upload["Initiated"]).total_seconds() >= older_than
        )

    def _root_path(self) -> str:
        _ = self.fs
        return self._root

    def not_found(self, key: str, cause: str = "") -> ArtifactNotFoundError:
        because = f" ({cause})" if cause else ""
        return ArtifactNotFoundError(
            f"Artifact {key[:12]!r} is not in the artifact store at {self.url}: no object at "
            f"{self.where(key)}{because}. "
            "Hint: check QFLOW_ARTIFACTS points at the store the run used."
        )


def _hint(exc: BaseException) -> str:
    """What to check, from the kind of failure."""
    if isinstance(exc, FileNotFoundError):
        return "Hint: create the bucket (or folder), or point QFLOW_ARTIFACTS at one that exists."
    if isinstance(exc, PermissionError):
        return (
            "Hint: check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
            "or the instance role for S3, GOOGLE_APPLICATION_CREDENTIALS for GCS; they need "
            "read and write access to the bucket."
        )
    return (
        "Hint: check the endpoint (AWS_ENDPOINT_URL_S3 or FSSPEC_S3_ENDPOINT_URL for S3) and "
        "the network; transient errors were already retried."
    )
