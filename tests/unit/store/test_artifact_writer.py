"""The writer: bytes hashed as they are staged (big chunks in a thread, O_DIRECT blocks padded
and cut back), published under their sha256, and nothing left behind when a dump fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from qflow.errors import ConfigError, SerializationError
from qflow.store.artifacts import ArtifactStore, verify_policy

MiB = 1 << 20


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1, 17 * MiB])
def test_bytes_are_published_whole_under_their_sha256(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).bytes(size)
    store = ArtifactStore(str(tmp_path))
    ref = store.put_bytes(data)
    assert ref.key == hashlib.sha256(data).hexdigest() and ref.size == size
    blob = store.local_path(ref.key)
    assert blob is not None and blob.read_bytes() == data
    assert store.get(ref) == data
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_a_value_streamed_in_big_chunks_hashes_like_its_bytes(tmp_path: Path) -> None:
    array = np.random.default_rng(1).random((3, MiB))  # 24 MiB: hashed in a thread per chunk
    store = ArtifactStore(str(tmp_path))
    ref = store.put(array)
    blob = store.local_path(ref.key)
    assert blob is not None
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == ref.key
    np.testing.assert_array_equal(store.get(ref), array)  # type: ignore[arg-type]


class _FailsHalfway:
    """Pickles to 10 MiB of bytes, then raises: a dump that fails after staging began."""

    def __reduce__(self) -> tuple[object, ...]:
        raise RuntimeError("the value broke while it was written")


def test_a_failing_dump_leaves_no_temp_file_and_blames_the_value(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    big = [np.zeros(10 * MiB, dtype=np.uint8).tobytes(), _FailsHalfway()]
    with pytest.raises(SerializationError, match="the value broke while it was written"):
        store.put(big, name="3_fit")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_unknown_verify_policy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFLOW_VERIFY", "sometimes")
    with pytest.raises(ConfigError, match="'sometimes' is not a verify policy"):
        verify_policy()
