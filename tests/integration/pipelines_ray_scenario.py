"""The ports (Kedro's spaceflights, Metaflow's 02-statistics and 04-playlist-plus) on a real
one-node Ray cluster and on the local executor, each in a project of its own;
test_pipelines_ray.py runs this script inside a loopback-only network namespace, as
test_ray.py does, so nothing Ray opens is reachable from outside this machine.

Each executor runs the whole workflows (``qf.run``), ``data_science`` with its workflow
parameter bound to the ``spaceflights`` run's output (``qflow run data_science --from RUN``),
a partial run (``--from RUN --from-steps split_data --to-steps train_model``) and a workflow
with named calls, the partial ones through the ``qflow`` command with ``--no-cache`` so their
steps run on the executor rather than come from the cache.

Usage: python pipelines_ray_scenario.py WORKDIR PORT. Prints one line ``REPORT <json>``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from tests.fixtures.ports import run_ports

RAY = str(Path(sys.executable).with_name("ray"))


def main() -> None:
    work, port = Path(sys.argv[1]), int(sys.argv[2])
    address = f"127.0.0.1:{port}"
    subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(work / "ray")],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    report: dict[str, Any] = {}
    try:
        for name, options in (("local", None), ("ray", {"address": address})):
            try:
                report[name] = run_ports(work / name, name, options)
            except Exception:
                report[name] = {"error": traceback.format_exc()}
    finally:
        subprocess.run([RAY, "stop", "--force"], timeout=60, capture_output=True, check=False)
    print("REPORT " + json.dumps(report, default=str))


if __name__ == "__main__":
    main()
