"""Write a step output to a file in its natural format (``qflow export RUN STEP PATH``).

Tables (pandas, polars, pyarrow) go to Parquet or CSV by the path's suffix, arrays to
``.npy`` (or ``.csv`` for one or two dimensions), JSON-able values to ``.json``, bytes as they
are, a file or folder output is copied as itself, and anything else only to ``.pkl`` (a pickle,
said so). A suffix that does not fit the value is an error naming the suffixes that do.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

from qflow.errors import QFlowError

_TABLE = (".parquet", ".csv")
_ARRAY = (".npy", ".csv")
_JSON = (".json",)
_PICKLE = (".pkl", ".pickle")


def _kind(value: Any, serializer: str) -> tuple[str, tuple[str, ...]]:
    """What the value is, and the suffixes it can be written as."""
    module = type(value).__module__.split(".")[0]
    if serializer in ("file", "dir") and isinstance(value, Path):
        return ("folder" if value.is_dir() else "file"), ()
    if module in ("pandas", "polars") or (type(value).__name__ == "Table" and module == "pyarrow"):
        return "table", _TABLE
    if module == "numpy" and hasattr(value, "shape"):
        return "array", _ARRAY
    if isinstance(value, bytes | bytearray):
        return "bytes", ()
    if serializer == "json":
        return "json", _JSON
    return "object", _PICKLE


def export_value(value: Any, serializer: str, path: Path, *, label: str) -> str:
    """Write ``value`` (an output stored by ``serializer``) to ``path``; returns what was
    written (``a DataFrame as Parquet``). ``label`` names the output in errors."""
    kind, suffixes = _kind(value, serializer)
    suffix = path.suffix.lower()
    type_name = type(value).__name__
    if suffixes and suffix not in suffixes:
        pickled = " (stored as a pickle)" if kind == "object" else ""
        article = "an" if kind[0] in "aeiou" else "a"
        raise QFlowError(
            f"Cannot write {label} (a {type_name}{pickled}) as {path.name!r}: {article} {kind} "
            f"is written as {' or '.join(suffixes)}.\nHint: write it to {path.stem}{suffixes[0]}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        shutil.copytree(value, path)
        return "the folder"
    if kind == "file":
        shutil.copyfile(value, path)
        return "the file"
    if kind == "bytes":
        path.write_bytes(bytes(value))
        return "the bytes"
    if kind == "json":
        path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return "JSON"
    if kind == "array":
        import numpy as np

        if suffix == ".npy":
            np.save(path, np.asarray(value), allow_pickle=False)
            return "an .npy array"
        if np.ndim(value) > 2:
            raise QFlowError(
                f"Cannot write {label} (an array of shape {value.shape}) as CSV: CSV holds one "
                "or two dimensions.\nHint: use .npy."
            )
        np.savetxt(path, np.asarray(value), delimiter=",")
        return "CSV"
    if kind == "table":
        return _write_table(value, path, suffix)
    with path.open("wb") as file:
        pickle.dump(value, file)
    return "a pickle"


def _write_table(value: Any, path: Path, suffix: str) -> str:
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        keep_index = frame.index.name is not None or not frame.index.equals(
            pd.RangeIndex(len(frame))
        )
        if suffix == ".csv":
            frame.to_csv(path, index=keep_index)
        else:
            frame.to_parquet(path, index=keep_index)
    elif module == "polars":
        if suffix == ".csv":
            value.write_csv(path)
        else:
            value.write_parquet(path)
    else:
        if suffix == ".csv":
            import pyarrow.csv

            pyarrow.csv.write_csv(value, str(path))
        else:
            import pyarrow.parquet

            pyarrow.parquet.write_table(value, str(path))
    return "CSV" if suffix == ".csv" else "Parquet"
