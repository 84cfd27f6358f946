"""Runs the conformance shapes on ONE warm Ray cluster; test_ray_matrix.py starts this script
inside a loopback-only network namespace (see tests/integration/test_ray.py).

Usage: python ray_driver.py WORKDIR PORT. Prints one line ``REPORT <json>``: per case, the
project and control folders and the run id, which the tests read back from the host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from qflow.errors import StepFailedError
from tests.integration.conformance.invariants import RAISES, SHAPES, write_plan

RAY = str(Path(sys.executable).with_name("ray"))
FAULTS = ["none", RAISES]


def main() -> None:
    import qflow as qf

    work, port = Path(sys.argv[1]), int(sys.argv[2])
    subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(work / "ray")],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    report: dict[str, Any] = {}
    try:
        for shape in SHAPES:
            for fault in FAULTS:
                label = f"{shape.name}-{fault}"
                project, ctl = work / label / "proj", work / label / "ctl"
                project.mkdir(parents=True)
                write_plan(ctl, **({"fail": shape.victim} if fault == RAISES else {}))
                entry: dict[str, Any] = {"project": str(project), "ctl": str(ctl)}
                try:
                    run = qf.run(shape.workflow, {"ctl": str(ctl)}, project_dir=project,
                                 executor="ray",
                                 executor_options={"address": f"127.0.0.1:{port}"})  # fmt: skip
                    entry["run_id"] = run.id
                except StepFailedError as exc:
                    entry["run_id"] = exc.run_id
                except Exception:
                    entry["error"] = traceback.format_exc()
                report[label] = entry
    finally:
        subprocess.run([RAY, "stop", "--force"], timeout=60, capture_output=True, check=False)
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
