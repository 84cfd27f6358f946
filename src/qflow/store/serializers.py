"""Type → byte format registry for step outputs.

Each serializer streams a value into a ``Sink`` (which hashes and writes as bytes arrive) and
reads it back from a local path or a binary file. numpy, pandas and pyarrow are imported only
inside functions, and a value is matched by its type's module name first, so storing a dict never
imports numpy.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Protocol

_CHUNK = 1 << 20
_JSON_SCALARS = (type(None), bool, int, float, str)


class Sink(Protocol):
    """Where a serializer writes: a file-like object that only needs ``write``."""

    def write(self, data: bytes | memoryview, /) -> int: ...


Source = Path | BinaryIO
"""A blob to read: a local path (enables memory mapping) or an open binary file."""


class Unsupported(Exception):
    """Raised by ``dump`` before writing anything when this value needs another serializer."""


class Serializer(Protocol):
    """One byte format. ``version`` changes whenever the bytes written for a value change."""

    name: str
    version: str
    pickled: bool

    def matches(self, value: object) -> bool: ...

    def dump(self, value: object, sink: Sink) -> None: ...

    def load(self, source: Source) -> object: ...


def type_name(value: object) -> str:
    """``module.QualName`` of the value's type, the label shown to users for an artifact."""
    cls = type(value)
    module = cls.__module__
    if module.startswith("pandas."):
        module = "pandas"
    elif module.startswith("pyarrow."):
        module = "pyarrow"
    return f"{module}.{cls.__qualname__}"


def _module_loaded_type(value: object, module: str, names: Iterable[str]) -> bool:
    cls = type(value)
    return (
        module in sys.modules and cls.__module__.split(".")[0] == module and cls.__name__ in names
    )


class NpySerializer:
    """numpy arrays as ``.npy``: a header, then the raw buffer, hashed and written uncopied."""

    name = "npy"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        if not _module_loaded_type(value, "numpy", ("ndarray", "memmap")):
            return False
        return not bool(value.dtype.hasobject)  # type: ignore[attr-defined]

    def dump(self, value: object, sink: Sink) -> None:
        import numpy as np

        array: Any = value
        if not (array.flags.c_contiguous or array.flags.f_contiguous):
            array = np.ascontiguousarray(array)
        header = np.lib.format.header_data_from_array_1_0(array)
        buffer = io.BytesIO()
        try:
            np.lib.format.write_array_header_1_0(buffer, header)
        except ValueError:
            buffer = io.BytesIO()
            np.lib.format.write_array_header_2_0(buffer, header)
        sink.write(buffer.getvalue())
        flat = array.T if header["fortran_order"] else array
        sink.write(memoryview(flat.reshape(-1).view(np.uint8)))

    def load(self, source: Source) -> object:
        import numpy as np

        if isinstance(source, Path):
            return np.load(source, mmap_mode="c", allow_pickle=False)
        return np.lib.format.read_array(source, allow_pickle=False)


