"""Serving latency: a scikit-learn model behind `qflow models serve` and `mlflow models serve`.

A QFlow run trains a StandardScaler + LogisticRegression pipeline on the breast-cancer data
set (30 float features); it is registered and served on loopback. A second process sends
REQUESTS single-row JSON predictions over CONCURRENCY keep-alive connections and reports
p50/p99 latency and requests/s. The same model, saved in MLflow's format, is then served by
`mlflow models serve --env-manager local` (when mlflow is installed) and measured the same way.

    python benchmarks/serving.py [--requests 2000] [--concurrency 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


# -- load generator (runs in its own process) ------------------------------------------------


def load(url: str, body: str, requests: int, concurrency: int) -> dict[str, float]:
    import asyncio

    import httpx

    async def main() -> tuple[list[float], float]:
        latencies: list[float] = []
        remaining = iter(range(requests))
        headers = {"content-type": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def worker() -> None:
                for _ in remaining:
                    start = time.perf_counter()
                    response = await client.post(url, content=body, headers=headers)
                    latencies.append(time.perf_counter() - start)
                    if response.status_code != 200:
                        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

            for _ in range(20):  # warm-up, not measured
                await client.post(url, content=body, headers=headers)
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, time.perf_counter() - started

    latencies, elapsed = asyncio.run(main())
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "rps": len(latencies) / elapsed,
    }


def _measure(url: str, body: str, args: argparse.Namespace) -> dict[str, float]:
    """Median over ``--repeat`` runs of the load generator, each in a fresh process."""
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--load",
                url,
                "--requests",
                str(args.requests),
                "--concurrency",
                str(args.concurrency),
            ],
            input=body,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(out))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


# -- servers -----------------------------------------------------------------------------------


def _train(project: Path) -> tuple[Any, str]:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    import qflow as qf

    @qf.step(outputs=("X", "y"))
    def data() -> tuple[pd.DataFrame, pd.Series]:
        frame = load_breast_cancer(as_frame=True).frame
        return frame.drop(columns="target"), frame["target"]

    @qf.step
    def fit(X: pd.DataFrame, y: pd.Series) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)

    @qf.workflow
    def train() -> Any:
        X, y = data()
        return fit(X, y)

    run = qf.run(train, {}, project_dir=project)
    qf.models.register(run, "fit", name="bench", project_dir=project)
    qf.models.set_alias("bench", "production", 1, project_dir=project)
    row = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(1)
    return row.to_dict("records"), run.id


def _serve_qflow(project: Path, body: str, args: argparse.Namespace) -> dict[str, float]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qflow",
            "models",
            "serve",
            "bench@production",
            "--port",
            str(port),
            "-C",
            str(project),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/health", process)
        return _measure(f"http://127.0.0.1:{port}/predict", body, args)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _serve_mlflow(project: Path, body: str, args: argparse.Namespace) -> dict[str, float] | str:
    try:
        import mlflow.sklearn
    except ImportError:
        return "mlflow is not installed"
    import qflow as qf

    folder = project / "mlflow-model"
    mlflow.sklearn.save_model(qf.models.load("bench/1", project_dir=project), str(folder))
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(folder),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--env-manager",
            "local",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # mlflow starts `uvicorn` by name: put this interpreter's scripts first on PATH.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    try:
        _wait(f"http://127.0.0.1:{port}/ping", process)
        return _measure(f"http://127.0.0.1:{port}/invocations", body, args)
    except RuntimeError as exc:
        return f"could not run: {exc}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(load(args.load, sys.stdin.read(), args.requests, args.concurrency)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / ".qflow").mkdir()
        row, _ = _train(project)
        body = json.dumps({"dataframe_records": row})
        print(
            f"{args.requests} single-row requests, {args.concurrency} connections, "
            f"median of {args.repeat} runs"
        )
        results: dict[str, Any] = {"qflow models serve": _serve_qflow(project, body, args)}
        results["mlflow models serve"] = _serve_mlflow(project, body, args)
        for name, figures in results.items():
            if isinstance(figures, str):
                print(f"{name:22} {figures}")
            else:
                print(
                    f"{name:22} p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms"
                    f"  {figures['rps']:.0f} req/s"
                )


if __name__ == "__main__":
    main()
