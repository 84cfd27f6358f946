from __future__ import annotations

import hashlib
import math
import pickle
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from qflow.errors import SerializationError
from qflow.store import ArtifactStore
from qflow.store.serializers import serializer_versions


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(10, dtype=np.int32),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(20)[::3],
        np.array(3.5),
        np.zeros(0),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    ],
    ids=["float2d", "int", "fortran", "strided", "0d", "empty", "structured"],
)
def test_numpy_round_trip_memory_mapped(store: ArtifactStore, array: np.ndarray) -> None:
    ref = store.put(array)
    loaded = store.get(ref)
    assert ref.serializer == "npy" and not ref.pickled
    assert ref.type_name == "numpy.ndarray"
    assert isinstance(loaded, np.memmap)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    if loaded.size:  # copy-on-write: a reader's writes never reach the blob or other readers
        loaded.reshape(-1).view(np.uint8)[:] = 0
        np.testing.assert_array_equal(store.get(ref), array)


def test_object_array_is_pickled(store: ArtifactStore) -> None:
    array = np.array([{"a": 1}, None], dtype=object)
    ref = store.put(array)
    assert ref.serializer == "pickle" and ref.pickled
    assert list(store.get(ref)) == [{"a": 1}, None]  # type: ignore[call-overload]


def test_dataframe_round_trip_keeps_index(store: ArtifactStore) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "é"]}, index=pd.Index(["r1", "r2"], name="id"))
    ref = store.put(frame)
    assert (ref.serializer, ref.type_name, ref.pickled) == ("parquet", "pandas.DataFrame", False)
    pd.testing.assert_frame_equal(store.get(ref), frame)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["price", None, 3], ids=["str", "none", "int"])
def test_series_round_trip_keeps_name_and_index(store: ArtifactStore, name: object) -> None:
    series = pd.Series([1.5, 2.5], index=[10, 20], name=name)
    ref = store.put(series)
    assert ref.serializer == "parquet"
    loaded = store.get(ref)
    assert isinstance(loaded, pd.Series)
    pd.testing.assert_series_equal(loaded, series)


def test_unconvertible_dataframe_falls_back_to_pickle(store: ArtifactStore) -> None:
    frame = pd.DataFrame({"mixed": [1, "a"]})
    ref = store.put(frame)
    assert ref.serializer == "pickle" and ref.pickled
    pd.testing.assert_frame_equal(store.get(ref), frame)  # type: ignore[arg-type]


def test_arrow_table_round_trip(store: ArtifactStore) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    ref = store.put(table)
    assert (ref.serializer, ref.type_name) == ("parquet", "pyarrow.Table")
    loaded = store.get(ref)
    assert isinstance(loaded, pa.Table) and loaded.equals(table)


def test_json_round_trip_nested_with_nan(store: ArtifactStore) -> None:
    value = {"b": [1, 2.5, None, True, "ü"], "a": {"nested": [{"x": -0.0}]}, "n": math.nan}
    ref = store.put(value)
    assert (ref.serializer, ref.type_name, ref.pickled) == ("json", "builtins.dict", False)
    loaded = store.get(ref)
    assert isinstance(loaded, dict)
    assert math.isnan(loaded.pop("n"))
    assert loaded == {k: v for k, v in value.items() if k != "n"}
    assert math.copysign(1.0, loaded["a"]["nested"][0]["x"]) == -1.0


@pytest.mark.parametrize("inline_max", [0, 1 << 14], ids=["blob", "inline"])
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        ({"b": [1, 2.5, None, True, "ü"], "a": "x"}, '{"a":"x","b":[1,2.5,null,true,"ü"]}'),
        ((1, "a"), '{"__qflow_json__":1,"value":{"t":[1,"a"]}}'),
    ],
    ids=["int", "dict", "tuple"],
)
def test_json_outputs_are_keyed_by_their_canonical_text(
    store: ArtifactStore, value: object, text: str, inline_max: int
) -> None:
    """Sorted keys, no spaces, UTF-8: the key of a JSON output never changes, or users'
    caches would miss."""
    data = text.encode()
    ref = store.put(value, inline_max=inline_max)
    assert (ref.key, ref.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert ref.inline == (data if inline_max else None)
    assert store.get(ref) == value


def test_bytes_round_trip(store: ArtifactStore) -> None:
    ref = store.put(b"\x00raw\xff")
    assert ref.serializer == "bytes"
    assert store.get(ref) == b"\x00raw\xff"
    assert store.put_bytes(b"\x00raw\xff") == ref


def test_file_round_trip_returns_stored_path(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    ref = store.put_path(source)
    loaded = store.get(ref)
    assert ref.serializer == "file" and ref.type_name == "pathlib.Path"
    assert isinstance(loaded, Path) and loaded.read_text() == "a,b\n1,2\n"
    assert loaded == store.local_path(ref.key)
    assert store.put(source) == ref


def test_folder_round_trip_is_deterministic(store: ArtifactStore, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x01\x02")
    (folder / "sub" / "config.json").write_text('{"k": 1}')
    ref = store.put_path(folder)
    (folder / "weights.bin").touch()  # a new mtime must not change the key
    assert store.put_path(folder) == ref
    loaded = store.get(ref)
    assert ref.serializer == "dir" and isinstance(loaded, Path)
    assert (loaded / "weights.bin").read_bytes() == b"\x01\x02"
    assert (loaded / "sub" / "config.json").read_text() == '{"k": 1}'


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ((1, frozenset({"a"})), "builtins.tuple"),  # a tuple of JSON-able values is JSON
        (Point(3), f"{__name__}.Point"),
        ({1: "int key"}, "builtins.dict"),
    ],
    ids=["tuple", "custom-class", "int-keys"],
)
def test_pickle_fallback_is_flagged(store: ArtifactStore, value: object, type_name: str) -> None:
    ref = store.put(value)
    assert (ref.serializer, ref.pickled, ref.type_name) == ("pickle", True, type_name)
    assert store.get(ref) == value


def test_same_value_same_key_and_different_value_different_key(store: ArtifactStore) -> None:
    assert store.put({"a": 1, "b": 2}).key == store.put({"b": 2, "a": 1}).key
    assert store.put(np.arange(5.0)).key == store.put(np.arange(5.0)).key
    assert store.put(np.arange(5.0)).key != store.put(np.arange(6.0)).key
    assert store.put([1, 2]).key != store.put([2, 1]).key


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: lambda x: x, "function"),
        (threading.Lock, "lock"),
        (lambda: open(__file__), "TextIOWrapper"),  # noqa: SIM115
    ],
    ids=["lambda", "lock", "open-file"],
)
def test_unpicklable_output_raises_and_leaves_nothing(
    store: ArtifactStore, tmp_path: Path, make: object, type_name: str
) -> None:
    value = make()  # type: ignore[operator]
    try:
        with pytest.raises(
            SerializationError, match=rf"Output 'model' of type '{type_name}'.*Hint"
        ):
            store.put(value, name="model")
    finally:
        if hasattr(value, "close"):
            value.close()
    assert _files(tmp_path / "artifacts") == []


def test_serializer_versions_cover_every_format() -> None:
    versions = serializer_versions()
    # Installed plugins (tests/plugin_pkg adds "money") may add more.
    assert {"npy", "parquet", "json", "bytes", "file", "dir", "pickle"} <= set(versions)
    assert all(isinstance(v, str) and v for v in versions.values())


def test_refs_survive_pickle_and_dict(store: ArtifactStore) -> None:
    ref = store.put([1])
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert type(ref).from_dict(ref.to_dict()) == ref
