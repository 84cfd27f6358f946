"""Framework time per sweep trial: ``qflow sweep`` vs plain Optuna, same storage, trivial objective.

The objective is a 1-step workflow returning a function of two swept params (``x`` float,
``k`` choice) and logging it as ``score``. Both sides use Optuna's RDBStorage on the same
SQLite file (the QFlow sweep storage, ``.qflow/sweeps.db``) and the random sampler, so what
differs is QFlow's work per trial: composing the config with Hydra, tracing, recording the
run (environment, step run, metric, tags), reading the objective back and telling Optuna.
Per-trial time = the gap between consecutive trial ends; median over ``--trials`` trials,
``--repeat`` sweeps of each kind, interleaved. CPU per trial = the CPU seconds of this process
and of the trial processes it waited for (``--parallel``), over the sweep, per trial: on a
loaded machine the wall time is mostly waiting for a core, the CPU time is not.

    .venv/bin/python benchmarks/sweep_overhead.py [--trials N] [--repeat N] [--parallel P]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

WORKFLOW = textwrap.dedent(
    """
    import qflow as qf

    @qf.step
    def score(x: float, k: str) -> float:
        value = (x - 0.3) ** 2 + (0.1 if k == "b" else 0.0)
        qf.log_metric("score", value)
        return value

    @qf.workflow
    def trivial(cfg):
        return score(cfg.x, cfg.k)
    """
)


def make_project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="qflow-bench-sweep-"))
    (root / "src").mkdir()
    (root / "src" / "bench_sweep_wf.py").write_text(WORKFLOW)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "b"\n[tool.qflow]\nworkflow-modules = ["bench_sweep_wf"]\n'
    )
    (root / "conf").mkdir()
    (root / "conf" / "trivial.yaml").write_text(
        "x: 0.5\nk: a\nsweep:\n  objective: score\n  params:\n"
        '    x: "float(0, 1)"\n    k: "choice(a, b)"\n'
    )
    return root


def gaps(ends: list[float], start: float) -> list[float]:
    points = [start, *ends]
    return [b - a for a, b in itertools.pairwise(points)]


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (the pool's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def qflow_sweep(root: Path, trials: int, parallel: int) -> tuple[list[float], float]:
    from qflow.sweep.driver import start_sweep

    ends: list[float] = []
    cpu = cpu_seconds()
    start = time.perf_counter()
    start_sweep(
        "trivial",
        trials=trials,
        parallel=parallel,
        sampler="random",
        pruner="none",
        project_dir=root,
        on_trial=lambda _: ends.append(time.perf_counter()),
    )
    return gaps(ends, start), (cpu_seconds() - cpu) / trials


def plain_optuna(root: Path, trials: int) -> tuple[list[float], float]:
    import optuna

    from qflow.store.location import default_store_url
    from qflow.sweep.storage import open_storage

    storage = open_storage(default_store_url(root))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler())
    ends: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        k = trial.suggest_categorical("k", ["a", "b"])
        return (x - 0.3) ** 2 + (0.1 if k == "b" else 0.0)

    cpu = cpu_seconds()
    start = time.perf_counter()
    study.optimize(
        objective, n_trials=trials, callbacks=[lambda *_: ends.append(time.perf_counter())]
    )
    return gaps(ends, start), (cpu_seconds() - cpu) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1, help="also time --parallel P")
    args = parser.parse_args()
    os.environ.pop("QFLOW_STORE", None)
    os.environ.pop("QFLOW_ARTIFACTS", None)
    root = make_project()
    sys.path.insert(0, str(root / "src"))
    try:
        qflow_sweep(root, 3, 1)  # warm-up: imports, schemas, the package list, the cache
        plain_optuna(root, 3)
        kinds: dict[str, Callable[[], tuple[list[float], float]]] = {
            "qflow sweep": lambda: qflow_sweep(root, args.trials, 1),
            "plain optuna": lambda: plain_optuna(root, args.trials),
        }
        if args.parallel > 1:
            kinds[f"qflow sweep --parallel {args.parallel}"] = lambda: qflow_sweep(
                root, args.trials, args.parallel
            )
        times: dict[str, list[float]] = {label: [] for label in kinds}
        cpu: dict[str, list[float]] = {label: [] for label in kinds}
        for _ in range(args.repeat):
            for label, sweep in kinds.items():
                wall, cpu_per_trial = sweep()
                times[label] += wall
                cpu[label].append(cpu_per_trial)
        base = statistics.median(times["plain optuna"])
        base_cpu = statistics.median(cpu["plain optuna"])
        print(f"{args.trials} trials x {args.repeat} sweeps, per trial (median, min; CPU):")
        for label, values in times.items():
            wall_ms, low_ms = statistics.median(values) * 1000, min(values) * 1000
            cpu_ms = statistics.median(cpu[label]) * 1000
            added = (wall_ms - base * 1000, cpu_ms - base_cpu * 1000)
            extra = f"  framework +{added[0]:.1f} ms, CPU +{added[1]:.1f} ms"
            print(
                f"  {label:<28} {wall_ms:8.1f} ms  (min {low_ms:.1f} ms; CPU {cpu_ms:.1f} ms)"
                f"{extra if label != 'plain optuna' else ''}"
            )
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
