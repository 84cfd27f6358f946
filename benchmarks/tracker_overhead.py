"""What the MLflow tracker adds to a run, against the built-in tracker (QFlow's store) alone.

Two measurements, each interleaved (built-in, then built-in + MLflow on a local SQLite store
``.qflow/tracker/mlflow``), in the same process, after a warm-up that imports mlflow and creates
the MLflow database:

- per step: a 20-step linear workflow against a 1-step one, cache off;
  added ms/step = ((T20 - T1) with MLflow - (T20 - T1) without) / 19;
- per 10,000 metric points: one step logging N points (with a step index) against the same
  step logging none; added s per 10,000 = (with MLflow - without) * 10,000 / N.

    .venv/bin/python benchmarks/tracker_overhead.py [--repeat N] [--points N]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from typing import Any

import qflow as qf

N_STEPS = 20


@qf.step
def inc(x: int) -> int:
    return x + 1


@qf.step
def emit(points: int) -> int:
    for i in range(points):
        qf.log_metric("loss", 1.0 / (i + 1), step=i)
    return points


@qf.workflow
def chain(cfg: Any) -> Any:
    x = cfg.x
    for _ in range(cfg.steps):
        x = inc(x)
    return x


@qf.workflow
def metrics(cfg: Any) -> Any:
    return emit(cfg.points)


def timed(wf: Any, config: dict[str, Any], tmp: str) -> float:
    start = time.perf_counter()
    qf.run(wf, config=config, project_dir=tmp, use_cache=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    tmp = tempfile.mkdtemp(prefix="qflow-bench-trackers-")
    trackers = {"builtin": "filetracker", "builtin+mlflow": "mlflow"}
    try:
        for tracker in trackers.values():  # warm-up: imports, schemas, first connections
            timed(chain, {"x": 0, "steps": 1, "tracker": tracker}, tmp)
            timed(metrics, {"points": 10, "tracker": tracker}, tmp)
        per_step: dict[str, list[float]] = {k: [] for k in trackers}
        per_points: dict[str, list[float]] = {k: [] for k in trackers}
        for _ in range(args.repeat):
            for label, tracker in trackers.items():
                t1 = timed(chain, {"x": 0, "steps": 1, "tracker": tracker}, tmp)
                tn = timed(chain, {"x": 0, "steps": N_STEPS, "tracker": tracker}, tmp)
                per_step[label].append((tn - t1) / (N_STEPS - 1))
                t0 = timed(metrics, {"points": 0, "tracker": tracker}, tmp)
                tp = timed(metrics, {"points": args.points, "tracker": tracker}, tmp)
                per_points[label].append((tp - t0) * 10_000 / args.points)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"tracker_overhead: repeat={args.repeat}, points={args.points}, MLflow local SQLite")
    print(f"{'trackers':<16} {'ms/step med':>12} {'s/10k points med':>17}")
    for label in trackers:
        print(
            f"{label:<16} {statistics.median(per_step[label]) * 1e3:>12.2f}"
            f" {statistics.median(per_points[label]):>17.3f}"
        )
    added_step = statistics.median(
        [m - b for m, b in zip(per_step["builtin+mlflow"], per_step["builtin"], strict=True)]
    )
    added_points = statistics.median(
        [m - b for m, b in zip(per_points["builtin+mlflow"], per_points["builtin"], strict=True)]
    )
    print(f"added by MLflow: {added_step * 1e3:.2f} ms/step, {added_points:.3f} s/10,000 points")


if __name__ == "__main__":
    main()
