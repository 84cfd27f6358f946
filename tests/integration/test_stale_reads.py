"""The cache is never stale for data, as a user meets it: files on disk read by steps in every
way users write it, ``qflow run`` in a new process each time, the files edited between runs.

Each step reads one file of its own, so a case checks that changing that file's content
re-runs exactly that step (the reason ``qflow show`` gives names the file, the output is the
new one), that touching it without changing its content, or changing an unrelated file, keeps
every step cached.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as pf
import pyarrow.parquet as pq
import pytest

import qflow as qf

pytestmark = pytest.mark.integration

PIPELINE = """
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pcsv
import pyarrow.feather as pf
import pyarrow.parquet as pq

import qflow as qf

HERE = Path(__file__).parent


@qf.step
def datafile(path: qf.DataFile) -> int:
    return sum(map(int, Path(path).read_text().split()))


@qf.step
def str_arg(path: str) -> int:
    with open(path) as file:
        return sum(map(int, file.read().split()))


@qf.step
def path_arg(path: Path) -> int:
    return int(np.fromfile(path, dtype=np.int64).sum())


@qf.step
def computed() -> int:
    return sum(map(int, (HERE / "data" / "computed.txt").read_text().split()))


@qf.step
def numpy_load() -> int:
    return int(np.load("data/array.npy").sum())


@qf.step
def pandas_csv() -> int:
    return int(pd.read_csv("data/pandas.csv")["a"].sum())


@qf.step
def pandas_parquet() -> int:
    return int(pd.read_parquet("data/pandas.parquet")["a"].sum())


@qf.step
def pyarrow_parquet() -> int:
    return pq.read_table("data/arrow.parquet").column("a").to_pylist()[-1]


@qf.step
def pyarrow_csv() -> int:
    return sum(pcsv.read_csv("data/arrow.csv").column("a").to_pylist())


@qf.step
def pyarrow_feather() -> int:
    return sum(pf.read_table("data/arrow.feather").column("a").to_pylist())


@qf.workflow
def reads():
    return {
        "datafile": datafile("data/datafile.txt"),
        "str_arg": str_arg("data/str.txt"),
        "path_arg": path_arg(Path("data/path.bin")),
        "computed": computed(),
        "numpy_load": numpy_load(),
        "pandas_csv": pandas_csv(),
        "pandas_parquet": pandas_parquet(),
        "pyarrow_parquet": pyarrow_parquet(),
        "pyarrow_csv": pyarrow_csv(),
        "pyarrow_feather": pyarrow_feather(),
    }
