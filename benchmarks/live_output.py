"""What sending a running step's output to the store costs: a step that prints for about
three seconds (so the flusher sends its output about six times, 0.5 s apart), run with live
output and with it switched off, interleaved; wall and CPU medians and the load average.

    .venv/bin/python benchmarks/live_output.py [--repeat N] [--lines N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import qflow as qf
from qflow.runtime.context import StepRecorder


@qf.step
def talk(lines: int) -> int:
    """Prints ``lines`` lines, with a pause every 1,000 so the step lasts a few seconds."""
    for index in range(lines):
        print(f"line {index}: loss is {1.0 / (index + 1):.6f}")
        if index % 1000 == 999:
            time.sleep(0.01)
    return lines


@qf.workflow
def chatty(lines: int = 300_000) -> Any:
    return talk(lines)


@contextlib.contextmanager
def _live(on: bool) -> Iterator[None]:
    original = StepRecorder.flush_output
    if not on:
        StepRecorder.flush_output = lambda self, now: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        StepRecorder.flush_output = original  # type: ignore[method-assign]


def _once(lines: int, on: bool) -> tuple[float, float]:
    folder = tempfile.mkdtemp(prefix="qflow-bench-live-")
    try:
        with _live(on), contextlib.redirect_stdout(io.StringIO()):
            wall, cpu = time.perf_counter(), time.process_time()
            qf.run(chatty, {"lines": lines}, project_dir=folder, use_cache=False)
            return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lines", type=int, default=300_000)
    args = parser.parse_args()
    _once(1000, True)  # imports, schema
    figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for on in (True, False):
            figures[on].append(_once(args.lines, on))
    print(f"load average {os.getloadavg()[0]:.1f}, {args.lines} lines printed")
    for on, label in ((False, "output at the end only"), (True, "live output")):
        wall = statistics.median(w for w, _ in figures[on])
        cpu = statistics.median(c for _, c in figures[on])
        print(f"{label:>24}: wall {wall:.2f} s, CPU {cpu:.2f} s (medians of {args.repeat})")


if __name__ == "__main__":
    main()
