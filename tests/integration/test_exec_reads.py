"""``qflow exec`` sees what a script reads and writes, as a user runs it: a folder on disk
(not a git repository), ``qflow exec`` and ``qflow reproduce`` in new processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qflow.store import open_stores

pytestmark = pytest.mark.integration

SUMMARY = """
import pandas as pd
from pathlib import Path

total = int(pd.read_csv("data.csv")["a"].sum())
Path("out.csv").write_text(str(total))
print("total", total)
"""


def _qflow(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    environ.pop("QFLOW_STORE", None)
    environ.pop("QFLOW_ARTIFACTS", None)
    return subprocess.run(
        [sys.executable, "-m", "qflow", *args],
        cwd=folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _exec(folder: Path, script: str, **env: str) -> tuple[dict[str, Any], str]:
    """``qflow exec script`` in a new process: the run's files (meta) and its stderr."""
    done = _qflow(folder, "exec", script, env=env)
    assert done.returncode == 0, done.stderr
    metadata, _ = open_stores(folder)
    [run] = metadata.list_runs(limit=1)
    return run.meta["files"], done.stderr


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A plain folder, outside any git repository, with a script and its data."""
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "summary.py").write_text(textwrap.dedent(SUMMARY))
    (folder / "data.csv").write_text("a\n1\n2\n3\n")
    assert subprocess.run(["git", "-C", str(folder), "rev-parse"], capture_output=True).returncode
    return folder


@pytest.mark.parametrize("change", ["modified", "deleted"])
def test_reproduce_outside_git_restores_the_input_it_read(folder: Path, change: str) -> None:
    files, _ = _exec(folder, "summary.py")
    assert files["read"]["data.csv"]["sha256"] == _sha(b"a\n1\n2\n3\n")
    assert files["written"]["out.csv"]["sha256"] == _sha(b"6")
    run_id = open_stores(folder)[0].list_runs(limit=1)[0].id
    if change == "modified":
        (folder / "data.csv").write_text("a\n100\n")
    else:
        (folder / "data.csv").unlink()

    done = _qflow(folder, "reproduce", run_id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["identical"], report
    assert report["status"] == "succeeded"
    assert [o["name"] for o in report["outputs"]] == ["0_main.out.csv"]
    assert (folder / "out.csv").read_text() == "6"
    if change == "modified":
        assert "input data.csv changed since the run: the run's copy was used" in " ".join(
            report["warnings"]
        )
        assert (folder / "data.csv").read_text() == "a\n100\n"  # the user's version is back
    else:
        assert "input data.csv was missing: restored from the run's copy" in report["warnings"]
        assert (folder / "data.csv").read_text() == "a\n1\n2\n3\n"


def test_inputs_over_the_size_limit_are_not_kept(folder: Path) -> None:
    files, _ = _exec(folder, "summary.py", QFLOW_EXEC_KEEP_MAX="5")
    assert "kept" not in files["read"]["data.csv"]
    run_id = open_stores(folder)[0].list_runs(limit=1)[0].id
    (folder / "data.csv").write_text("a\n100\n")
    done = _qflow(folder, "reproduce", run_id, "--json")
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert not report["identical"]
    assert any("input data.csv changed and was not kept" in w for w in report["warnings"])


def test_exec_sees_files_outside_the_folder_and_pyarrow_reads(folder: Path) -> None:
    outside = folder.parent / "shared.parquet"
    (folder / "arrow.py").write_text(
        textwrap.dedent(
            f"""
            import pyarrow as pa
            import pyarrow.parquet as pq
            import pyarrow.feather as feather

            pq.write_table(pa.table({{"a": [1, 2]}}), {str(outside)!r})
            table = pq.read_table({str(outside)!r})
            feather.write_feather(table, "copy.feather")
            print(feather.read_table("copy.feather").num_rows)
            """
        )
    )
    files, _ = _exec(folder, "arrow.py")
    pq_bytes = outside.read_bytes()
    assert files["written"] == {
        str(outside): {"sha256": _sha(pq_bytes), "size": len(pq_bytes)},
        "copy.feather": {
            "sha256": _sha((folder / "copy.feather").read_bytes()),
            "size": (folder / "copy.feather").stat().st_size,
        },
    }
    assert files["read"] == {}  # both were written by the script first: its own output

    (folder / "reader.py").write_text(
        f"import pyarrow.parquet as pq\nprint(pq.read_table({str(outside)!r}).num_rows)\n"
    )
    files, _ = _exec(folder, "reader.py")
    assert set(files["read"]) == {str(outside)}
    assert files["read"][str(outside)]["sha256"] == _sha(pq_bytes)


CHILDREN = """
import multiprocessing
import subprocess
import sys
from pathlib import Path

def forked():
    Path("forked_out.csv").write_text(Path("forked_in.txt").read_text())

subprocess.run([sys.executable, "child.py"], check=True)
process = multiprocessing.get_context("fork").Process(target=forked)
process.start()
process.join()
"""

CHILD = """
import pandas as pd
from pathlib import Path

Path("child_out.csv").write_text(str(pd.read_parquet("child.parquet")["a"].sum()))
"""


def test_python_subprocesses_report_what_they_read_and_write(folder: Path) -> None:
    import pandas as pd

    pd.DataFrame({"a": [1, 2]}).to_parquet(folder / "child.parquet")
    (folder / "forked_in.txt").write_text("from the fork")
    (folder / "children.py").write_text(textwrap.dedent(CHILDREN))
    (folder / "child.py").write_text(textwrap.dedent(CHILD))
    files, stderr = _exec(folder, "children.py")
    assert set(files["read"]) == {"child.parquet", "forked_in.txt"}
    assert set(files["written"]) == {"child_out.csv", "forked_out.csv"}
    assert files["warnings"] == []
    assert "warning" not in stderr


def test_what_cannot_be_seen_is_said_on_stderr(folder: Path) -> None:
    (folder / "blind.py").write_text(
        "import subprocess, sys\n"
        "subprocess.run(['cat', 'data.csv'], check=True, capture_output=True)\n"
        "subprocess.run([sys.executable, '-I', '-c', 'open(\"data.csv\").read()'], check=True)\n"
    )
    files, stderr = _exec(folder, "blind.py")
    assert files["read"] == {}
    assert (
        "qflow exec: warning: 1 Python subprocess of the script did not report the files "
        "they opened (started with -I or -S, or with an environment without PYTHONPATH)"
    ) in stderr
    assert (
        "qflow exec: warning: files read or written by the script's non-Python "
        "subprocesses (cat) cannot be seen and are not recorded"
    ) in stderr
    assert len(files["warnings"]) == 2
