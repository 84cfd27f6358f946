"""Start-up cost of the front door, whole-process wall time in fresh subprocesses.

- ``python -c "import qflow"`` (and ``python -c "pass"`` for the interpreter alone);
- ``qflow --help`` (every built-in and plugin command listed);
- ``qflow runs --limit 20`` in a project with ``--runs`` (1,000) recorded runs;
- the first ``qflow run`` in a new project (a fresh folder each time: the store is created),
  once as a user who has run QFlow before (the per-user cache of the package list and platform
  string, ``$XDG_CACHE_HOME/qflow``, is warm) and once with an empty per-user cache (the first
  run on a machine, or after a package was installed).

Each command is the real console script (interpreter start included), run ``--repeat`` times
interleaved; the script prints the medians and minimums of wall time, and the median CPU
time (user + system), which a busy machine inflates less. Child processes may write bytecode
(``PYTHONDONTWRITEBYTECODE`` is dropped), as in a user's environment. It also lists the slowest
modules (cumulative, ``-X importtime``) that ``qflow runs --limit 20`` imports.

    .venv/bin/python benchmarks/startup.py [--repeat N] [--runs N] [--baseline OLD/src]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PYPROJECT = '[project]\nname = "bench"\nversion = "0"\n\n[tool.qflow]\n'
PYPROJECT += 'workflows = { tiny = "flows:tiny" }\n'
FLOWS = """import qflow as qf


@qf.step
def one(x: int = 1) -> int:
    return x + 1


@qf.workflow
def tiny(cfg):
    return one(1)
"""
FILL = """
import sys
import qflow as qf
from flows import tiny

for i in range(int(sys.argv[1])):
    qf.run(tiny, {"i": i}, project_dir=".", use_cache=False)
"""
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update(NO_COLOR="1", COLUMNS="120")


def wall(cmd: list[str], cwd: Path | str, env: dict[str, str] = ENV) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of the whole command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu


def qflow_command() -> list[str]:
    script = Path(sys.executable).with_name("qflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("qflow")
    return [found] if found else [sys.executable, "-m", "qflow"]


def new_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "flows.py").write_text(FLOWS)
    return root


def slowest_imports(args: list[str], cwd: Path, top: int = 12) -> list[tuple[int, int, str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qflow", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative_us), int(self_us), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1000, help="runs in the listed project")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="the src/ folder of another checkout (git archive COMMIT src | tar -x -C DIR): "
        "its qflow commands are timed too, interleaved, with it first on PYTHONPATH",
    )
    args = parser.parse_args()
    envs = {"": ENV}
    if args.baseline is not None:
        envs[" [baseline]"] = {**ENV, "PYTHONPATH": str(args.baseline.resolve())}

    tmp = Path(tempfile.mkdtemp(prefix="qflow-bench-startup-"))
    try:
        py, qflow = sys.executable, qflow_command()
        listed = new_project(tmp / "listed")
        (listed / "fill.py").write_text(FILL)
        start = time.perf_counter()
        subprocess.run([py, "fill.py", str(args.runs)], cwd=listed, env=ENV, check=True)
        print(f"recorded {args.runs} runs in {time.perf_counter() - start:.1f} s")
        cold = str(tmp / "user-cache-{}")  # a new, empty per-user cache for each command

        def fresh() -> Path:
            return new_project(Path(tempfile.mkdtemp(dir=tmp)) / "new")

        cases: dict[str, tuple[list[str], Callable[[], Path], dict[str, str]]] = {
            'python -c "pass"': ([py, "-c", "pass"], lambda: tmp, {}),
            'python -c "import qflow"': ([py, "-c", "import qflow"], lambda: tmp, {}),
            "qflow --help": ([*qflow, "--help"], lambda: tmp, {}),
            f"qflow runs --limit 20 ({args.runs} runs)": (
                [*qflow, "runs", "--limit", "20"],
                lambda: listed,
                {},
            ),
            "qflow run tiny (first run, new project)": ([*qflow, "run", "tiny"], fresh, {}),
            "qflow run tiny (... and empty user cache)": (
                [*qflow, "run", "tiny"],
                fresh,
                {"XDG_CACHE_HOME": cold},
            ),
        }
        times: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        count = 0
        for i in range(-2, args.repeat):  # two warm-up rounds (OS file cache, .pyc files)
            for label, (cmd, folder, extra) in cases.items():
                for suffix, env in envs.items():
                    if suffix and not label.startswith("qflow"):
                        continue
                    count += 1
                    extra_env = {k: v.format(count) for k, v in extra.items()}
                    seconds, cpu = wall(cmd, folder(), {**env, **extra_env})
                    if i >= 0:
                        times.setdefault(label + suffix, []).append(seconds)
                        cpus.setdefault(label + suffix, []).append(cpu)
        top = slowest_imports(["runs", "--limit", "20"], listed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"startup: fresh subprocesses, repeat={args.repeat} (python {sys.version.split()[0]})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'seconds, whole process':<58} {'median':>8} {'min':>8} {'CPU med':>8}")
    for label, values in times.items():
        cpu = statistics.median(cpus[label])
        print(f"{label:<58} {statistics.median(values):>8.3f} {min(values):>8.3f} {cpu:>8.3f}")
    print("targets: qflow --help <= 0.15 s, runs --limit 20 <= 0.2 s, first run <= 0.25 s")
    print("\nslowest imports of 'qflow runs --limit 20'")
    print(f"{'cumulative ms':>13} {'self ms':>8}  module")
    for cumulative, self_us, name in top:
        print(f"{cumulative / 1e3:>13.1f} {self_us / 1e3:>8.1f}  {name}")


if __name__ == "__main__":
    main()
