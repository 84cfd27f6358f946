"""``qflow lineage --data`` (issue 15): relative paths from any folder, short hashes, and only
the runs that read that content."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import ArtifactNotFoundError
from qflow.provenance import lineage
from qflow.provenance.script import exec_script
from qflow.store import open_stores

INGEST = """from pathlib import Path

import qflow as qf


@qf.step
def load(path: qf.DataFile) -> int:
    return len(Path(path).read_bytes())


@qf.workflow
def ingest(path: str = "data/input.csv"):
    return load(path)
"""


@pytest.fixture
def data_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "ing"\n[tool.qflow]\nworkflow-modules = ["ingestwf"]\n'
    )
    (project / "ingestwf.py").write_text(INGEST)
    (project / "data").mkdir()
    (project / "sub").mkdir()
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "ingestwf", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return project


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _users(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, list[str]]:
    assert run_cli(["lineage", "--json", *args]) == 0
    found = json.loads(capsys.readouterr().out)
    return found["data_file"]["sha256"], [u["run_id"] for u in found["used_by"]]


def test_relative_paths_from_another_folder_and_short_hashes(
    data_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = data_project / "data" / "input.csv"
    old, new = b"a,b\n1,2\n", b"a,b\n1,2\n3,4\n"
    csv.write_bytes(old)
    first = qf.run("ingest", project_dir=data_project)
    csv.write_bytes(new)
    second = qf.run("ingest", project_dir=data_project)
    third = qf.run("ingest", project_dir=data_project)  # the same content again: cached
    assert third.step("load").status == "cached"
    capsys.readouterr()

    monkeypatch.chdir(data_project / "sub")
    # The file as it is now: only the runs that read this content.
    for path in ("../data/input.csv", "data/input.csv", str(csv)):
        sha, runs = _users(capsys, "--data", path)
        assert sha == _sha(new) and runs == [second.id, third.id], path
    # An older content by a short prefix of its hash.
    sha, runs = _users(capsys, "--data", _sha(old)[:8])
    assert sha == _sha(old) and runs == [first.id]
    sha, runs = _users(capsys, "--data", _sha(new))
    assert runs == [second.id, third.id]
    assert run_cli(["lineage", "--data", "../data/input.csv"]) == 0
    tree = capsys.readouterr().out
    assert _sha(new)[:10] in tree and second.id in tree and first.id not in tree

    # A content no step read: the versions that were read are named.
    csv.write_bytes(b"never read")
    with pytest.raises(ArtifactNotFoundError, match=r"as it is now .*other versions: .*2 runs"):
        lineage.forward(
            open_stores(data_project)[0],
            data="../data/input.csv",
            cwd=Path.cwd(),
            root=data_project,
        )
    assert run_cli(["lineage", "--data", "../data/input.csv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: No step read") and err.count("Error") == 1
    assert _sha(old)[:12] in err and "Traceback" not in err

    # Gone from disk: a path read in two versions must be told apart by hash.
    csv.unlink()
    with pytest.raises(ArtifactNotFoundError, match="was read in several versions"):
        lineage.forward(open_stores(data_project)[0], data="data/input.csv", root=data_project)


def test_an_ambiguous_short_hash_names_the_candidates(
    data_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, bytes] = {}
    for i in itertools.count():
        content = f"row {i}\n".encode()
        prefix = _sha(content)[:4]
        if prefix in seen:
            break
        seen[prefix] = content
    pair = (seen[prefix], content)
    for n, content in enumerate(pair):
        (data_project / "data" / f"f{n}.csv").write_bytes(content)
        qf.run("ingest", {"path": f"data/f{n}.csv"}, project_dir=data_project)
    capsys.readouterr()
    assert run_cli(["lineage", "--data", prefix]) == 1
    err = capsys.readouterr().err
    assert f"Data sha256 prefix {prefix!r} matches 2 files" in err and "more characters" in err
    sha, _ = _users(capsys, "--data", _sha(pair[1])[:12])
    assert sha == _sha(pair[1])


def test_a_script_read_recorded_relative_to_the_root_is_found_from_a_subfolder(
    data_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_project / "data.txt").write_text("42")
    (data_project / "read.py").write_text("open('data.txt').read()\n")
    run = exec_script("read.py", project_dir=data_project)
    capsys.readouterr()
    monkeypatch.chdir(data_project / "sub")
    sha, runs = _users(capsys, "--data", "../data.txt")
    assert sha == _sha(b"42") and runs == [run.run_id]
    assert run_cli(["lineage", "--data", "nothing.csv"]) == 1
    assert "No step read a data file" in capsys.readouterr().err
