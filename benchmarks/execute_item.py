"""CPU time of the worker's part of one trivial mapped item: ``qflow.runtime.worker.execute``.

    .venv/bin/python benchmarks/execute_item.py [--items 10000] [--repeat 5] [--loggers N]
        [--baseline SRC]

A run of ``plus_one.map(items(3))`` records one real item task (its step, its input ref,
the project); the script then calls ``execute`` on it ``--items`` times, as a worker process
does for each item, and prints the median and minimum CPU time (``getrusage``) over
``--repeat`` rounds, per item too, with the load average. Each measurement is a fresh process.
``--loggers N`` first makes N more loggers, as libraries do (Ray and MLflow make ~290).
``--baseline SRC`` also measures an older QFlow (its ``src`` folder, e.g. from
``git archive COMMIT src | tar -x -C /tmp/base``), alternating with this one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, logging, resource, sys, tempfile
import qflow as qf
import qflow.runtime.executor as executor
from qflow.runtime.context import RunSinks
from qflow.runtime.worker import execute

@qf.step
def items(n: int) -> list[int]:
    return list(range(n))

@qf.step
def plus_one(x: int) -> int:
    return x + 1

@qf.workflow
def fan_out(n: int = 3):
    return plus_one.map(items(n))

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

items_count, rounds, loggers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for index in range(loggers):
    logging.getLogger(f"library{index % 10}.module{index}")
seen = []
real = executor.execute
def spy(task, artifacts, sinks):
    if "plus_one" in task.node.name and not seen:
        seen.append((task, artifacts))
    return real(task, artifacts, sinks)
executor.execute = spy
qf.run(fan_out, {}, project_dir=tempfile.mkdtemp(), use_cache=False)
task, artifacts = seen[0]
ignore = lambda *args: None
sinks = RunSinks(ignore, ignore, ignore, ignore, None)
assert execute(task, artifacts, sinks).error is None
times = []
for _ in range(rounds):
    start = cpu()
    for _ in range(items_count):
        execute(task, artifacts, sinks)
    times.append(cpu() - start)
print("RESULT " + json.dumps(times))
"""


def measure(source: Path, items: int, rounds: int, loggers: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(source), "QFLOW_LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(items), str(rounds), str(loggers)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"measurement failed:\n{done.stderr[-3000:]}")
    times: list[float] = json.loads(lines[-1].removeprefix("RESULT "))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loggers", type=int, default=0)
    parser.add_argument("--baseline", help="the src folder of an older QFlow to compare")
    args = parser.parse_args()
    sources = {"this": Path(__file__).resolve().parents[1] / "src"}
    if args.baseline:
        sources = {"baseline": Path(args.baseline).resolve(), **sources}
    results: dict[str, list[float]] = {label: [] for label in sources}
    loads = []
    for _ in range(2 if args.baseline else 1):
        for label, source in sources.items():
            loads.append(os.getloadavg()[0])
            results[label] += measure(source, args.items, args.repeat, args.loggers)
    print(f"execute() of {args.items} trivial mapped items, {args.loggers} more loggers, "
          "CPU time, load average (1 min) "
          f"{min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:9} median {median:6.3f} s  min {min(times):6.3f} s  "
              f"{1e6 * median / args.items:6.1f} µs/item")  # fmt: skip


if __name__ == "__main__":
    main()
