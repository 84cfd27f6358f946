"""Ray executor overhead: 1,000 mapped trivial items on a warm local Ray cluster against the
parallel executor, and the step duration at which Ray starts to pay off.

    .venv/bin/python benchmarks/ray_overhead.py [--repeat N] [--items N] [--no-cpu-table]

The script re-runs itself inside a loopback-only network namespace (``unshare -n -p -f
--mount-proc``, root), starts a Ray head there (``ray start --head``, 2 CPUs), connects once
(the warm cluster: ``qf.run`` reuses the connection) and stops everything when it ends. Ray
never listens on an interface other machines can reach, and runs with token authentication
(``RAY_AUTH_MODE=token``, a fresh ``RAY_AUTH_TOKEN``), as QFlow documents for every cluster.
"Ray overhead per item" is (ray − local) / items: what running the items as (batched) Ray
tasks adds to the driver's own per-item work, which every executor pays.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qflow as qf

PORT = 6399
INSIDE = "QFLOW_BENCH_IN_NAMESPACE"


@qf.step
def items(n: int) -> list[int]:
    return list(range(n))


@qf.step
def burn(x: int, seconds: float = 0.0) -> int:
    """CPU-bound for ``seconds`` (0: trivial)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        x += 1
    return x


@qf.step
def total(xs: list[int]) -> int:
    return sum(xs)


@qf.workflow
def fan_out(n: int = 1000, seconds: float = 0.0) -> Any:
    return total(burn.map(items(n), seconds=seconds))


def _timed(folder: str, executor: str, config: dict[str, Any]) -> float:
    options: dict[str, Any] = {"workers": 2} if executor == "parallel" else {}
    start = time.perf_counter()
    qf.run(fan_out, config, project_dir=folder, executor=executor, use_cache=False, **options)
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> None:
    import ray

    ray_bin = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="qfb-")
    subprocess.run(
        [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(PORT),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", f"{temp}/ray"],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    folder = f"{temp}/project"
    os.mkdir(folder)
    try:
        started = time.perf_counter()
        ray.init(address=f"127.0.0.1:{PORT}", log_to_driver=False, configure_logging=False)
        connect = time.perf_counter() - started
        for executor in ("local", "parallel", "ray"):  # warm: store, imports, Ray workers
            _timed(folder, executor, {"n": 20})
        rows = []
        n = args.items
        for executor in ("local", "parallel", "ray"):
            times = [_timed(folder, executor, {"n": n}) for _ in range(args.repeat)]
            rows.append((executor, statistics.median(times), min(times)))
        print(f"ray {ray.__version__}, connect to the warm cluster {connect:.2f} s")
        print(f"{n} mapped trivial items, cache off, repeat={args.repeat}")
        print(f"{'executor':10} {'median s':>9} {'min s':>7} {'ms/item':>8}")
        for executor, median, best in rows:
            print(f"{executor:10} {median:9.2f} {best:7.2f} {1000 * median / n:8.2f}")
        extra = 1000 * (rows[2][1] - rows[0][1]) / n
        print(f"ray overhead per item (ray - local): {extra:.2f} ms; load {os.getloadavg()}")
        if not args.cpu_table:
            return
        print("\nCPU-bound items (200 per run): wall seconds")
        print(f"{'item ms':>7} {'local':>7} {'parallel':>9} {'ray':>7}")
        for millis in (1, 5, 10, 20, 50):
            config = {"n": 200, "seconds": millis / 1000}
            walls = [
                statistics.median(
                    _timed(folder, ex, config) for _ in range(max(1, args.repeat - 2))
                )
                for ex in ("local", "parallel", "ray")
            ]
            print(f"{millis:7} {walls[0]:7.2f} {walls[1]:9.2f} {walls[2]:7.2f}")
    finally:
        ray.shutdown()
        subprocess.run([ray_bin, "stop", "--force"], timeout=60, capture_output=True, check=False)
        shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--no-cpu-table", dest="cpu_table", action="store_false")
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        env = {**os.environ, INSIDE: "1", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
        script = 'ip link set lo up && exec "$0" "$@"'
        command = ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", script,
                   sys.executable, *sys.argv]  # fmt: skip
        sys.exit(subprocess.run(command, env=env, check=False).returncode)
    measure(args)


if __name__ == "__main__":
    main()
