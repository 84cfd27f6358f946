"""MLflow's own client logging 10,000 metric points with ``log_batch`` into ``qflow server``
(its MLflow REST API) vs into ``mlflow server``, both on loopback with SQLite stores.

    .venv/bin/python benchmarks/mlflow_rest.py [--points 10000] [--repeat 7]

Both servers run at once and the repeats alternate between them (mlflow, qflow, mlflow, …),
so load from other processes falls on both alike. Each repeat creates a run and logs the
points with one ``MlflowClient.log_batch`` call (the client itself sends them 1,000 per
request, MLflow's batch limit: 10 requests), then reads the history back to check it. Printed
per server: median wall seconds of the ``log_batch`` call, median CPU seconds the server's
processes spent on it (meaningful when the machine is loaded), and the client's own CPU
seconds (building and serialising the requests, the same work for both); then the ratio of
medians and the load average.
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
from dataclasses import dataclass, field
from pathlib import Path

TOKEN = "benchmark-token"  # sent by MLflow's client as MLFLOW_TRACKING_TOKEN (both servers)
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    label: str
    url: str
    pid: int
    wall: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)

    def cpu(self) -> float:
        """CPU seconds used so far by every process in the server's process group."""
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.pid:  # process group (stat field 5)
                total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / TICK


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(label: str, command: list[str], url: str, log: Path) -> Iterator[Server]:
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
            yield Server(label, url, process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _mlflow(root: Path) -> contextlib.AbstractContextManager[Server]:
    port = _port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(root / "artifacts")]
    return _server("mlflow server", command, f"http://127.0.0.1:{port}", root / "mlflow.log")


def _qflow(root: Path) -> contextlib.AbstractContextManager[Server]:
    port = _port()
    command = [sys.executable, "-m", "qflow", "server", "--port", str(port), "--token", TOKEN]
    command += ["--store", f"sqlite:///{root / 'qflow.db'}", "--artifacts", str(root / "art")]
    return _server("qflow server", command, f"http://127.0.0.1:{port}", root / "qflow.log")


def _log(server: Server, points: int, *, record: bool = True) -> None:
    """One repeat: a new experiment and run, ``points`` metrics in one ``log_batch`` call."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.url)
    experiment = client.create_experiment(f"bench-{time.time_ns()}")
    run = client.create_run(experiment)
    now = int(time.time() * 1000)
    metrics = [Metric(f"m{i % 10}", i * 0.5, now + i, i // 10) for i in range(points)]
    server_cpu, client_cpu = server.cpu(), time.process_time()
    started = time.perf_counter()
    client.log_batch(run.info.run_id, metrics=metrics)
    wall = time.perf_counter() - started
    client_cpu, server_cpu = time.process_time() - client_cpu, server.cpu() - server_cpu
    client.set_terminated(run.info.run_id)
    history = client.get_metric_history(run.info.run_id, "m0")
    if len(history) != points // 10:
        raise RuntimeError(f"{server.label}: {len(history)} points of m0 read back")
    if record:
        server.wall.append(wall)
        server.server_cpu.append(server_cpu)
        server.client_cpu.append(client_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        found = []
        for start, name in ((_mlflow, "mlflow"), (_qflow, "qflow")):
            (Path(tmp) / name).mkdir()
            found.append(stack.enter_context(start(Path(tmp) / name)))
        for server in found:
            _log(server, args.points, record=False)  # warm up: imports, connections, caches
        load_before = os.getloadavg()
        for _ in range(args.repeat):
            for server in found:
                _log(server, args.points)
        load_after = os.getloadavg()
    print(f"MLflow client log_batch of {args.points:,} points, median of {args.repeat}:")
    print(f"  {'':14} {'wall s':>8} {'server CPU s':>13} {'client CPU s':>13}  (all wall)")
    for s in found:
        every = ", ".join(f"{t:.3f}" for t in s.wall)
        medians = [statistics.median(v) for v in (s.wall, s.server_cpu, s.client_cpu)]
        print(f"  {s.label:14} {medians[0]:8.3f} {medians[1]:13.3f} {medians[2]:13.3f}  ({every})")
    mlflow, qflow = found
    wall = statistics.median(mlflow.wall) / statistics.median(qflow.wall)
    cpu = statistics.median(mlflow.server_cpu) / max(statistics.median(qflow.server_cpu), 1e-9)
    print(f"  qflow server is {wall:.1f}x faster (wall), uses {cpu:.1f}x less server CPU")
    print(f"  load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")


if __name__ == "__main__":
    main()
