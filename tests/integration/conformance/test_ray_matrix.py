"""The conformance shapes on the ray executor, all on one warm Ray cluster.

The cluster and the runs live in a loopback-only network namespace (``ray_driver.py``, started
once per module as in tests/integration/test_ray.py); the project folders are on the shared
file system, so each test reads its case back here and checks the same invariants as on local
and parallel, hashes included.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .invariants import (
    NO_FAULT,
    RAISES,
    SHAPES,
    Shape,
    check_nothing_open,
    check_outputs_loadable,
    check_statuses,
    check_values,
    graph_of,
    load_run,
    output_keys,
)

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("ray_driver.py")
PORT = 6381


def _namespace_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-n", "-p", "-f", "--mount-proc", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="module")
def ray_report() -> Iterator[dict[str, Any]]:
    if not _namespace_available():
        pytest.skip("needs root and unshare/ip to make a loopback-only network namespace")
    work = Path("/tmp") / f"qfconf-{secrets.token_hex(4)}"  # short: Ray's socket paths
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QFLOW_", "RAY_"))}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    command = ['ip link set lo up && exec "$0" "$@"', sys.executable, str(DRIVER)]
    try:
        done = subprocess.run(
            ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", *command,
             str(work), str(PORT)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
        )  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
        if done.returncode != 0 or not lines:
            pytest.fail(f"ray driver failed ({done.returncode}):\n{done.stderr[-6000:]}")
        yield json.loads(lines[-1].removeprefix("REPORT "))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("fault", [NO_FAULT, RAISES], ids=[NO_FAULT, RAISES])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_conformance_on_ray(
    shape: Shape, fault: str, ray_report: dict[str, Any], local_keys: Any
) -> None:
    entry = ray_report[f"{shape.name}-{fault}"]
    assert "error" not in entry, entry.get("error")
    project, ctl = Path(entry["project"]), Path(entry["ctl"])
    run = load_run(project, entry["run_id"])
    assert run.meta.get("executor") == "ray"
    check_nothing_open(run)
    check_statuses(run, shape, fault, graph_of(shape, ctl))
    check_outputs_loadable(run)
    if fault == NO_FAULT:
        check_values(run, shape)
    plan = {"fail": shape.victim} if fault == RAISES else {}
    assert output_keys(run) == local_keys(shape, **plan)
