"""The cache is never stale, as a user meets it: a project folder on disk, ``qflow run`` in a
new process each time, the user's source files edited between runs.

Each case edits one file and checks which steps re-run, that the reason ``qflow show`` gives
names the change, and that every output (downstream ones included) has the right value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import qflow as qf

pytestmark = pytest.mark.integration

PIPELINE = '''
import qflow as qf
from qflow.store.serializers import register

import cache_helpers
from cache_helpers import OFFSET, Model


class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees


class CelsiusSerializer:
    name = "celsius"
    version = "1"
    pickled = False

    def matches(self, value):
        return isinstance(value, Celsius)

    def dump(self, value, sink):
        sink.write(f"{value.degrees} °C, format {self.version}".encode())

    def load(self, source):
        data = source.read_bytes() if hasattr(source, "read_bytes") else source.read()
        return Celsius(float(data.decode().split()[0]))


register(CelsiusSerializer())


def double(x):
    return x * 2


@qf.step
def same_module(x: int) -> int:
    """Doubles x."""
    return double(x)  # the helper is in this file


@qf.step
def other_module(x: int) -> int:
    return cache_helpers.scale(x)


@qf.step
def method(x: int) -> int:
    return Model().predict(x)


@qf.step
def constant(x: int) -> int:
    return x + OFFSET


@qf.step(outputs=("train", "test"))
def split(x: int):
    return x, -x


@qf.step
def fit(train: int) -> int:
    return train * 10


@qf.step
def temperature(x: int) -> Celsius:
    return Celsius(x)


@qf.workflow
def matrix(x: int | float = 1):  # x=1.0 is checked against the signature at launch
    parts = split(x)
    return {
        "same_module": same_module(x),
        "other_module": other_module(x),
        "method": method(x),
        "constant": constant(x),
        "fit": fit(parts.train),
        "temperature": temperature(x),
    }
'''

HELPERS = """
OFFSET = 5


class Model:
    k = 3

    def predict(self, x):
        return x * self.k


def scale(x):
    return x + 100
"""

UNRELATED = """
def unused(x):
    return x
"""

FIRST = {
    "0_split": {"train": 1, "test": -1},
    "1_same_module": 2,
    "2_other_module": 101,
    "3_method": 3,
    "4_constant": 6,
    "5_fit": 10,
    "6_temperature": ("celsius", "1"),
}

CASES = [
    # (file, old, new, steps that must re-run, reason fragment, changed outputs)
    pytest.param(
        "pipeline.py",
        "return x * 2",
        "return x * 4",
        {"1_same_module"},
        "helper double() in pipeline.py changed",
        {"1_same_module": 4},
        id="helper-same-module",
    ),
    pytest.param(
        "cache_helpers.py",
        "return x + 100",
        "return x + 200",
        {"2_other_module"},
        "helper scale() in cache_helpers.py changed",
        {"2_other_module": 201},
        id="helper-other-module",
    ),
    pytest.param(
        "cache_helpers.py",
        "return x * self.k",
        "return x * self.k + 1",
        {"3_method"},
        "method Model.predict() in cache_helpers.py changed",
        {"3_method": 4},
        id="method-of-project-class",
    ),
    pytest.param(
        "cache_helpers.py",
        "OFFSET = 5",
        "OFFSET = 7",
        {"4_constant"},
        "constant OFFSET in cache_helpers.py changed",
        {"4_constant": 8},
        id="module-constant",
    ),
    pytest.param(
        "pipeline.py",
        'outputs=("train", "test")',
        'outputs=("test", "train")',
        {"0_split", "5_fit"},
        "outputs (train, test) → (test, train)",
        {"0_split": {"train": -1, "test": 1}, "5_fit": -10},
        id="output-names-reordered",
    ),
    pytest.param(
        "pipeline.py",
        'version = "1"',
        'version = "2"',
        {"6_temperature"},
        "serializer celsius changed (1 → 2)",
        {"6_temperature": ("celsius", "2")},
        id="serializer-version",
    ),
    pytest.param(
        "pipeline.py",
        "# the helper is in this file",
        "# the helper is defined above",
        set(),
        "",
        {},
        id="comment",
    ),
    pytest.param(
        "cache_helpers.py",
        "return x + 100",
        "return   (x+100)",
        set(),
        "",
        {},
        id="whitespace",
    ),
    pytest.param(
        "pipeline.py",
        '"""Doubles x."""',
        '"""Doubles x, returns an int."""',
        set(),
        "",
        {},
        id="docstring",
    ),
    pytest.param(
        "unrelated.py",
        "return x",
        "return x + 1",
        set(),
        "",
        {},
        id="unrelated-module",
    ),
]


@pytest.fixture
def user_project(project: Path) -> Path:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "stalecache"\n[tool.qflow]\nworkflow-modules = ["pipeline"]\n'
    )
    (project / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    (project / "cache_helpers.py").write_text(textwrap.dedent(HELPERS))
    (project / "unrelated.py").write_text(textwrap.dedent(UNRELATED))
    return project


def _qflow(project: Path, *args: str) -> str:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("QFLOW_STORE", None)
    env.pop("QFLOW_ARTIFACTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "qflow", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run(project: Path, *overrides: str) -> dict[str, Any]:
    """``qflow run matrix`` in a new process; the run's steps as ``qflow show --json`` has them."""
    _qflow(project, "run", "matrix", *overrides)
    run_id = json.loads(_qflow(project, "runs", "--json"))[0]["id"]
    steps = json.loads(_qflow(project, "show", run_id, "--json"))["steps"]
    return {"id": run_id, "steps": {s["name"]: s for s in steps}}


