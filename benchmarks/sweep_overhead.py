"""Framework time per sweep trial: ``qflow sweep`` vs plain Optuna, same storage, trivial objective.

The objective is a 1-step workflow returning a function of two swept params (``x`` float,
``k`` choice) and logging it as ``score``. Both sides use Optuna's RDBStorage on the same
SQLite file (the QFlow sweep storage, ``.qflow/sweeps.db``) and the random sampler, so what
differs is QFlow's work per trial: composing the config with Hydra, tracing, recording the
run (environment, step run, metric, tags), reading the objective back and telling Optuna.
Per-trial time = the gap between consecutive trial ends; median over ``--trials`` trials,
``--repeat`` sweeps of each kind, interleaved.

    .venv/bin/python benchmarks/sweep_overhead.py [--trials N] [--repeat N] [--parallel P]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
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


def qflow_sweep(root: Path, trials: int, parallel: int) -> list[float]:
    from qflow.sweep.driver import start_sweep

    ends: list[float] = []
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
    return gaps(ends, start)


def plain_optuna(root: Path, trials: int) -> list[float]:
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

    start = time.perf_counter()
    study.optimize(
        objective, n_trials=trials, callbacks=[lambda *_: ends.append(time.perf_counter())]
    )
    return gaps(ends, start)


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
        times: dict[str, list[float]] = {"qflow sweep": [], "plain optuna": []}
        if args.parallel > 1:
            times[f"qflow sweep --parallel {args.parallel}"] = []
        for _ in range(args.repeat):
            times["qflow sweep"] += qflow_sweep(root, args.trials, 1)
            times["plain optuna"] += plain_optuna(root, args.trials)
            if args.parallel > 1:
                times[f"qflow sweep --parallel {args.parallel}"] += qflow_sweep(
                    root, args.trials, args.parallel
                )
        base = statistics.median(times["plain optuna"])
        print(f"{args.trials} trials x {args.repeat} sweeps, per trial (median, min):")
        for label, values in times.items():
            median = statistics.median(values)
            added = (median - base) * 1000
            extra = f"  framework +{added:.1f} ms" if label != "plain optuna" else ""
            low = min(values) * 1000
            print(f"  {label:<28} {median * 1000:8.1f} ms  (min {low:.1f} ms){extra}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
