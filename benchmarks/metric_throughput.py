"""Metric logging throughput: one step logs 100,000 points with ``qf.log_metric``.

Reports points/s for the step body alone (time measured inside the step, which includes any
flushes that happen while it runs) and end-to-end (``qf.run`` wall time minus the wall time of
a no-op 1-step run, so the fixed cost of starting and finishing a run is not counted).
Metrics are durable when the step ends, so qf.run returning means all points are stored;
afterwards the stored history is checked to hold exactly 100,000 points.

    .venv/bin/python benchmarks/metric_throughput.py [--repeat N] [--points N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import qflow as qf

POINTS = 100_000


@qf.step
def log_points(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        qf.log_metric("loss", float(i), step=i)
    return time.perf_counter() - start


@qf.step
def noop(n: int) -> float:
    return 0.0


@qf.workflow
def metrics_wf(n: int = POINTS):
    return log_points(n)


@qf.workflow
def noop_wf(n: int = POINTS):
    return noop(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--points", type=int, default=POINTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    n = args.points

    tmp = tempfile.mkdtemp(prefix="qflow-bench-metrics-")
    try:
        qf.run(noop_wf, config={"n": n}, project_dir=tmp, use_cache=False)  # warm-up
        qf.run(metrics_wf, config={"n": 1000}, project_dir=tmp, use_cache=False)

        body, e2e, runs, noops = [], [], [], []
        run_ids = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            qf.run(noop_wf, config={"n": n}, project_dir=tmp, use_cache=False)
            t_noop = time.perf_counter() - start

            start = time.perf_counter()
            run = qf.run(metrics_wf, config={"n": n}, project_dir=tmp, use_cache=False)
            t_run = time.perf_counter() - start

            t_body = run.steps[0].load()
            noops.append(t_noop)
            runs.append(t_run)
            body.append(n / t_body)
            e2e.append(n / (t_run - t_noop))
            run_ids.append(run.id)

        client = qf.Client(tmp)
        for run_id in run_ids:
            history = client.run(run_id).metric_history("loss")
            assert len(history) == n, f"run {run_id}: {len(history)} points stored, expected {n}"
            assert {m.step for m in history} == set(range(n)), f"run {run_id}: steps differ"
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"metric_throughput: {n:,} x qf.log_metric in one step, repeat={args.repeat}")
    print(f"  no-op run wall   median {statistics.median(noops) * 1e3:8.1f} ms")
    print(f"  metric run wall  median {statistics.median(runs) * 1e3:8.1f} ms")
    print(f"{'points/s':<24} {'median':>10} {'min':>10} {'max':>10}")
    for label, values in (("step body", body), ("end-to-end", e2e)):
        print(
            f"{label:<24} {statistics.median(values):>10,.0f} {min(values):>10,.0f}"
            f" {max(values):>10,.0f}"
        )
    print(f"verified: {len(run_ids)} runs x {n:,} points stored. target: >= 200,000 points/s")


if __name__ == "__main__":
    main()
