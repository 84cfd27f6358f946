"""MLflow's own client logging 10,000 metric points with ``log_batch`` into ``qflow server``
(its MLflow REST API) vs into ``mlflow server``, both on loopback with SQLite stores.

    .venv/bin/python benchmarks/mlflow_rest.py [--points 10000] [--repeat 5]

Each repeat creates a run and logs the points (the client sends them 1,000 per request, as
MLflow limits a batch), then ends the run. Prints the median seconds per server and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

TOKEN = "benchmark-token"  # sent by MLflow's client as MLFLOW_TRACKING_TOKEN (both servers)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(command: list[str], url: str, log: Path) -> Iterator[str]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log.read_text()) from None
                    time.sleep(0.3)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _mlflow(root: Path) -> contextlib.AbstractContextManager[str]:
    port = _port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(root / "artifacts")]
    return _server(command, f"http://127.0.0.1:{port}", root / "mlflow.log")


def _qflow(root: Path) -> contextlib.AbstractContextManager[str]:
    port = _port()
    command = [sys.executable, "-m", "qflow", "server", "--port", str(port), "--token", TOKEN]
    command += ["--store", f"sqlite:///{root / 'qflow.db'}", "--artifacts", str(root / "art")]
    return _server(command, f"http://127.0.0.1:{port}", root / "qflow.log")


def _log(url: str, points: int) -> float:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    name = f"bench-{time.time_ns()}"
    experiment = client.create_experiment(name)
    run = client.create_run(experiment)
    now = int(time.time() * 1000)
    metrics = [Metric(f"m{i % 10}", i * 0.5, now + i, i // 10) for i in range(points)]
    started = time.perf_counter()
    client.log_batch(run.info.run_id, metrics=metrics)
    took = time.perf_counter() - started
    client.set_terminated(run.info.run_id)
    history = client.get_metric_history(run.info.run_id, "m0")
    assert len(history) == points // 10, (len(history), points // 10)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, start in (("mlflow server", _mlflow), ("qflow server", _qflow)):
            folder = Path(tmp) / label.split()[0]
            folder.mkdir()
            with start(folder) as url:
                _log(url, 100)  # warm up: connections, first queries
                results[label] = [_log(url, args.points) for _ in range(args.repeat)]
    print(f"MLflow client log_batch of {args.points:,} points, median of {args.repeat}:")
    for label, times in results.items():
        every = ", ".join(f"{t:.3f}" for t in times)
        print(f"  {label:14} {statistics.median(times):8.3f} s  (all: {every})")
    ratio = statistics.median(results["mlflow server"]) / statistics.median(results["qflow server"])
    print(f"  qflow server is {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
