"""What recording the files a step reads costs (``qflow.runtime.reads``), measured alone
because whole-run timings on a shared machine are noisier than the figures themselves.

- capture per step: a ``Capture`` made, entered and left, its accesses listed (no file read);
- ``open`` of a small file, without a capture (the hook's fast path) and inside one (the file
  recorded once: the stat cache answers for re-runs);
- a cache hit's check: the cached step run's reads loaded from SQLite and each file stat-ed.

    .venv/bin/python benchmarks/read_capture.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import qflow as qf
from qflow.runtime import reads


def per_call(fn, n: int, repeat: int) -> float:
    """Median µs per call over ``repeat`` rounds of ``n`` calls."""
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


@qf.step
def load(path: str) -> int:
    return len(Path(path).read_text())


@qf.workflow
def one(path: str):
    return load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qflow-bench-reads-"))
    try:
        data = tmp / "data.csv"
        data.write_text("a\n1\n")
        reads.install()

        def capture_only() -> None:
            capture = reads.Capture(str(tmp), exclude=(str(tmp / ".qflow"),))
            with reads.capturing(capture):
                pass
            capture.accesses()

        def open_file() -> None:
            with open(data) as file:
                file.read()

        rows = {"capture per step (no reads)": per_call(capture_only, 2000, args.repeat)}
        rows["open, no capture"] = per_call(open_file, 5000, args.repeat)
        capture = reads.Capture(str(tmp))
        with reads.capturing(capture):
            rows["open, captured (seen before)"] = per_call(open_file, 5000, args.repeat)

        def first_open() -> None:
            inner = reads.Capture(str(tmp))
            with reads.capturing(inner):
                open_file()

        rows["capture + first open (stat cache hit)"] = per_call(first_open, 2000, args.repeat)

        run = qf.run(one, {"path": str(data)}, project_dir=tmp)
        from qflow.runtime.cachekey import StepIdentity
        from qflow.store import open_stores

        metadata, artifacts = open_stores(tmp)
        hit = metadata.step_runs(run.id)[0]
        identity = StepIdentity(
            metadata, artifacts, "one", use_cache=True, rerun=(), reuse=None, project_root=str(tmp)
        )

        def hit_check() -> None:
            reads.changed_reads(identity.files_of(hit), tmp)

        rows["cache hit: reads loaded and checked"] = per_call(hit_check, 500, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"read_capture: median µs per call, repeat={args.repeat}")
    for label, value in rows.items():
        print(f"{label:<40} {value:>8.1f} µs")


if __name__ == "__main__":
    main()
