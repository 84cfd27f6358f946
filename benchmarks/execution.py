"""Execution-engine figures: a 1,000-item map on the parallel executor, a fully cached
re-run of a 20-step workflow, and two CPU-bound branches on 2 workers vs local.

    .venv/bin/python benchmarks/execution.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import qflow as qf


@qf.step
def items(n: int) -> list[int]:
    return list(range(n))


@qf.step
def plus_one(x: int) -> int:
    return x + 1


@qf.step
def total(xs: list[int]) -> int:
    return sum(xs)


@qf.workflow
def fan_out(n: int = 1000) -> Any:
    return total(plus_one.map(items(n)))


@qf.workflow
def chain20(x: int = 0) -> Any:
    for _ in range(20):
        x = plus_one(x)
    return x


@qf.step
def burn(seconds: float, seed: int) -> int:
    """CPU-bound: count loop iterations for ``seconds``."""
    end = time.process_time() + seconds
    count = seed
    while time.process_time() < end:
        count += 1
    return count


@qf.workflow
def two_branches(seconds: float = 1.0) -> Any:
    return burn(seconds, 1), burn(seconds, 2)


@qf.workflow
def empty_chain() -> Any:
    return plus_one(0)


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _fresh() -> str:
    return tempfile.mkdtemp(prefix="qflow-bench-exec-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []

    folders: list[str] = []
    try:
        # 1. 1,000 mapped items on the parallel executor, cache off, fresh store each time.
        times = []
        for _ in range(args.repeat):
            folder = _fresh()
            folders.append(folder)
            qf.run(empty_chain, {}, project_dir=folder)  # schema, imports
            times.append(_timed(lambda f=folder: qf.run(
                fan_out, {"n": 1000}, project_dir=f, executor="parallel", workers=2,
                use_cache=False)))
        rows.append(("1,000 mapped items, parallel (s)", statistics.median(times), min(times),
                     "<= 3 s"))

        # 2. fully cached re-run of a 20-step workflow: wall time minus an empty run's.
        folder = _fresh()
        folders.append(folder)
        qf.run(chain20, {}, project_dir=folder)
        cached = [_timed(lambda: qf.run(chain20, {}, project_dir=folder))
                  for _ in range(args.repeat * 2)]
        baseline = [_timed(lambda: qf.run(empty_chain, {}, project_dir=folder))
                    for _ in range(args.repeat * 2)]
        rows.append(("cached 20-step re-run, wall (ms)", 1000 * statistics.median(cached),
                     1000 * min(cached), ""))
        framework = statistics.median(cached) - statistics.median(baseline)
        rows.append(("  minus a 1-step cached run (ms)", 1000 * framework,
                     1000 * (min(cached) - min(baseline)), "<= 100 ms"))

        # 3. two CPU-bound branches, local vs parallel with 2 workers.
        local, parallel = [], []
        for _ in range(args.repeat):
            folder = _fresh()
            folders.append(folder)
            local.append(_timed(lambda f=folder: qf.run(
                two_branches, {"seconds": 1.0}, project_dir=f, use_cache=False)))
            parallel.append(_timed(lambda f=folder: qf.run(
                two_branches, {"seconds": 1.0}, project_dir=f, executor="parallel",
                workers=2, use_cache=False)))
        rows.append(("2 CPU branches, local (s)", statistics.median(local), min(local), ""))
        rows.append(("2 CPU branches, parallel x2 (s)", statistics.median(parallel),
                     min(parallel), ""))
        ratios = [a / b for a, b in zip(local, parallel, strict=True)]
        rows.append(("  speed-up (local / parallel)", statistics.median(ratios), min(ratios),
                     ">= 1.8x"))
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"execution benchmarks, repeat={args.repeat}")
    print(f"{'measure':36} {'median':>10} {'min':>10}  target")
    for label, median, best, target in rows:
        print(f"{label:36} {median:10.3f} {best:10.3f}  {target}")


if __name__ == "__main__":
    main()