class ParquetSerializer:
    """pandas DataFrame/Series and pyarrow Tables as Parquet; the kind is kept in the schema."""

    name = "parquet"
    version = "1"
    pickled = False
    _KIND = b"qflow.kind"
    _SERIES_NAME = b"qflow.series_name"
    _SERIES_COLUMN = "__qflow_series__"

    def matches(self, value: object) -> bool:
        if _module_loaded_type(value, "pyarrow", ("Table",)):
            return True
        if not _module_loaded_type(value, "pandas", ("DataFrame", "Series")):
            return False
        return type(value).__name__ == "DataFrame" or type(value.name) in _JSON_SCALARS  # type: ignore[attr-defined]

    def dump(self, value: object, sink: Sink) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        kind = type(value).__name__
        extra: dict[bytes, bytes] = {self._KIND: kind.encode()}
        try:
            if kind == "Table":
                table: Any = value
            elif kind == "Series":
                frame = value.to_frame(name=self._SERIES_COLUMN)  # type: ignore[attr-defined]
                extra[self._SERIES_NAME] = json.dumps(value.name).encode()  # type: ignore[attr-defined]
                table = pa.Table.from_pandas(frame, preserve_index=True)
            else:
                table = pa.Table.from_pandas(value, preserve_index=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise Unsupported(str(exc)) from exc
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
        pq.write_table(table, sink, compression="none")

    def load(self, source: Source) -> object:
        import pyarrow.parquet as pq

        table = pq.read_table(source, memory_map=isinstance(source, Path))
        metadata = table.schema.metadata or {}
        kind = metadata.get(self._KIND, b"Table")
        if kind == b"Table":
            return table.replace_schema_metadata(
                {k: v for k, v in metadata.items() if k != self._KIND}
            )
        frame = table.to_pandas()
        if kind == b"Series":
            series = frame[self._SERIES_COLUMN]
            series.name = json.loads(metadata[self._SERIES_NAME])
            return series
        return frame


def _is_json(value: object, tuples: bool = False) -> bool:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is list or (tuples and kind is tuple):
        return all(_is_json(item, tuples) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(type(k) is str and _is_json(v, tuples) for k, v in value.items())  # type: ignore[attr-defined]
    return False


_TYPED = "__qflow_json__"
"""Key of the wrapper of a JSON document that holds tuples: ``{"__qflow_json__": 1, "value": …}``
where, inside ``value``, every tuple is ``{"t": [...]}`` and every dict ``{"d": {...}}``."""


def _needs_types(value: object) -> bool:
    """Whether plain JSON would lose a type: a tuple anywhere, or a dict that looks like the
    typed wrapper (so a user's dict is never mistaken for one when loaded)."""
    kind = type(value)
    if kind is tuple:
        return True
    if kind is list:
        return any(_needs_types(item) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        if _TYPED in value:  # type: ignore[operator]
            return True
        return any(_needs_types(item) for item in value.values())  # type: ignore[attr-defined]
    return False


def _typed(value: Any) -> Any:
    if type(value) is tuple:
        return {"t": [_typed(v) for v in value]}
    if type(value) is list:
        return [_typed(v) for v in value]
    if type(value) is dict:
        return {"d": {k: _typed(v) for k, v in value.items()}}
    return value


def _untyped(value: Any, tuples: bool = True) -> Any:
    if isinstance(value, list):
        return [_untyped(v, tuples) for v in value]
    if isinstance(value, dict):
        if "t" in value:
            items = [_untyped(v, tuples) for v in value["t"]]
            return tuple(items) if tuples else items
        return {k: _untyped(v, tuples) for k, v in value["d"].items()}
    return value


def plain_json(data: bytes) -> Any:
    """What a JSON blob holds, as plain JSON (a typed document's tuples as lists), for
    readers that show it rather than load it (the dashboard's preview)."""
    value = json.loads(data.decode("utf-8"))
    if type(value) is dict and value.get(_TYPED) == 1 and set(value) == {_TYPED, "value"}:
        return _untyped(value["value"], tuples=False)
    return value


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""What ``json.dumps`` with these options makes, without building an encoder per value."""


class JsonSerializer:
    """JSON-able values as canonical UTF-8 JSON (sorted keys), so equal values share a key.

    Types are matched exactly, so a value loads back as what was stored: tuples (at any depth)
    are written as a typed document (``_TYPED``) and load as tuples again; numpy scalars and
    ``bool``/``int`` subclasses would come back as a different type, so they go to pickle.
    Values without tuples are written exactly as before, so their artifacts keep their keys.
    """

    name = "json"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        try:
            return _is_json(value, tuples=True)
        except RecursionError:
            return False

    def dump(self, value: object, sink: Sink) -> None:
        if _needs_types(value):
            value = {_TYPED: 1, "value": _typed(value)}
        sink.write(_CANONICAL_JSON.encode(value).encode("utf-8"))

    def load(self, source: Source) -> object:
        data = source.read_bytes() if isinstance(source, Path) else source.read()
        value = json.loads(data.decode("utf-8"))
        if type(value) is dict and value.get(_TYPED) == 1 and set(value) == {_TYPED, "value"}:
            return _untyped(value["value"])
        return value


class BytesSerializer:
    """``bytes`` stored as they are."""

    name = "bytes"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        return type(value) is bytes

    def dump(self, value: object, sink: Sink) -> None:
        sink.write(value)  # type: ignore[arg-type]

    def load(self, source: Source) -> object:
        return source.read_bytes() if isinstance(source, Path) else source.read()


def _copy_file(path: str | os.PathLike[str], sink: Sink) -> None:
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            sink.write(chunk)


class FileSerializer:
    """A path to an existing file: its bytes are stored, and ``get`` gives back a path."""

    name = "file"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        return isinstance(value, PurePath) and Path(value).is_file()

    def dump(self, value: object, sink: Sink) -> None:
        _copy_file(value, sink)  # type: ignore[arg-type]

    def load(self, source: Source) -> object:
        if isinstance(source, Path):
            return source
        handle, name = tempfile.mkstemp(prefix="qflow-file-")
        with os.fdopen(handle, "wb") as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
        return Path(name)


def _tar_info(root: Path, path: Path) -> tarfile.TarInfo:
    """A tar header with only what defines the content: name, kind, size and exec bit."""
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    if path.is_symlink():
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif path.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = path.stat().st_size
        info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    return info


def _check_link(root: Path, path: Path) -> None:
    """Refuse a symlink that points outside the folder being stored: its target would not be
    stored, and unpacking such a link is refused."""
    target = os.readlink(path)
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
    inside = os.path.normpath(root)
    if os.path.isabs(target) or os.path.commonpath([inside, resolved]) != inside:
        from qflow.errors import SerializationError

        raise SerializationError(
            f"Folder {str(root)!r} cannot be stored: its symlink "
            f"{path.relative_to(root).as_posix()!r} points outside it ({target!r}). "
            "Hint: copy the file into the folder, or make the link relative and inside it."
        )


def unpack_dir(source: Source, target: Path, key: str = "") -> None:
    """Extract a stored folder's tar into the existing folder ``target``.

    Only regular files, folders and links that stay inside ``target`` are extracted (tarfile's
    ``data`` filter); anything else is refused as one line naming the member.

    Raises:
        SerializationError: a hostile or broken member, or bytes that are not a tar.
    """
    from qflow.errors import SerializationError

    try:
        if isinstance(source, Path):
            with tarfile.open(source, mode="r:") as tar:
                tar.extractall(target, filter="data")
        else:
            with tarfile.open(fileobj=source, mode="r|") as tar:
                tar.extractall(target, filter="data")
    except tarfile.FilterError as exc:
        member = exc.tarinfo.name if exc.tarinfo is not None else "?"
        raise SerializationError(
            f"Folder artifact {key[:12]!r} cannot be loaded: its member {member!r} is refused "
            f"({exc}). Only files, folders and links inside the folder are extracted."
        ) from exc
    except (tarfile.TarError, EOFError) as exc:
        raise SerializationError(
            f"Folder artifact {key[:12]!r} cannot be loaded: its bytes are not a readable tar "
            f"({exc}). Hint: run `qflow doctor`."
        ) from exc


class DirSerializer:
    """A path to a folder, stored as a deterministic tar (sorted, no times or owners)."""

    name = "dir"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        return isinstance(value, PurePath) and Path(value).is_dir()

    def dump(self, value: object, sink: Sink) -> None:
        root = Path(value)  # type: ignore[arg-type]
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).parts):
                info = _tar_info(root, path)
                if info.issym():
                    _check_link(root, path)
                if info.isfile():
                    with path.open("rb") as file:
                        tar.addfile(info, file)
                else:
                    tar.addfile(info)

    def load(self, source: Source) -> object:
        """Extract into a new temp folder the caller owns (``ArtifactStore.get`` instead
        extracts once per blob into the store's ``.unpacked`` folder and reuses it)."""
        target = Path(tempfile.mkdtemp(prefix="qflow-dir-"))
        try:
            unpack_dir(source, target)
        except BaseException:
            import shutil

            shutil.rmtree(target, ignore_errors=True)
            raise
        return target


class PickleSerializer:
    """The last resort for any other value (protocol 5); artifacts stored this way are flagged."""

    name = "pickle"
    version = "5"
    pickled = True

    def matches(self, value: object) -> bool:
        return True

    def dump(self, value: object, sink: Sink) -> None:
        pickle.dump(value, sink, protocol=5)

    def load(self, source: Source) -> object:
        if isinstance(source, Path):
            with source.open("rb") as file:
                return pickle.load(file)
        return pickle.load(source)


BUILTIN_SERIALIZERS: tuple[Serializer, ...] = (
    NpySerializer(),
    ParquetSerializer(),
    JsonSerializer(),
    BytesSerializer(),
    FileSerializer(),
    DirSerializer(),
    PickleSerializer(),
)
"""QFlow's own formats, in the order they are tried; pickle, the last resort, is last.

QFlow's ``builtin`` plugin provides them through the ``register_serializers`` hook, like any
plugin's serializers."""

PICKLE: Serializer = BUILTIN_SERIALIZERS[-1]


class SerializerRegistry:
    """The serializers an artifact store may use, in the order they are tried: QFlow's
    specific formats, then the plugins' serializers, then pickle.

    The process's registry is built once by the plugin registry (``qflow.plugins.registry``)
    from every plugin's ``register_serializers`` hook; the artifact store asks for it with
    ``current()``. Without plugins (this layer alone) it holds the built-in formats.
    """

    def __init__(self, serializers: Iterable[Serializer] = BUILTIN_SERIALIZERS) -> None:
        self._items: list[Serializer] = [PICKLE]
        for serializer in serializers:
            self.register(serializer)

    def __iter__(self) -> Iterator[Serializer]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"SerializerRegistry({', '.join(self.names())})"

    def register(self, serializer: Serializer) -> None:
        """Add ``serializer``, tried before pickle and after the ones already here.

        Registering the same name again with the same class does nothing; another class under
        a taken name is refused with ``ValueError``.
        """
        for existing in self._items:
            if existing.name == serializer.name:
                if type(existing) is type(serializer):
                    return
                raise ValueError(
                    f"serializer name {serializer.name!r} is taken by {type(existing).__name__}"
                )
        self._items.insert(len(self._items) - 1, serializer)

    def choose(self, value: object) -> Serializer:
        """The serializer for ``value`` (pickle when nothing more specific fits)."""
        return next(s for s in self._items if s.matches(value))

    def by_name(self, name: str) -> Serializer:
        """The serializer that wrote an artifact, from the name recorded in its ref."""
        for serializer in self._items:
            if serializer.name == name:
                return serializer
        raise KeyError(name)

    def names(self) -> list[str]:
        return [s.name for s in self._items]

    def versions(self) -> dict[str, str]:
        """Name → version of every serializer (a cached output written by another version of
        its serializer is not reused)."""
        return {s.name: s.version for s in self._items}


_source: Callable[[], SerializerRegistry] | None = None
_builtin: SerializerRegistry | None = None


def provide(source: Callable[[], SerializerRegistry]) -> None:
    """Tell this layer where the process's serializers come from (the plugin registry does,
    once: this layer cannot import the plugins layer above it)."""
    global _source
    _source = source


def current() -> SerializerRegistry:
    """The process's serializers: the plugin registry's, else the built-in formats."""
    global _builtin
    if _source is not None:
        return _source()
    if _builtin is None:
        _builtin = SerializerRegistry()
    return _builtin


def register(serializer: Serializer) -> None:
    """Add a serializer to the process's registry, for code that ships no plugin (a plugin
    provides its serializers with the ``register_serializers`` hook instead)."""
    current().register(serializer)


def choose(value: object) -> Serializer:
    """The serializer for ``value`` (pickle when nothing more specific fits)."""
    return current().choose(value)


def by_name(name: str) -> Serializer:
    """The serializer that wrote an artifact, from the name recorded in its ref."""
    return current().by_name(name)


def serializer_versions() -> dict[str, str]:
    """Name → version of every serializer (a cached output written by another version of its
    serializer is not reused)."""
    return current().versions()
