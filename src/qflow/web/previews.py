"""Safe previews of artifacts: images, tables (Parquet/CSV/arrays), JSON and text.

Only bytes are read; nothing pickled is ever loaded (``pickle`` and unknown serializers get
no preview), ``.npy`` is read with ``allow_pickle=False``, and images are recognised by their
magic bytes, never by a name the run chose. Artifacts are found by key in the store, so no
client-supplied path is ever opened.
"""

from __future__ import annotations

import io
import json
import re
from typing import TYPE_CHECKING, Any

from qflow.errors import ArtifactNotFoundError

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactRef, ArtifactStore

KEY = re.compile(r"^[0-9a-f]{64}$")
PREVIEW_BYTES = 2 * 1024 * 1024
TEXT_CHARS = 20_000
TABLE_ROWS = 50
MAX_PREVIEW_SIZE = 512 * 1024 * 1024
IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    for magic, media in IMAGE_MAGIC:
        if head.startswith(magic):
            return media
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_bytes(store: ArtifactStore, ref: ArtifactRef, limit: int | None = None) -> bytes:
    """The stored bytes (inline or blob), at most ``limit`` of them. A blob is read only as a
    regular file inside the store (never through a symlink) of the recorded size, and checked
    against its key when read whole (``ArtifactStore.read_bytes``)."""
    if ref.inline is not None:
        return ref.inline if limit is None else ref.inline[:limit]
    return store.read_bytes(ref.key, size=ref.size, limit=limit)


def _table(columns: list[str], rows: list[list[Any]], total: int | None) -> dict[str, Any]:
    return {"kind": "table", "columns": columns, "rows": rows, "total_rows": total}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, bytes):
        return value[:64].hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _arrow_table(table: Any, total: int | None) -> dict[str, Any]:
    table = table.slice(0, TABLE_ROWS)
    columns = [str(c) for c in table.column_names if not str(c).startswith("__index_level")]
    data = table.select(columns).to_pylist()
    rows = [[_jsonable(row[c]) for c in columns] for row in data]
    return _table(columns, rows, total)


def _parquet(data: bytes) -> dict[str, Any]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(io.BytesIO(data))
    total = file.metadata.num_rows
    batches = file.iter_batches(batch_size=TABLE_ROWS)
    first = next(batches, None)
    if first is None:
        return _table([str(n) for n in file.schema_arrow.names], [], total)
    import pyarrow as pa

    table = pa.Table.from_batches([first])
    if SERIES_COLUMN in table.column_names:  # a pandas Series: show its own name
        meta = file.schema_arrow.metadata or {}
        label = _series_name(meta.get(b"qflow.series_name"))
        table = table.rename_columns(
            [label if c == SERIES_COLUMN else c for c in table.column_names]
        )
    return _arrow_table(table, total)


SERIES_COLUMN = "__qflow_series__"


def _series_name(raw: bytes | None) -> str:
    if not raw:
        return "value"
    try:
        name = json.loads(raw)
    except ValueError:
        name = raw.decode("utf-8", "replace")
    return "value" if name is None else str(name)


def _csv(data: bytes) -> dict[str, Any]:
    import pyarrow.csv as pcsv

    # Cut at a line boundary so the reader does not see half a row.
    cut = data if len(data) < PREVIEW_BYTES else data[: data.rfind(b"\n", 0, PREVIEW_BYTES) + 1]
    table = pcsv.read_csv(io.BytesIO(cut))
    return _arrow_table(table, None)


def _npy(data: bytes) -> dict[str, Any]:
    import numpy as np

    array = np.load(io.BytesIO(data), allow_pickle=False)
    info = {"shape": list(array.shape), "dtype": str(array.dtype)}
    if array.ndim == 0:
        return {"kind": "json", "value": _jsonable(array.item()), **info}
    if array.ndim == 1:
        rows = [[_jsonable(v)] for v in array[:TABLE_ROWS].tolist()]
        return {**_table(["value"], rows, int(array.shape[0])), **info}
    if array.ndim == 2:
        head = array[:TABLE_ROWS, :50].tolist()
        columns = [str(i) for i in range(min(array.shape[1], 50))]
        return {
            **_table(columns, [[_jsonable(v) for v in r] for r in head], array.shape[0]),
            **info,
        }
    return {"kind": "none", "reason": f"a {array.ndim}-d array", **info}


def _text(data: bytes, truncated: bool) -> dict[str, Any] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if not truncated:
            return None
        try:
            text = data[:-4].decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            return None
    if "\x00" in text:
        return None
    return {
        "kind": "text",
        "text": text[:TEXT_CHARS],
        "truncated": truncated or len(text) > TEXT_CHARS,
    }


def preview(store: ArtifactStore, ref: ArtifactRef, name: str = "") -> dict[str, Any]:
    """A JSON-able preview: ``kind`` is image, table, json, text, html (a figure, see the
    ``/figure`` route) or none (with a reason)."""
    base = {
        "key": ref.key,
        "name": name,
        "serializer": ref.serializer,
        "size": ref.size,
        "type": ref.type_name,
        "pickled": ref.pickled,
    }
    try:
        return {**base, **_preview(store, ref, name)}
    except ArtifactNotFoundError:
        raise
    except ImportError as exc:
        return {**base, "kind": "none", "reason": f"{exc.name or 'a library'} is not installed"}
    except Exception as exc:  # a malformed artifact must not break the page
        return {**base, "kind": "none", "reason": f"cannot preview: {type(exc).__name__}: {exc}"}


def _preview(store: ArtifactStore, ref: ArtifactRef, name: str) -> dict[str, Any]:
    if ref.pickled or ref.serializer not in ("json", "bytes", "file", "parquet", "npy"):
        return {"kind": "none", "reason": f"no preview for {ref.serializer} artifacts"}
    if ref.size > MAX_PREVIEW_SIZE and ref.serializer in ("parquet", "npy"):
        return {"kind": "none", "reason": "too large to preview"}
    if ref.serializer == "parquet":
        return _parquet(read_bytes(store, ref))
    if ref.serializer == "npy":
        return _npy(read_bytes(store, ref))
    head = read_bytes(store, ref, PREVIEW_BYTES)
    truncated = ref.size > len(head)
    if ref.serializer == "json":
        if truncated:
            return _text(head, truncated) or {"kind": "none", "reason": "too large"}
        from qflow.store.serializers import plain_json

        return {"kind": "json", "value": plain_json(head)}
    media = image_type(head[:16])
    if media is not None:
        return {"kind": "image", "media_type": media}
    if head.startswith(b"PAR1") and not truncated:
        return _parquet(head)
    lower = name.lower()
    if lower.endswith((".html", ".htm")) and ref.serializer in ("bytes", "file"):
        return {"kind": "html"}  # shown by /figure in a sandboxed frame
    if lower.endswith((".csv", ".tsv")):
        return _csv(head)
    if lower.endswith(".json") and not truncated:
        try:
            return {"kind": "json", "value": json.loads(head)}
        except ValueError:
            pass
    return _text(head, truncated) or {"kind": "none", "reason": "binary data"}
