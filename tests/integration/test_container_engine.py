"""A containerised step on a real engine: Debian's podman, an image built on this machine
from a Debian root made with Debian's packages (mmdebstrap: dash, coreutils, base-files; no
pull), inputs mounted read-only, outputs collected.

.ci/run installs podman, runc and mmdebstrap, and makes the root
(``~/.cache/qflow-ci/debian-root.tar``, or ``$QFLOW_TEST_DEBIAN_ROOT``). The engine gets a
containers.conf with
runc and explicit ulimits: on the CI machine (cgroup v1/v2 hybrid, capped rlimits) crun
refuses to start any container ("cgroups in hybrid mode not supported", "setrlimit
RLIMIT_NOFILE: Operation not permitted"); the command QFlow runs is the same either way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qflow.client import Client

pytestmark = pytest.mark.integration

IMAGE = "localhost/qflow-test-debian:1"
DEBIAN_ROOT = Path(
    os.environ.get("QFLOW_TEST_DEBIAN_ROOT")
    or Path.home() / ".cache" / "qflow-ci" / "debian-root.tar"
)

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
"""

WORKFLOW = f"""\
from pathlib import Path

import qflow as qf


@qf.step
def make_input(folder: str) -> Path:
    path = Path(folder) / "scan.txt"
    path.write_text("raw scan\\n")
    return path


@qf.step(image={IMAGE!r}, cache=False)
def process(scan: Path, times: int) -> list[str]:
    out = "/qflow/outputs"
    return [
        "sh", "-c",
        f"for i in $(seq {{times}}); do cat {{scan}}; done > {{out}}/repeated.txt && "
        f"sha256sum {{scan}} | cut -d' ' -f1 > {{out}}/hash.txt && "
        f"(echo changed >> {{scan}} 2>/dev/null && echo writable || echo read-only)"
        f" > {{out}}/input_mode.txt && "
        f"mkdir {{out}}/nested && id -u > {{out}}/nested/uid.txt && "
        f"echo $QFLOW_STEP > {{out}}/step.txt && pwd > {{out}}/workdir.txt && "
        f"cat /etc/debian_version > {{out}}/debian.txt && echo container says hello",
    ]


@qf.step
def summarize(folder: Path) -> dict:
    return {{
        p.relative_to(folder).as_posix(): p.read_text().strip()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }}


@qf.workflow
def containerised(folder: str, times: int = 2):
    return summarize(process(make_input(folder), times=times))
"""


def podman() -> str:
    path = shutil.which("podman")
    if path is None or shutil.which("runc") is None:
        pytest.fail("podman or runc is missing: apt-get install podman runc (.ci/run does)")
    if not DEBIAN_ROOT.is_file():
        pytest.fail(
            f"{DEBIAN_ROOT} is missing: mmdebstrap --variant=extract "
            f"--include=dash,coreutils,base-files bookworm {DEBIAN_ROOT} (.ci/run does)"
        )
    return path


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment for podman, with the image built on this machine from the Debian root:
    imported as a base, then built on with a Containerfile (a RUN step included)."""
    folder = tmp_path_factory.mktemp("engine")
    (folder / "containers.conf").write_text(CONTAINERS_CONF)
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(folder / "containers.conf"),
        "QFLOW_CONTAINER_ENGINE": "podman",
    }
    engine = podman()
    base = f"{IMAGE}-root"
    imported = subprocess.run(
        [engine, "import", str(DEBIAN_ROOT), base], env=env, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    context = folder / "context"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"FROM {base}\n"
        'ENV PATH="/usr/local/bin:/usr/bin:/bin"\n'
        "RUN mkdir -p /qflow && sha256sum --version > /qflow/built-with.txt\n"
    )
    build = subprocess.run(
        [engine, "build", "--pull=never", "-q", "-t", IMAGE, str(context)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    yield env
    subprocess.run([engine, "rmi", "-f", IMAGE, base], env=env, capture_output=True, check=False)


def test_a_step_runs_in_a_locally_built_image(
    project: Path, tmp_path: Path, engine_env: dict[str, str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "boxed"\n[tool.qflow]\nworkflow-modules = ["boxwf"]\n'
    )
    (project / "boxwf.py").write_text(WORKFLOW)
    inputs = tmp_path / "in"
    inputs.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "qflow", "run", "containerised", f"folder={inputs}", "times=3"],
        cwd=project,
        env={**engine_env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    client = Client(project)
    (run,) = client.runs()
    summary = run.step("summarize").load()
    assert summary == {
        "repeated.txt": "raw scan\nraw scan\nraw scan",
        "hash.txt": summary["hash.txt"],
        "input_mode.txt": "read-only",
        "nested/uid.txt": str(os.getuid()),
        "step.txt": "1_process",
        "workdir.txt": "/qflow/work",
        "debian.txt": summary["debian.txt"],
    }
    assert summary["debian.txt"][:2].isdigit()  # /etc/debian_version of the root, e.g. 12.12
    assert summary["hash.txt"] == hashlib.sha256(b"raw scan\n").hexdigest()
    assert (inputs / "scan.txt").read_text() == "raw scan\n"  # the mount was read-only
    logs = subprocess.run(
        [sys.executable, "-m", "qflow", "logs", run.id, "1_process"],
        cwd=project,
        env={**engine_env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert logs.returncode == 0, logs.stderr
    assert "container says hello" in logs.stdout


def test_a_failing_container_fails_the_step(
    project: Path, tmp_path: Path, engine_env: dict[str, str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "boxed"\n[tool.qflow]\nworkflow-modules = ["boxwf"]\n'
    )
    (project / "boxwf.py").write_text(WORKFLOW.replace("echo container says hello", "exit 3"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "qflow", "run", "containerised", f"folder={inputs}"],
        cwd=project,
        env={**engine_env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"the container ({IMAGE}) exited with code 3" in done.stdout + done.stderr
