"""Ray scenarios on a real two-node cluster; test_ray.py runs this script inside a
loopback-only network namespace (``unshare -n -p -f --mount-proc``), so nothing Ray opens is
reachable from outside this machine, and every process it starts ends with the namespace.

Usage: python ray_scenario.py WORKDIR PORT [NODE_IP]. Both nodes register NODE_IP (default
127.0.0.1); test_ray.py gives a non-loopback address it adds to ``lo`` in the namespace, so the
cluster looks like a single machine that registered its own non-loopback address, and the
project's local artifact folder must be accepted. Token authentication is whatever the
environment says (test_ray.py turns it on with ``RAY_AUTH_MODE=token`` and a token).
Prints one line ``REPORT <json>`` at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

import qflow as qf
from qflow.errors import StepFailedError
from tests.fixtures import ray_workflows as rw

RAY = str(Path(sys.executable).with_name("ray"))
NODE = re.compile(r"node=(\w+)")


def start_cluster(work: Path, port: int, ip: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """A head node, then a second node in its own session (so it can be killed alone)."""
    subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", ip, "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(work / "ray")],
        check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = (work / "worker-node.log").open("wb")
    worker = subprocess.Popen(
        [RAY, "start", "--address", f"{ip}:{port}", "--node-ip-address", ip,
         "--num-cpus", "2", "--disable-usage-stats", "--block"],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    ray.init(address=f"{ip}:{port}", log_to_driver=False, configure_logging=False)
    deadline = time.monotonic() + 90
    while sum(n["Alive"] for n in ray.nodes()) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the second Ray node did not join within 90 s")
        time.sleep(0.5)
    ray.shutdown()
    return worker


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (the second node's raylet and its workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def outputs(run: Any) -> dict[str, dict[str, str]]:
    return {s.name: {k: r.key for k, r in s.outputs.items()} for s in run.steps}


def project(work: Path, name: str) -> Path:
    folder = work / name
    folder.mkdir()
    return folder


def logged(run: Any) -> dict[str, list[float]]:
    """Every value of the fan-out's metrics, sorted: items finish in any order on Ray."""
    return {key: sorted(m.value for m in run.metric_history(key)) for key in ("x", "sum")}


def fan_out(work: Path, address: str) -> dict[str, Any]:
    config = {"n": 12, "pause": 0.5}
    local = qf.run(rw.fan_out, config, project_dir=project(work, "local"))
    remote = qf.run(
        rw.fan_out,
        config,
        project_dir=project(work, "remote"),
        executor="ray",
        executor_options={"address": address},
    )
    items = [s for s in remote.steps if s.name.startswith("1_square[")]
    trivial = qf.run(rw.trivial_fan, {"n": 200}, project_dir=project(work, "batched"),
                     executor="ray", executor_options={"address": address})  # fmt: skip
    answers = trivial.step("1_task_of").load()
    return {
        "batched": {
            "status": trivial.status,
            "items": [int(a.split(":")[0]) for a in answers],
            "tasks": len({a.split(":")[1] for a in answers}),
        },
        "status": remote.status,
        "local": outputs(local),
        "ray": outputs(remote),
        "executor": remote.meta.get("executor"),
        "nodes": sorted({m for s in items for m in NODE.findall(s.stdout)}),
        "metrics": logged(remote),
        "local_metrics": logged(local),
        "describe": remote.step("3_describe").load(),
    }