"""


def _text(path: Path, values: list[int]) -> None:
    path.write_text(" ".join(map(str, values)))


def _frame(values: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"a": values})


WRITERS: dict[str, tuple[str, Callable[[Path, list[int]], Any]]] = {
    # step: (file it reads, how the test writes the values into it)
    "datafile": ("datafile.txt", _text),
    "str_arg": ("str.txt", _text),
    "path_arg": ("path.bin", lambda p, v: np.array(v, dtype=np.int64).tofile(p)),
    "computed": ("computed.txt", _text),
    "numpy_load": ("array.npy", lambda p, v: np.save(p, np.array(v))),
    "pandas_csv": ("pandas.csv", lambda p, v: _frame(v).to_csv(p, index=False)),
    "pandas_parquet": ("pandas.parquet", lambda p, v: _frame(v).to_parquet(p)),
    "pyarrow_parquet": ("arrow.parquet", lambda p, v: pq.write_table(pa.table({"a": v}), p)),
    "pyarrow_csv": ("arrow.csv", lambda p, v: pcsv.write_csv(pa.table({"a": v}), p)),
    "pyarrow_feather": ("arrow.feather", lambda p, v: pf.write_feather(pa.table({"a": v}), p)),
}
FIRST = [1, 2, 3]
CHANGED = [1, 2, 3, 10]
STEPS = list(WRITERS)


def _write(project: Path, step: str, values: list[int]) -> Path:
    name, write = WRITERS[step]
    path = project / "data" / name
    write(path, values)
    return path


def _age(path: Path) -> None:
    """Date the file an hour back, as data that was not just written (stat cache trusted)."""
    old = time.time() - 3600
    os.utime(path, (old, old))


@pytest.fixture
def data_project(project: Path) -> Path:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "stalereads"\n[tool.qflow]\nworkflow-modules = ["pipeline"]\n'
    )
    (project / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    (project / "data").mkdir()
    for step in STEPS:
        _age(_write(project, step, FIRST))
    (project / "data" / "unrelated.csv").write_text("a\n1\n")
    return project


def _run(project: Path, *args: str) -> dict[str, Any]:
    """``qflow run reads`` in a new process; its steps' status, reason and output by step."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("QFLOW_STORE", None)
    env.pop("QFLOW_ARTIFACTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "qflow", "run", "reads", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run = qf.Client(project).runs()[0]
    return {s.record.step: (s.record.status, s.record.reason or "", s.load()) for s in run.steps}


def _check(
    project: Path, edit: Callable[[], Any], rerun: str | None, reason: str, *args: str
) -> None:
    first = _run(project, *args)
    assert {step: s[0] for step, s in first.items()} == dict.fromkeys(STEPS, "succeeded")
    assert {step: s[2] for step, s in first.items()} == {
        **dict.fromkeys(STEPS, sum(FIRST)),
        "pyarrow_parquet": FIRST[-1],
    }
    edit()
    second = _run(project, *args)
    expected = {step: "cached" for step in STEPS}
    if rerun is not None:
        expected[rerun] = "succeeded"
    assert {step: s[0] for step, s in second.items()} == expected
    if rerun is not None:
        assert second[rerun][1] == reason
        assert second[rerun][2] == (CHANGED[-1] if rerun == "pyarrow_parquet" else sum(CHANGED))


@pytest.mark.parametrize("step", STEPS)
def test_changed_content_reruns_the_step_that_read_it(data_project: Path, step: str) -> None:
    name = WRITERS[step][0]
    reason = (
        f"data file path ({name}) changed"
        if step == "datafile"
        else f"file data/{name} read by the step changed"
    )
    _check(data_project, lambda: _write(data_project, step, CHANGED), step, reason)


@pytest.mark.parametrize("step", STEPS)
def test_touched_without_change_is_a_hit(data_project: Path, step: str) -> None:
    path = data_project / "data" / WRITERS[step][0]
    _check(data_project, lambda: os.utime(path, None), None, "")


@pytest.mark.parametrize("step", STEPS)
def test_rewritten_with_the_same_content_is_a_hit(data_project: Path, step: str) -> None:
    _check(data_project, lambda: _write(data_project, step, FIRST), None, "")


def test_an_unrelated_file_changed_is_a_hit(data_project: Path) -> None:
    unrelated = data_project / "data" / "unrelated.csv"
    _check(data_project, lambda: unrelated.write_text("a\n2\n"), None, "")


@pytest.mark.parametrize("step", ["str_arg", "pandas_parquet", "pyarrow_feather"])
def test_parallel_executor_sees_the_reads_of_its_workers(data_project: Path, step: str) -> None:
    name = WRITERS[step][0]
    _check(
        data_project,
        lambda: _write(data_project, step, CHANGED),
        step,
        f"file data/{name} read by the step changed",
        "--executor",
        "parallel",
        "--workers",
        "2",
    )


def test_show_lists_what_each_step_read_and_wrote(data_project: Path) -> None:
    pipeline = data_project / "pipeline.py"
    pipeline.write_text(
        pipeline.read_text().replace(
            '    return int(pd.read_csv("data/pandas.csv")["a"].sum())',
            '    frame = pd.read_csv("data/pandas.csv")\n'
            '    frame.to_parquet("out.parquet")\n'
            '    return int(frame["a"].sum())',
        )
    )
    _run(data_project)
    run = qf.Client(data_project).runs()[0]
    files = {
        f.name: f.sha256
        for f in qf.Client(data_project).metadata.data_files(run.id)
        if f.step_name == "5_pandas_csv"
    }
    assert set(files) == {"read:data/pandas.csv", "write:out.parquet"}
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "qflow", "show", run.id],
        cwd=data_project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"5_pandas_csv  read   data/pandas.csv  {files['read:data/pandas.csv'][:10]}" in shown
    assert f"5_pandas_csv  wrote  out.parquet  {files['write:out.parquet'][:10]}" in shown
