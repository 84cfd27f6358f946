"""Per-step overhead of QFlow with tracking on (SQLite metadata + local artifact store).

A 50-step linear workflow of trivial steps vs a 1-step workflow, run with ``qf.run``:
overhead per step = (T50 - T1) / 49. Measured with the cache off (every step executes and is
recorded) and, separately, for a re-run with the cache on where every step is a cache hit.

    .venv/bin/python benchmarks/step_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import qflow as qf

N_STEPS = 50


@qf.step
def inc(x: int) -> int:
    return x + 1


@qf.workflow
def chain50(x: int = 0):
    for _ in range(N_STEPS):
        x = inc(x)
    return x


@qf.workflow
def chain1(x: int = 0):
    return inc(x)


def timed_run(wf, tmp: str, use_cache: bool) -> float:
    start = time.perf_counter()
    qf.run(wf, config={}, project_dir=tmp, use_cache=use_cache)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="qflow-bench-steps-")
    try:
        # Warm-up: imports, schema creation, first connection; also fills the cache.
        for wf in (chain1, chain50):
            timed_run(wf, tmp, use_cache=True)

        rows = {}
        for label, use_cache in (("cache off", False), ("cache on, all hits", True)):
            t1s, t50s, per_step = [], [], []
            for _ in range(args.repeat):  # interleaved, so drift hits both alike
                t1 = timed_run(chain1, tmp, use_cache)
                t50 = timed_run(chain50, tmp, use_cache)
                t1s.append(t1)
                t50s.append(t50)
                per_step.append((t50 - t1) / (N_STEPS - 1))
            rows[label] = (t1s, t50s, per_step)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"step_overhead: {N_STEPS}-step vs 1-step workflow, repeat={args.repeat}")
    print(f"{'mode':<20} {'T1 med':>9} {'T50 med':>9} {'ms/step med':>12} {'ms/step min':>12}")
    for label, (t1s, t50s, per_step) in rows.items():
        print(
            f"{label:<20} {statistics.median(t1s) * 1e3:>7.1f}ms {statistics.median(t50s) * 1e3:>7.1f}ms"
            f" {statistics.median(per_step) * 1e3:>12.3f} {min(per_step) * 1e3:>12.3f}"
        )
    print("target: <= 1 ms per step (cache off)")


if __name__ == "__main__":
    main()
