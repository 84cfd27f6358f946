"""Metric latency: time from ``qf.log_metric`` in a running step to the point being readable
from another process (a reader polling the SQLite store, as the dashboard or an Optuna pruner
does).

A step logs one point every 0.2 s (a slow training loop, the case a size-triggered flush
never serves) and writes the wall time of each call to a file; a reader process polls the
store every 10 ms and notes when each point appears. Reports the median and maximum latency
on the local and parallel executors.

    .venv/bin/python benchmarks/metric_latency.py [--points N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import qflow as qf

    @qf.step
    def train(n: int) -> int:
        times = []
        for i in range(n):
            times.append(time.time())
            qf.log_metric("loss", 1.0 / (i + 1), step=i)
            time.sleep(0.2)
        with open(os.environ["TIMES"], "w") as f:
            json.dump(times, f)
        return n

    @qf.workflow
    def latency(n: int = 10):
        return train(n)

    qf.run(latency, {"n": int(sys.argv[1])}, project_dir=os.environ["PROJECT"],
           executor=sys.argv[2], use_cache=False)
    """
)


def measure(executor: str, points: int) -> list[float]:
    import qflow as qf

    folder = Path(tempfile.mkdtemp(prefix="qflow-bench-latency-"))
    try:
        script = folder / "writer.py"
        script.write_text(WRITER)
        env = {**os.environ, "PROJECT": str(folder), "TIMES": str(folder / "times.json")}
        writer = subprocess.Popen([sys.executable, str(script), str(points), executor], env=env)
        seen: dict[int, float] = {}
        while writer.poll() is None or len(seen) < points:
            runs = qf.Client(folder).runs() if (folder / ".qflow" / "qflow.db").exists() else []
            if runs:
                for point in runs[0].metric_history("loss"):
                    seen.setdefault(int(point.step), time.time())
            if writer.poll() is not None and len(seen) < points:
                break
            time.sleep(0.01)
        logged = json.loads((folder / "times.json").read_text())
        return [seen[i] - logged[i] for i in range(points) if i in seen]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=15)
    args = parser.parse_args()
    for executor in ("local", "parallel"):
        latencies = measure(executor, args.points)
        print(
            f"{executor:9s} points seen {len(latencies)}/{args.points}  "
            f"median {statistics.median(latencies):.3f} s  max {max(latencies):.3f} s"
        )


if __name__ == "__main__":
    main()
