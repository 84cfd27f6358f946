from __future__ import annotations

import hashlib
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from qflow.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    SerializationError,
    StoreError,
)
from qflow.store import ArtifactRef, ArtifactStore
from qflow.store.serializers import BytesSerializer, JsonSerializer


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


def test_a_key_that_is_not_a_content_address_reads_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    secret = tmp_path / "secret"
    secret.write_text("not an artifact")
    hostile = ArtifactRef("../../secret", "bytes", 15, "builtins.bytes", False)
    with pytest.raises(ArtifactIntegrityError, match="is not a content address"):
        store.get(hostile)
    assert not store.exists(hostile.key)
    assert not store.intact(hostile)


def test_a_staging_failure_names_the_store_not_the_value(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / ".tmp").write_text("a file where the staging folder goes")
    store = ArtifactStore(str(root))
    with pytest.raises(StoreError) as info:
        store.put(np.arange(100), name="0_load")
    message = str(info.value)
    assert "Output '0_load' could not be written to the artifact store" in message
    assert str(root / ".tmp") in message and "FileExistsError" in message
    assert "ndarray" not in message


def test_a_value_that_cannot_be_serialized_is_still_blamed(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(SerializationError, match=r"Output 'gen' of type 'generator'"):
        store.put((i for i in range(3)), name="gen")


def test_small_values_stay_inline_on_a_remote_store(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://qflow-inline-{tmp_path.name}")
    small = store.put({"k": 1}, inline_max=1024)
    assert small.inline is not None and not store.exists(small.key)
    assert store.get(small) == {"k": 1}
    big = store.put(np.arange(1000), inline_max=1024)
    assert big.inline is None and store.exists(big.key)


def test_a_corrupt_local_blob_is_repaired_by_the_next_publish(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(b"a" * 100)
    blob = store.local_path(ref.key)
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(b"b" * 100)  # same size, other bytes
    with pytest.raises(ArtifactIntegrityError, match="hashes to"):
        store.get(ref)
    assert not store.intact(ref)
    assert store.put_bytes(b"a" * 100) == ref
    assert store.get(ref) == b"a" * 100 and store.intact(ref)


def test_the_store_uses_the_serializers_it_is_given(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), serializers=[JsonSerializer(), BytesSerializer()])
    assert store.put({"a": 1}).serializer == "json"
    array = store.put(np.arange(3))
    assert array.serializer == "pickle" and array.pickled  # no npy here: the last resort
    clone = pickle.loads(pickle.dumps(store))
    assert clone.serializers.names() == ["json", "bytes", "pickle"]
    np.testing.assert_array_equal(clone.get(array), np.arange(3))  # type: ignore[arg-type]


def test_a_remote_store_pickles_with_its_storage_options(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://qflow-opts-{tmp_path.name}", storage_options={"a": 1})
    ref = store.put([1, 2])
    clone = pickle.loads(pickle.dumps(store))
    assert clone.__getstate__() == {"url": store.url, "storage_options": {"a": 1}}
    assert clone.get(ref) == [1, 2]
