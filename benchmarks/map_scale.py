"""A 10,000-item map of trivial items, whole run, on local, parallel (2 workers) and Ray.

    .venv/bin/python benchmarks/map_scale.py [--items 10000] [--repeat 3] [--ray]
        [--modes off,on,hits] [--baseline SRC]

Each measurement is a fresh process: it makes the store and imports (an empty run), then
times ``qf.run`` of ``total(plus_one.map(items(n)))`` in one of three modes: ``off`` (cache
off), ``on`` (the default, cache on, in a new project: every item a miss, looked up and
explained) and ``hits`` (a second run of the same map: every item a cache hit; the first run
is not timed). Printed per executor and mode: the median wall time, the median CPU time of
the process and its workers (what a loaded machine does not distort; on Ray, the driver's
only), and the metadata-store commits of the timed run.

``--baseline SRC`` also runs an older QFlow (its ``src`` folder, e.g. from
``git archive COMMIT src | tar -x -C /tmp/base``), alternating with this one run by run, so
both see the same load (not on Ray: the cluster's workers run the installed QFlow).
``--ray`` re-runs the script inside a loopback-only network namespace (``unshare -n -p -f
--mount-proc``, root) with a Ray head of 2 CPUs started there, token authentication on;
"Ray per item" is (ray - local) / items.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORT = 6398
INSIDE = "QFLOW_BENCH_IN_NAMESPACE"

CHILD = """
import json, os, resource, sys, tempfile, time
import sqlalchemy as sa
import qflow as qf

@qf.step
def items(n: int) -> list[int]:
    return list(range(n))

@qf.step
def plus_one(x: int) -> int:
    return x + 1

@qf.step
def total(xs: list[int]) -> int:
    return sum(xs)

@qf.workflow
def fan_out(n: int = 10):
    return total(plus_one.map(items(n)))

@qf.workflow
def empty():
    return plus_one(0)

if __name__ == "__main__":  # Ray workers import this file for the steps
    executor, n, address, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    folder = tempfile.mkdtemp(prefix="qflow-map-scale-")
    options = {"workers": 2} if executor == "parallel" else {}
    use_cache = mode != "off"
    if executor == "ray":
        import ray
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        qf.run(fan_out, {"n": 20}, project_dir=folder, executor="ray", use_cache=False)  # warm
    else:
        qf.run(empty, {}, project_dir=folder)
    if mode == "hits":
        qf.run(fan_out, {"n": n}, project_dir=folder, executor=executor, **options)
    commits = []
    sa.event.listen(sa.engine.Engine, "commit", lambda conn: commits.append(1))
    usage = lambda: sum(getattr(resource.getrusage(who), f) for who in
                        (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                        for f in ("ru_utime", "ru_stime"))
    cpu, wall = usage(), time.perf_counter()
    run = qf.run(fan_out, {"n": n}, project_dir=folder, executor=executor, use_cache=use_cache,
                 **options)
    wall, cpu = time.perf_counter() - wall, usage() - cpu
    assert run.status == "succeeded" and run.step("total").load() == n * (n + 1) // 2
    print("RESULT " + json.dumps({"wall": wall, "cpu": cpu, "commits": len(commits)}))
"""


def measure(
    child: Path, source: Path, executor: str, items: int, address: str, mode: str
) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(source), "QFLOW_LOG_LEVEL": "WARNING"}
    env.pop("QFLOW_STORE", None)
    done = subprocess.run(
        [sys.executable, str(child), executor, str(items), address, mode],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{executor} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def run(args: argparse.Namespace) -> None:
    executors = ["local", "parallel", *(["ray"] if args.ray else [])]
    sources = {"this": ROOT / "src"}
    if args.baseline:
        sources = {"baseline": Path(args.baseline).resolve(), **sources}
    address = f"127.0.0.1:{PORT}"
    ray_bin = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="qfms-")
    child = Path(temp) / "map_scale_child.py"  # a file: Ray workers import the workflow from it
    child.write_text(CHILD)
    if args.ray:
        subprocess.run(
            [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
             str(PORT), "--num-cpus", "2", "--include-dashboard", "false",
             "--disable-usage-stats", "--temp-dir", f"{temp}/ray"],
            check=True, timeout=180, capture_output=True,
        )  # fmt: skip
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    loads = []
    modes = args.modes.split(",")
    try:
        for _ in range(args.repeat):
            for mode in modes:
                for executor in executors:
                    for label, source in sources.items():
                        if executor == "ray" and label == "baseline":
                            continue  # the cluster's workers run the installed QFlow
                        loads.append(os.getloadavg()[0])
                        found = measure(child, source, executor, args.items, address, mode)
                        results.setdefault((label, executor, mode), []).append(found)
    finally:
        if args.ray:
            subprocess.run([ray_bin, "stop", "--force"], timeout=60, capture_output=True,
                           check=False)  # fmt: skip
        shutil.rmtree(temp, ignore_errors=True)
    load = f"{min(loads):.1f}-{max(loads):.1f}"
    print(f"{args.items} mapped trivial items, whole run, repeat={args.repeat}, "
          f"load average (1 min) {load}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'code':9} {'executor':9} {'cache':6} {'wall s':>7} {'min':>6} {'cpu s':>7} "
          f"{'ms/item':>8} {'commits':>8}")  # fmt: skip
    medians: dict[tuple[str, str, str], float] = {}
    for (label, executor, mode), found in results.items():
        walls = [r["wall"] for r in found]
        wall = medians[(label, executor, mode)] = statistics.median(walls)
        cpu = statistics.median(r["cpu"] for r in found)
        commits = statistics.median(r["commits"] for r in found)
        print(f"{label:9} {executor:9} {mode:6} {wall:7.2f} {min(walls):6.2f} {cpu:7.2f} "
              f"{1000 * wall / args.items:8.3f} {commits:8.0f}")  # fmt: skip
    if args.ray:
        for mode in modes:
            ray, local = medians[("this", "ray", mode)], medians[("this", "local", mode)]
            print(f"cache {mode}: Ray per item (ray - local) "
                  f"{1000 * (ray - local) / args.items:.3f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ray", action="store_true")
    parser.add_argument("--modes", default="off,on,hits", help="cache modes: off, on, hits")
    parser.add_argument("--baseline", help="the src folder of an older QFlow to compare")
    args = parser.parse_args()
    if args.ray and os.environ.get(INSIDE) != "1":
        env = {**os.environ, INSIDE: "1", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
        script = 'ip link set lo up && exec "$0" "$@"'
        command = ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", script,
                   sys.executable, *sys.argv]  # fmt: skip
        sys.exit(subprocess.run(command, env=env, check=False).returncode)
    run(args)


if __name__ == "__main__":
    main()
