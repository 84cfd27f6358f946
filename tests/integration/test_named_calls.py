"""Named step calls (``fit.named("strong")(...)``) through the ``qflow`` command: a name is the
call's stable key, so ``qflow diff`` pairs the calls of two runs of an edited workflow file by
name, ``--from-steps``/``--rerun``/``qflow logs`` and the dashboard take it, and bad names are
refused before anything is recorded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import free_port, running

pytestmark = pytest.mark.integration

QFLOW = str(Path(sys.executable).with_name("qflow"))

TRAIN = """\
import qflow as qf


@qf.step
def make(n: int) -> list[float]:
    return [float(i) for i in range(n)]


@qf.step
def fit(xs: list[float], C: float) -> float:
    print(f"fitting with C={C}")
    return sum(x * C for x in xs)


@qf.step
def pick(a: float, b: float) -> float:
    return max(a, b)


@qf.workflow
def train(n: int = 4):
    xs = make(n)
{calls}
    return pick(strong, weak)
"""

NAMED = """\
    strong = fit.named("strong")(xs, C={strong})
    weak = fit.named("weak")(xs, C={weak})"""

NAMED_SWAPPED = """\
    weak = fit.named("weak")(xs, C={weak})
    strong = fit.named("strong")(xs, C={strong})"""

PLAIN = """\
    strong = fit(xs, C={strong})
    weak = fit(xs, C={weak})"""

PLAIN_SWAPPED = """\
    weak = fit(xs, C={weak})
    strong = fit(xs, C={strong})"""


def qflow(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QFLOW, *args],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )  # fmt: skip


def write(folder: Path, calls: str, strong: float, weak: float) -> None:
    text = TRAIN.replace("{calls}", calls.format(strong=strong, weak=weak))
    (folder / "train.py").write_text(text)


def run(folder: Path, *args: str) -> str:
    """``qflow run train ARGS``; the new run's id, as the command prints it."""
    done = qflow(folder, "run", "train", *args)
    found = re.search(r"Run (\w+) succeeded", done.stdout)
    assert done.returncode == 0 and found is not None, done.stdout + done.stderr
    return found.group(1)


def steps(folder: Path, run_id: str) -> dict[str, dict[str, object]]:
    done = qflow(folder, "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return {s["name"]: s for s in json.loads(done.stdout)["steps"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "named"\n[tool.qflow]\nworkflow-modules = ["train"]\n'
    )
    return tmp_path


def test_diff_pairs_reordered_calls_by_their_names(project: Path) -> None:
    write(project, NAMED, strong=0.1, weak=1.0)
    before = run(project)
    # The file is edited: the calls swap places and both change their parameter.
    write(project, NAMED_SWAPPED, strong=0.2, weak=2.0)
    after = run(project)

    recorded = steps(project, after)
    assert list(recorded) == ["0_make", "weak", "strong", "3_pick"]
    # The reason a call ran compares it with the earlier call of the same name.
    assert recorded["strong"]["reason"] == "param C: 0.1 → 0.2"
    assert recorded["weak"]["reason"] == "param C: 1.0 → 2.0"

    done = qflow(project, "diff", before, after, "--json")
    assert done.returncode == 0, done.stderr
    diff = json.loads(done.stdout)
    assert diff["cache"]["strong"] == ["param C: 0.1 → 0.2"]
    assert diff["cache"]["weak"] == ["param C: 1.0 → 2.0"]
    assert diff["matched"] == {}
    assert diff["code"] == {}


def test_without_names_the_same_edit_pairs_calls_by_position(project: Path) -> None:
    """What names are for: unnamed, the first call of run b is paired with the first of run
    a, although it is the other call."""
    write(project, PLAIN, strong=0.1, weak=1.0)
    before = run(project)
    write(project, PLAIN_SWAPPED, strong=0.2, weak=2.0)
    after = run(project)

    diff = json.loads(qflow(project, "diff", before, after, "--json").stdout)
    assert diff["cache"]["1_fit"] == ["param C: 0.1 → 2.0"]


def test_named_calls_on_the_command_line(project: Path) -> None:
    write(project, NAMED, strong=0.1, weak=1.0)
    whole = run(project)

    part = run(project, "--from", whole, "--from-steps", "weak", "--to-steps", "weak", "--no-cache")
    recorded = steps(project, part)
    assert list(recorded) == ["0_make", "weak"]
    assert recorded["0_make"]["status"] == "cached"
    assert whole in str(recorded["0_make"]["reason"])
    assert recorded["weak"]["status"] == "succeeded"

    again = steps(project, run(project, "--rerun", "strong"))
    assert again["strong"]["status"] == "succeeded"
    assert again["weak"]["status"] == "cached"

    logs = qflow(project, "logs", whole, "strong")
    assert logs.returncode == 0, logs.stderr
    assert "fitting with C=0.1" in logs.stdout
    assert "C=1.0" not in logs.stdout


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        (
            NAMED.replace('"weak"', '"strong"'),
            "Workflow 'train' has two step calls named 'strong'",
        ),
        (
            NAMED.replace('"weak"', '"weak model"'),
            "Step call name 'weak model' is not allowed: a call name starts with a letter",
        ),
        (NAMED.replace('"weak"', '"pick"'), "Step call name 'pick' in workflow 'train' is also"),
    ],
    ids=["duplicate", "invalid", "a-step-name"],
)
def test_bad_call_names_are_refused_before_anything_is_recorded(
    project: Path, calls: str, message: str
) -> None:
    write(project, calls, strong=0.1, weak=1.0)
    done = qflow(project, "run", "train")
    assert done.returncode == 1
    assert message in done.stderr
    assert "Hint:" in done.stderr
    assert "train.py:" in done.stderr  # where the call is
    assert "Traceback" not in done.stderr
    listed = qflow(project, "runs", "--json")
    assert listed.returncode != 0 or json.loads(listed.stdout) == []


def test_the_dashboard_shows_and_takes_call_names(project: Path) -> None:
    write(project, NAMED, strong=0.1, weak=1.0)
    run_id = run(project)
    token_file = project / "token"
    token_file.write_text("named-calls-token\n")
    token_file.chmod(0o600)
    port = free_port()
    command = [QFLOW, "ui", "--port", str(port), "--token-file", str(token_file)]
    command += ["--project", str(project)]
    headers = {"Authorization": "Bearer named-calls-token"}
    with running(command, f"http://127.0.0.1:{port}", project / "ui.log") as url:
        graph = httpx.get(f"{url}/api/runs/{run_id}/graph", headers=headers, timeout=60).json()
        logs = httpx.get(f"{url}/api/runs/{run_id}/logs?step=weak", headers=headers, timeout=60)
    assert graph["source"] == "traced"
    assert [(n["name"], n["step"]) for n in graph["nodes"]] == [
        ("0_make", "make"),
        ("strong", "fit"),
        ("weak", "fit"),
        ("3_pick", "pick"),
    ]
    assert '["strong (fit)"]' in graph["mermaid"]
    assert [entry["name"] for entry in logs.json()] == ["weak"]
    assert "fitting with C=1.0" in logs.json()[0]["stdout"]
