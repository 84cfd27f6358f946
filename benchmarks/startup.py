"""Start-up cost: ``import qflow`` and ``qflow --help`` wall time, in fresh subprocesses.

import time = wall(python -c "import qflow") - wall(python -c "pass"), paired per repeat.
--help time = wall(.venv/bin/qflow --help) (the whole command, interpreter start included).
Also lists the 10 slowest modules (cumulative, ``-X importtime``) imported by
``from qflow.cli.app import main``, i.e. what ``qflow --help`` pays for before it can print.

    .venv/bin/python benchmarks/startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def qflow_command() -> list[str]:
    script = Path(sys.executable).with_name("qflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("qflow")
    if found:
        return [found]
    return [sys.executable, "-m", "qflow.cli.app"]


def slowest_imports(cwd: str, top: int = 10) -> tuple[list[tuple[int, int, str]], int]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from qflow.cli.app import main"],
        cwd=cwd, capture_output=True, text=True, check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative_us), int(self_us), name.rstrip()))
    total = len(rows)
    rows.sort(reverse=True)
    return rows[:top], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="qflow-bench-startup-")  # no project here: nothing to find
    try:
        py = sys.executable
        qflow = qflow_command()
        for _ in range(2):  # warm the OS file cache and .pyc files
            wall([py, "-c", "import qflow"], tmp)
            wall([*qflow, "--help"], tmp)

        bare, imp, delta, helps = [], [], [], []
        for _ in range(args.repeat):
            b = wall([py, "-c", "pass"], tmp)
            i = wall([py, "-c", "import qflow"], tmp)
            h = wall([*qflow, "--help"], tmp)
            bare.append(b)
            imp.append(i)
            delta.append(i - b)
            helps.append(h)
        top, n_modules = slowest_imports(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"startup: fresh subprocesses, repeat={args.repeat} (python {sys.version.split()[0]})")
    print(f"{'seconds':<36} {'median':>8} {'min':>8}")
    for label, values in (
        ('python -c "pass"', bare),
        ('python -c "import qflow"', imp),
        ("import qflow (difference)", delta),
        ("qflow --help", helps),
    ):
        print(f"{label:<36} {statistics.median(values):>8.3f} {min(values):>8.3f}")
    print("targets: import <= 0.2 s, --help <= 0.3 s")
    print(f"\n10 slowest imports of 'from qflow.cli.app import main' ({n_modules} modules)")
    print(f"{'cumulative ms':>13} {'self ms':>8}  module")
    for cumulative, self_us, name in top:
        print(f"{cumulative / 1e3:>13.1f} {self_us / 1e3:>8.1f}  {name}")


if __name__ == "__main__":
    main()