def command_line(work: Path, address: str) -> dict[str, Any]:
    """qflow run with the executor=ray config group, and with --executor ray --address."""
    folder = project(work, "cli")
    (folder / "conf" / "executor").mkdir(parents=True)
    (folder / "conf" / "fan_out.yaml").write_text(
        "defaults:\n  - executor: local\n  - _self_\nn: 6\npause: 0.0\n"
    )
    (folder / "conf" / "executor" / "local.yaml").write_text("name: local\n")
    (folder / "conf" / "executor" / "ray.yaml").write_text(f"name: ray\naddress: {address}\n")
    qflow = str(Path(sys.executable).with_name("qflow"))
    ref = "tests.fixtures.ray_workflows:fan_out"
    report = {}
    for label, args in (
        ("group", ["executor=ray"]),
        ("flags", ["n=7", "--no-cache", "--executor", "ray", "--address", address]),
    ):
        done = subprocess.run(
            [qflow, "run", ref, *args, "-C", str(folder)],
            capture_output=True, text=True, timeout=180, check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        found = re.search(r"Run (\w+) succeeded", done.stdout)
        if done.returncode != 0 or found is None:
            report[label] = {"error": done.stdout[-2000:] + done.stderr[-3000:]}
            continue
        run = qf.Client(folder).run(found.group(1))
        report[label] = {
            "executor": run.meta.get("executor"),
            "total": run.step("2_add_up").load(),
            "nodes": sorted({m for s in run.steps for m in NODE.findall(s.stdout or "")}),
        }
    return report


def driver_output(work: Path, address: str) -> dict[str, Any]:
    """qflow run on Ray in a terminal (a pty): the lines its steps print and log, as the
    driver's terminal shows them."""
    folder = project(work, "echo")
    qflow = str(Path(sys.executable).with_name("qflow"))
    command = [qflow, "run", "tests.fixtures.ray_chatty:chatty", "--no-cache",
               "--executor", "ray", "--address", address, "-C", str(folder)]  # fmt: skip
    main, child = pty.openpty()
    process = subprocess.Popen(
        command, stdin=child, stdout=child, stderr=child, env={**os.environ, "NO_COLOR": "1"}
    )
    os.close(child)
    shown = bytearray()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not data:
            break
        shown += data
    os.close(main)
    process.wait(30)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return {
        "code": process.returncode,
        "lines": [line.strip() for line in lines if re.search(r"printed|logged|spoke", line)],
    }


def policies(work: Path, address: str) -> dict[str, Any]:
    folder = project(work, "policies")
    started = time.monotonic()
    try:
        qf.run(rw.policies, {}, project_dir=folder, executor="ray",
               executor_options={"address": address})  # fmt: skip
        return {"raised": False}
    except StepFailedError as exc:
        run = qf.Client(folder).run(exc.run_id)
    return {
        "raised": True,
        "seconds": time.monotonic() - started,
        "sleepy": [run.step("0_sleepy").status, run.step("0_sleepy").error],
        "stubborn": [run.step("4_stubborn").status, run.step("4_stubborn").error],
        "failures": run.step("3_count_failures").load(),
        "broken": run.step("2_broken").status,
    }


def kill_worker_node(work: Path, address: str, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    folder = project(work, "kill")

    marks = work / "marks"
    marks.mkdir()
    killed: list[int] = []

    def kill_when_busy() -> None:
        """Kill the second node (raylet and workers) once one of its workers runs a step."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            family = descendants(worker.pid)
            for mark in marks.iterdir():
                if int(mark.name) in family:
                    time.sleep(0.5)
                    for pid in [worker.pid, *family]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    killed.append(int(mark.name))
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    report: dict[str, Any] = {}
    try:
        config = {"n": 8, "pause": 3.0, "marks": str(marks)}
        run = qf.run(rw.slow_fan, config, project_dir=folder, executor="ray",
                     executor_options={"address": address})  # fmt: skip
    except StepFailedError as exc:
        report["first_error"] = str(exc).splitlines()[0]
        killer.join(30)
        from qflow.runtime.launch import LaunchRequest, launch

        new_id = launch(LaunchRequest(None, project_dir=folder, executor="ray",
                                      resume_from=exc.run_id,
                                      executor_options={"address": address}))  # fmt: skip
        run = qf.Client(folder).run(new_id)
        report["resumed"] = True
    killer.join(30)
    items = [s for s in run.steps if s.name.startswith("1_slow_square[")]
    report.update(
        killed=bool(killed),
        status=run.status,
        total=run.step("2_add_up").load(),
        attempts=[s.attempts for s in items],
        errors=[s.error for s in items if s.error],
    )
    return report


def live_metrics(work: Path, address: str) -> dict[str, Any]:
    """How long after ``qf.log_metric`` in a Ray task each point is readable in the store,
    read here while the run goes on in a thread."""
    folder = project(work, "live")
    marks = work / "live-marks"
    marks.mkdir()
    config = {"epochs": 3, "marks": str(marks)}

    def train() -> None:
        qf.run(rw.live_metrics, config, project_dir=folder, executor="ray",
               executor_options={"address": address})  # fmt: skip

    runner = threading.Thread(target=train)
    runner.start()
    latency: dict[int, float] = {}
    printed_while_running = False
    deadline = time.monotonic() + 90
    while (
        runner.is_alive()
        and (len(latency) < 3 or not printed_while_running)
        and time.monotonic() < deadline
    ):
        runs = qf.Client(folder).runs() if (folder / ".qflow" / "qflow.db").exists() else []
        for point in runs[0].metric_history("loss") if runs else []:
            mark = marks / f"logged-{int(point.step)}"
            if int(point.step) not in latency and mark.exists():
                latency[int(point.step)] = time.time() - float(mark.read_text())
        printed_while_running = printed_while_running or any(
            s.record.status == "running" and "epoch 0 logged" in (s.record.stdout or "")
            for s in (runs[0].steps if runs else [])
        )
        time.sleep(0.02)
    running_when_seen = runner.is_alive()
    runner.join(120)
    run = qf.Client(folder).runs()[0]
    return {
        "latency": [latency.get(epoch) for epoch in range(3)],
        "running_when_seen": running_when_seen,
        "printed_while_running": printed_while_running,
        "status": run.status,
        "stored": sorted(int(m.step) for m in run.metric_history("loss")),
    }


def file_reads(work: Path, address: str) -> dict[str, Any]:
    """A Ray task's file reads are recorded and make the cache miss when the file changes."""
    folder = project(work, "reads")
    data = work / "reads-data"
    data.mkdir()
    (data / "table.csv").write_text("a\nb\n")
    config = {"folder": str(data)}

    def run() -> Any:
        return qf.run(rw.reads_a_file, config, project_dir=folder, executor="ray",
                      executor_options={"address": address})  # fmt: skip

    first, again = run(), run()
    (data / "table.csv").write_text("a\nb\nc\n")
    changed = run()
    files = qf.Client(folder).metadata.data_files(first.id)
    return {
        "recorded": sorted(f.name for f in files),
        "statuses": [r.step("0_read_table").status for r in (first, again, changed)],
        "values": [r.step("0_read_table").load() for r in (first, changed)],
        "reason": changed.step("0_read_table").reason,
    }


def private_postgres(work: Path) -> tuple[str, Callable[[], None]] | None:
    """A throwaway PostgreSQL server inside the namespace (the host's is not reachable from
    here): initdb as user postgres, trust auth, 127.0.0.1:5433. None without the binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found or os.geteuid() != 0:
        return None
    bin_dir, data, sockets = found[-1].parent, work / "pgdata", work / "pgsock"
    for folder in (data, sockets):
        folder.mkdir()
        shutil.chown(folder, "postgres", "postgres")

    def as_postgres(*args: str) -> None:
        # No pipes: the server inherits them and would keep run() waiting.
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "root")
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                "-l", str(sockets / "server.log"), "-o",
                f"-h 127.0.0.1 -p 5433 -k {sockets}", "start")  # fmt: skip

    def stop() -> None:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")

    return "postgresql://root@127.0.0.1:5433/postgres", stop


def postgres_metadata(work: Path, address: str, expected: dict[str, Any]) -> dict[str, Any]:
    server = private_postgres(work)
    if server is None:
        return {"skipped": "no PostgreSQL binaries"}
    url, stop = server
    os.environ["QFLOW_STORE"] = url
    try:
        folder = project(work, "pg")
        run = qf.run(rw.fan_out, {"n": 12, "pause": 0.0}, project_dir=folder, executor="ray",
                     executor_options={"address": address})  # fmt: skip
        again = qf.Client(folder).run(run.id)
        return {
            "store": url,
            "status": again.status,
            "steps": len(again.steps),
            "same_outputs": outputs(again) == expected,
            "sqlite_file": (folder / ".qflow" / "qflow.db").exists(),
        }
    finally:
        del os.environ["QFLOW_STORE"]
        stop()


def auth_check(address: str) -> dict[str, Any]:
    """What a driver with a wrong token gets: refused, not connected."""
    env = {**os.environ, "RAY_AUTH_TOKEN": "0" * 64}
    probe = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
             "print('CONNECTED', len(ray.nodes()))")  # fmt: skip
    try:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"mode": os.environ.get("RAY_AUTH_MODE"), "connected": False, "timed_out": True}
    return {
        "mode": os.environ.get("RAY_AUTH_MODE"),
        "connected": "CONNECTED" in done.stdout,
        "error": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
    }


def main() -> None:
    work, port = Path(sys.argv[1]), int(sys.argv[2])
    ip = sys.argv[3] if len(sys.argv) > 3 and not sys.argv[3].startswith("kill") else "127.0.0.1"
    address = f"{ip}:{port}"
    worker = start_cluster(work, port, ip)
    report: dict[str, Any] = {"auth": auth_check(address), "node_ips": sorted({ip})}
    try:
        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("fan_out", lambda: fan_out(work, address)),
            ("policies", lambda: policies(work, address)),
            ("cli", lambda: command_line(work, address)),
            ("echo", lambda: driver_output(work, address)),
            ("live", lambda: live_metrics(work, address)),
            ("reads", lambda: file_reads(work, address)),
            ("postgres", lambda: postgres_metadata(work, address, report["fan_out"]["local"])),
        ]
        if "kill-only" in sys.argv:
            phases = []
        phases.append(("kill", lambda: kill_worker_node(work, address, worker)))
        for name, phase in phases:
            try:  # one failing phase is reported; the others still run
                report[name] = phase()
            except Exception:
                report[name] = {"error": traceback.format_exc()}
    finally:
        subprocess.run([RAY, "stop", "--force"], timeout=60, capture_output=True, check=False)
    print("REPORT " + json.dumps(report, default=str))


if __name__ == "__main__":
    main()