def _values(project: Path, run_id: str) -> dict[str, Any]:
    run = qf.Client(project).run(run_id)
    values: dict[str, Any] = {
        "0_split": {o: run.step("0_split").load(o) for o in ("train", "test")}
    }
    for name in ("1_same_module", "2_other_module", "3_method", "4_constant", "5_fit"):
        values[name] = run.step(name).load()
    written = run.step("6_temperature").record.outputs["return"]
    values["6_temperature"] = (written.serializer, written.serializer_version)
    return values


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path.name}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(("file", "old", "new", "rerun", "reason", "changed"), CASES)
def test_an_edit_reruns_exactly_what_it_changes(
    user_project: Path,
    file: str,
    old: str,
    new: str,
    rerun: set[str],
    reason: str,
    changed: dict[str, Any],
) -> None:
    first = _run(user_project)
    assert {s["status"] for s in first["steps"].values()} == {"succeeded"}
    assert _values(user_project, first["id"]) == FIRST

    _edit(user_project / file, old, new)
    second = _run(user_project)

    statuses = {name: s["status"] for name, s in second["steps"].items()}
    assert statuses == {n: "succeeded" if n in rerun else "cached" for n in statuses}
    for name in rerun - {"5_fit"}:
        assert reason in second["steps"][name]["reason"]
    assert _values(user_project, second["id"]) == {**FIRST, **changed}


def test_reverting_a_helper_serves_the_original_output(user_project: Path) -> None:
    helpers = user_project / "cache_helpers.py"
    original = _run(user_project)
    _edit(helpers, "return x + 100", "return x + 200")
    edited = _run(user_project)
    assert _values(user_project, edited["id"])["2_other_module"] == 201
    _edit(helpers, "return x + 200", "return x + 100")
    reverted = _run(user_project)
    step = reverted["steps"]["2_other_module"]
    assert step["status"] == "cached"
    assert step["reason"] == f"cached from {original['id']}/2_other_module"
    assert _values(user_project, reverted["id"]) == FIRST


def test_diff_shows_the_changed_helper_and_a_param_type(user_project: Path) -> None:
    first = _run(user_project, "x=1")
    _edit(user_project / "cache_helpers.py", "return x + 100", "return x + 200")
    second = _run(user_project, "x=1.0")
    assert second["steps"]["1_same_module"]["reason"] == "param x: 1 (int) → 1.0 (float)"

    text = _qflow(user_project, "diff", first["id"], second["id"])
    assert "x: 1 (int) → 1.0 (float)" in text
    assert "helper scale() in cache_helpers.py changed" in text
    assert "-    return x + 100\n+    return x + 200" in text


DEPENDENT = """
import qflow as qf
import fakedep


@qf.step
def uses_dependency(x: int) -> int:
    return fakedep.bump(x)


@qf.workflow
def dependent(x: int = 1):
    return uses_dependency(x)
"""


def test_a_dependency_version_change_reruns_the_steps_that_use_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed distribution (in a ``site-packages`` folder on the path, with its
    ``.dist-info``) counts by name and version: upgrading it re-runs the step that calls it,
    even when its code is not walked."""
    site = project / "env" / "site-packages"
    (site / "fakedep").mkdir(parents=True)
    (site / "fakedep" / "__init__.py").write_text("def bump(x):\n    return x + 1\n")
    info = site / "fakedep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedep\nVersion: 1.0\n")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "dep"\n[tool.qflow]\nworkflow-modules = ["dependent"]\n'
    )
    (project / "dependent.py").write_text(textwrap.dedent(DEPENDENT))
    monkeypatch.setenv("PYTHONPATH", str(site))
    _qflow(project, "run", "dependent")
    _qflow(project, "run", "dependent")  # unchanged: a hit
    info.rename(site / "fakedep-1.1.dist-info")
    (site / "fakedep-1.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakedep\nVersion: 1.1\n"
    )
    _qflow(project, "run", "dependent")
    runs = json.loads(_qflow(project, "runs", "--json"))
    shown = [json.loads(_qflow(project, "show", r["id"], "--json"))["steps"][0] for r in runs]
    assert [s["status"] for s in reversed(shown)] == ["succeeded", "cached", "succeeded"]
    assert "fakedep 1.0 → 1.1" in shown[0]["reason"]
