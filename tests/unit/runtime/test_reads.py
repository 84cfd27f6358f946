"""The file capture: what a running step (or a ``qflow exec`` script) is seen to read/write."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as pds
import pyarrow.feather as pf
import pyarrow.parquet as pq
import pytest

from qflow.runtime import reads
from qflow.store.metadata.records import DataFileRecord

reads.install()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _capture(root: Path, fn: Callable[[], Any], **options: Any) -> reads.Capture:
    capture = reads.Capture(str(root), **options)
    with reads.capturing(capture):
        fn()
    return capture


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"a": [1, 2, 3]})
    frame.to_csv("d.csv", index=False)
    frame.to_parquet("d.parquet")
    frame.to_feather("d.feather")
    frame.to_json("d.json")
    np.save("d.npy", np.arange(3))
    np.savetxt("d.txt", np.arange(3))
    np.arange(3).tofile("d.bin")
    (tmp_path / "part").mkdir()
    frame.to_parquet("part/0.parquet")
    return tmp_path


READERS = [
    pytest.param(lambda: open("d.csv").read(), "d.csv", id="open"),  # noqa: SIM115
    pytest.param(lambda: os.close(os.open("d.csv", os.O_RDONLY)), "d.csv", id="os.open"),
    pytest.param(lambda: np.load("d.npy"), "d.npy", id="numpy-load"),
    pytest.param(lambda: np.loadtxt("d.txt"), "d.txt", id="numpy-loadtxt"),
    pytest.param(lambda: np.fromfile("d.bin"), "d.bin", id="numpy-fromfile"),
    pytest.param(lambda: pd.read_csv("d.csv"), "d.csv", id="pandas-csv"),
    pytest.param(lambda: pd.read_parquet("d.parquet"), "d.parquet", id="pandas-parquet"),
    pytest.param(lambda: pd.read_feather("d.feather"), "d.feather", id="pandas-feather"),
    pytest.param(lambda: pd.read_json("d.json"), "d.json", id="pandas-json"),
    pytest.param(lambda: pq.read_table("d.parquet"), "d.parquet", id="pyarrow-parquet"),
    pytest.param(lambda: pq.ParquetFile("d.parquet").read(), "d.parquet", id="pyarrow-parquetfile"),
    pytest.param(lambda: pcsv.read_csv("d.csv"), "d.csv", id="pyarrow-csv"),
    pytest.param(lambda: pf.read_table("d.feather"), "d.feather", id="pyarrow-feather"),
    pytest.param(lambda: pa.memory_map("d.feather").read(), "d.feather", id="pyarrow-memory-map"),
    pytest.param(lambda: pa.OSFile("d.csv").read(), "d.csv", id="pyarrow-osfile"),
    pytest.param(lambda: pds.dataset("part").to_table(), "part/0.parquet", id="pyarrow-dataset"),
]


@pytest.mark.parametrize(("read", "name"), READERS)
def test_every_reader_is_seen_with_the_content_hash(
    data: Path, read: Callable[[], Any], name: str
) -> None:
    capture = _capture(data, read)
    [access] = capture.accesses()
    assert access == reads.FileAccess(
        name, _sha(data / name), (data / name).stat().st_size, (data / name).stat().st_mtime_ns
    )


WRITERS = [
    pytest.param(lambda: Path("o.txt").write_text("x"), "o.txt", id="open"),
    pytest.param(
        lambda: pd.DataFrame({"a": [1]}).to_parquet("o.parquet"), "o.parquet", id="pandas-parquet"
    ),
    pytest.param(
        lambda: pq.write_table(pa.table({"a": [1]}), "o.parquet"), "o.parquet", id="pyarrow-parquet"
    ),
    pytest.param(
        lambda: pf.write_feather(pa.table({"a": [1]}), "o.feather"),
        "o.feather",
        id="pyarrow-feather",
    ),
    pytest.param(lambda: np.save("o.npy", np.arange(2)), "o.npy", id="numpy-save"),
]


@pytest.mark.parametrize(("write", "name"), WRITERS)
def test_writes_are_recorded_with_their_final_content(
    data: Path, write: Callable[[], Any], name: str
) -> None:
    capture = _capture(data, write)
    [access] = capture.accesses()
    assert (access.path, access.write, access.sha256) == (name, True, _sha(data / name))


def test_a_file_written_then_read_is_output_not_input(data: Path) -> None:
    def step() -> None:
        Path("tmp.txt").write_text("mine")
        Path("tmp.txt").read_text()
        Path("d.csv").read_text()

    capture = _capture(data, step)
    assert [(a.path, a.write) for a in capture.accesses()] == [("d.csv", False), ("tmp.txt", True)]


def test_code_store_interpreter_and_excluded_files_are_not_reads(data: Path) -> None:
    (data / ".qflow").mkdir()
    (data / ".qflow" / "blob").write_text("x")
    (data / "helper.py").write_text("X = 1\n")
    outside = data.parent / f"{data.name}-outside.txt"
    outside.write_text("outside")

    def step() -> None:
        Path(".qflow/blob").read_text()
        Path("helper.py").read_text()
        Path(os.__file__).read_text()
        Path(np.__file__).read_text()
        Path("/proc/self/status").read_text()
        Path(outside).read_text()
        Path("d.txt").read_text()

    capture = _capture(data, step, exclude=(str(data / ".qflow"), str(data / "d.txt")))
    assert [a.path for a in capture.accesses()] == [str(outside)]


def test_a_relative_exclusion_names_a_folder_of_the_working_folder_of_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "out").mkdir(parents=True)
        (tmp_path / name / "out" / "x.txt").write_text(name)

    def step() -> None:
        for name in ("a", "b"):
            (tmp_path / name / "out" / "x.txt").read_text()

    seen = {}
    for name in ("a", "b", "a"):
        monkeypatch.chdir(tmp_path / name)
        capture = _capture(tmp_path, step, exclude=("out",))
        seen[name] = [a.path for a in capture.accesses()]
    assert seen == {"a": ["b/out/x.txt"], "b": ["a/out/x.txt"]}


def test_nothing_is_recorded_without_a_capture_and_after_it(data: Path) -> None:
    capture = _capture(data, lambda: None)
    Path("d.csv").read_text()
    pq.read_table("d.parquet")
    assert capture.accesses() == []
    assert reads.current_capture() is None


def test_a_thread_the_step_starts_reports_to_its_capture(data: Path) -> None:
    def step() -> None:
        thread = threading.Thread(target=lambda: Path("d.csv").read_text())
        thread.start()
        thread.join()

    assert [a.path for a in _capture(data, step).accesses()] == ["d.csv"]


def test_a_folder_given_to_a_reader_counts_as_its_files(data: Path) -> None:
    capture = _capture(data, lambda: pq.read_table("part"))
    assert [a.path for a in capture.accesses()] == ["part/0.parquet"]


def test_stat_cache_rehashes_only_when_size_or_mtime_changed(tmp_path: Path) -> None:
    cache = reads.StatCache()
    path = tmp_path / "f.txt"
    path.write_text("aaaa")
    old = path.stat().st_mtime_ns - 10 * 10**9
    os.utime(path, ns=(old, old))
    first = cache.digest(str(path))
    assert first is not None and first[0] == _sha(path)
    path.write_text("bbbb")  # same size; the mtime put back: the cache answers unread
    os.utime(path, ns=(old, old))
    assert cache.digest(str(path)) == first
    os.utime(path, None)  # touched: hashed again
    digest = cache.digest(str(path))
    assert digest is not None and digest[0] == _sha(path) != first[0]


def test_stat_cache_never_trusts_a_file_modified_just_before_hashing(tmp_path: Path) -> None:
    cache = reads.StatCache()
    path = tmp_path / "f.txt"
    path.write_text("aaaa")
    mtime = path.stat().st_mtime_ns
    cache.digest(str(path))
    path.write_text("bbbb")
    os.utime(path, ns=(mtime, mtime))  # racy: same size, same mtime, new content
    digest = cache.digest(str(path))
    assert digest is not None and digest[0] == _sha(path)


def test_stat_cache_is_saved_and_loaded(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("aaaa")
    os.utime(path, ns=(10**18, 10**18))
    cache = reads.StatCache()
    cache.digest(str(path))
    cache.save(tmp_path)
    again = reads.StatCache()
    again.load(tmp_path)
    assert again.entries == cache.entries == {str(path): (4, 10**18, _sha(path))}


def test_changed_reads_name_each_changed_or_deleted_file(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv", "c.csv"):
        (tmp_path / name).write_text(name)
    records = [
        reads.FileAccess(name, _sha(tmp_path / name), 5, 0).to_record()
        for name in ("a.csv", "b.csv", "c.csv")
    ]
    records.append(DataFileRecord("x", "c.csv", "0" * 64, 5))  # a qf.DataFile: not checked here
    assert reads.changed_reads(records, tmp_path) == []
    (tmp_path / "a.csv").write_text("changed")
    (tmp_path / "c.csv").unlink()
    assert reads.changed_reads(records, tmp_path) == [
        "file a.csv read by the step changed",
        "file c.csv read by the step was deleted",
    ]
