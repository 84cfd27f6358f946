from __future__ import annotations

import hashlib
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from qflow.errors import ArtifactNotFoundError, SerializationError
from qflow.store import ArtifactRef, ArtifactStore


def test_blob_layout_is_content_addressed_and_read_only(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(b"hello")
    key = hashlib.sha256(b"hello").hexdigest()
    blob = tmp_path / key[:2] / key[2:4] / key
    assert ref == ArtifactRef(key, "bytes", 5, "builtins.bytes", False)
    assert blob.read_bytes() == b"hello"
    assert store.local_path(key) == blob and store.exists(key)
    assert not os.stat(blob).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}")
    first = store.put(np.arange(1000.0))
    second = store.put(np.arange(1000.0))
    assert first == second
    blobs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert blobs == [tmp_path / first.key[:2] / first.key[2:4] / first.key]


def test_store_pickles_as_its_url(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put({"a": 1})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.url == store.url
    assert clone.get(ref) == {"a": 1}
    assert len(pickle.dumps(store)) < 200


def test_memory_fsspec_url_round_trips(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://qflow-test-{tmp_path.name}")
    ref = store.put(np.arange(10))
    again = store.put(np.arange(10))
    assert again == ref and store.exists(ref.key)
    assert store.local_path(ref.key) is None
    np.testing.assert_array_equal(store.get(ref), np.arange(10))  # type: ignore[arg-type]
    assert store.get(store.put({"k": [1]})) == {"k": [1]}
    source = tmp_path / "f.txt"
    source.write_text("x")
    loaded = store.get(store.put_path(source))
    assert isinstance(loaded, Path) and loaded.read_text() == "x"


def test_missing_blob_raises_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = ArtifactRef("ab" * 32, "json", 1, "builtins.int", False)
    assert not store.exists(ref.key) and store.local_path(ref.key) is None
    with pytest.raises(ArtifactNotFoundError, match="is not in the artifact store"):
        store.get(ref)


def test_put_path_of_missing_path_raises(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(SerializationError, match="does not exist"):
        store.put_path(tmp_path / "nope.csv")
