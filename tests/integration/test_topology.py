"""The production topology end to end (issue 21): PostgreSQL + an S3 endpoint + a 2-node Ray
cluster with token auth + ``qflow server`` with a token, and two clients of that server.

Ray listens on every interface, so, as in test_ray.py, everything that talks to it runs in a
loopback-only network namespace (``unshare -n -p -f --mount-proc``): this file, run as a script
there, starts moto's S3 server, the cluster (ray_scenario.start_cluster) and the tracking
server, runs the clients as ``qflow`` processes and prints one ``REPORT <json>`` line. The
host's PostgreSQL is reached from inside through its unix socket (the namespace has no route
to the host's 127.0.0.1), on a fresh database this test creates and drops. The invariants on
the database are checked here, outside, over TCP; the bucket is listed inside (moto keeps it
in memory and ends with the namespace).

The workflow below is imported by module on every Ray node (PYTHONPATH is the repository).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qflow as qf
from tests.fixtures.namespace import require_namespace, run_scenario, scenario_env, scratch_folder

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.postgres]

PORT = 6381
NODE_IP = "192.0.2.10"
ITEMS = 1000
TOKEN = "topology-server-token-" + "0123456789abcdef"
WORKFLOW = "tests.integration.test_topology:topology"
BIN = Path(sys.executable).parent
MARK_EVERY = 25
"""Items whose x is a multiple of this leave a mark (their pid) and return a blob (> 16 KiB,
so it is written to the bucket by the Ray worker, not kept inline)."""


# --- the workflow (imported on the Ray nodes) -------------------------------------------------


@qf.step
def numbers(n: int) -> list[int]:
    return list(range(n))


@qf.step(retries=2)
def featurize(x: int, pause: float, marks: str) -> np.ndarray:
    """Every MARK_EVERY-th item leaves its pid in ``marks`` and runs ``pause`` seconds (so a
    few run at once and Ray spreads them over both nodes); the others are trivial."""
    if x % MARK_EVERY == 0:
        Path(marks, str(os.getpid())).touch()
        time.sleep(pause)
        return np.full(2100, float(x))
    return np.full(4, float(x))


@qf.step
def table(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    features = np.array([[row[0], row[0] % 7] for row in rows])
    return features, (features[:, 0] >= len(rows) / 2).astype(int)


@qf.step
def fit(data: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    features, labels = data
    return LogisticRegression(max_iter=1000).fit(features / len(features), labels)


@qf.workflow
def topology(n: int = ITEMS, pause: float = 2.0, marks: str = "") -> Any:
    return fit(table(featurize.map(numbers(n), pause=pause, marks=marks)))


# --- the scenario (run inside the namespace) --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    import httpx

    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)


def _qflow(args: list[str], env: dict[str, str], timeout: float = 240) -> tuple[int, str]:
    done = subprocess.run(
        [str(BIN / "qflow"), *args],
        env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _run_id(output: str) -> str:
    found = re.search(r"Run (\w{26})", output)
    assert found, output[-3000:]
    return found.group(1)


def scenario(work: Path, store_url: str) -> dict[str, Any]:
    import boto3
    import httpx

    from tests.integration.ray_scenario import descendants, start_cluster

    report: dict[str, Any] = {}
    cleanup: list[Any] = []
    try:
        s3_port = _free_port()
        moto = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        cleanup.append(moto.terminate)
        endpoint = f"http://127.0.0.1:{s3_port}"
        _wait_http(endpoint, moto, "moto_server")
        bucket = "qflow-topology"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=bucket)
        # The standard chain only; the Ray nodes started below inherit it.
        os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, QFLOW_ARTIFACTS=f"s3://{bucket}/artifacts")

        def stop_ray() -> None:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], timeout=60, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

        cleanup.append(stop_ray)
        worker = start_cluster(work, PORT, NODE_IP)
        address = f"{NODE_IP}:{PORT}"

        web_port = _free_port()
        server = subprocess.Popen(
            [str(BIN / "qflow"), "server", "--store", store_url,
             "--artifacts", f"s3://{bucket}/artifacts", "--port", str(web_port)],
            env={**os.environ, "QFLOW_SERVER_TOKEN": TOKEN, "NO_COLOR": "1"},
            stdout=subprocess.DEVNULL, stderr=(work / "server.log").open("wb"),
        )  # fmt: skip
        cleanup.append(server.terminate)
        url = f"http://127.0.0.1:{web_port}"
        _wait_http(f"{url}/health", server, "qflow server")
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
        client_env = {**os.environ, "QFLOW_TRACKING_URI": url, "QFLOW_SERVER_TOKEN": TOKEN}

        marks = work / "marks"
        marks.mkdir()
        killed: list[int] = []
        run_over = threading.Event()

        def kill_when_busy() -> None:
            """kill -9 the second node (raylet and its workers) once one of them runs an item."""
            while not run_over.is_set():
                family = descendants(worker.pid)
                for mark in marks.iterdir():
                    if int(mark.name) in family:
                        for pid in [worker.pid, *family]:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, signal.SIGKILL)
                        killed.append(int(mark.name))
                        return
                time.sleep(0.05)

        config = [f"n={ITEMS}", f"marks={marks}"]
        ray_args = ["--executor", "ray", "--address", address]
        first, second = work / "client-1", work / "client-2"
        first.mkdir()
        second.mkdir()
        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        started = time.monotonic()
        try:
            code, output = _qflow(
                ["run", WORKFLOW, *config, *ray_args, "-C", str(first)], client_env
            )
        finally:
            run_over.set()
            killer.join(30)
        report["killed"] = bool(killed)
        report["marked_pids"] = len(list(marks.iterdir()))
        report["seconds_first"] = time.monotonic() - started
        report["first"] = {"code": code, "id": _run_id(output), "output": output[-3000:]}

        listed = api.get("/api/runs", params={"limit": 10})
        report["api_status"] = listed.status_code
        report["api_runs"] = [[r["id"], r["status"]] for r in listed.json()["runs"]]
        report["api_without_token"] = httpx.get(f"{url}/api/runs").status_code

        code, output = _qflow(["run", WORKFLOW, *config, *ray_args, "-C", str(second)], client_env)
        report["seconds_both"] = time.monotonic() - started
        report["second"] = {"code": code, "id": _run_id(output), "output": output[-3000:]}
        for label in ("first", "second"):
            run = api.get(f"/api/runs/{report[label]['id']}").json()
            report[label]["status"] = run["status"]
            report[label]["steps"] = {
                s["name"]: [
                    s["status"],
                    s["attempts"],
                    {k: o["key"] for k, o in s["outputs"].items()},
                ]
                for s in run["steps"]
            }

        code, output = _qflow(
            ["models", "register", report["first"]["id"], "fit", "--name", "topo", "--json",
             "-C", str(first)],
            client_env,
        )  # fmt: skip
        report["register"] = {"code": code, "output": output[-3000:]}
        serve_port = _free_port()
        serving = subprocess.Popen(
            [str(BIN / "qflow"), "models", "serve", "topo", "-p", str(serve_port),
             "-C", str(second)],
            env=client_env, stdout=subprocess.DEVNULL, stderr=(work / "serve.log").open("wb"),
        )  # fmt: skip
        cleanup.append(serving.terminate)
        try:
            _wait_http(f"http://127.0.0.1:{serve_port}/health", serving, "models serve")
            answer = httpx.post(f"http://127.0.0.1:{serve_port}/predict",
                                json={"inputs": [[0.0, 0.0], [0.99, 0.4]]}, timeout=30)  # fmt: skip
            report["predict"] = {"code": answer.status_code, "body": answer.json()}
        except RuntimeError as exc:
            report["predict"] = {"error": str(exc), "log": (work / "serve.log").read_text()[-3000:]}

        objects: dict[str, str] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                objects[item["Key"]] = hashlib.sha256(body).hexdigest()
        report["bucket"] = objects
    finally:
        for stop in reversed(cleanup):
            with contextlib.suppress(Exception):
                stop()
    return report


# --- the test (outside) -----------------------------------------------------------------------


@pytest.fixture
def topology_report(postgres_url: str) -> Iterator[tuple[dict[str, Any], str]]:
    require_namespace()
    if not (BIN / "moto_server").exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    socket_dir = Path("/var/run/postgresql")
    if not any(socket_dir.glob(".s.PGSQL.*")):
        pytest.skip("the PostgreSQL server has no unix socket in /var/run/postgresql")
    with scratch_folder("qftopo") as work:
        inside_url = f"{postgres_url.replace('@127.0.0.1:5432', '@')}?host={socket_dir}"
        env = scenario_env(work, drop=("AWS_",))
        env.update(AWS_ACCESS_KEY_ID="qflow-test-key", AWS_SECRET_ACCESS_KEY="qflow-test-secret",
                   AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(work / "no-aws-config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(work / "no-aws-credentials"))  # fmt: skip
        report = run_scenario(
            Path(__file__), str(work), inside_url, env=env, node_ip=NODE_IP, timeout=600
        )
        yield report, postgres_url


def test_topology_end_to_end(topology_report: tuple[dict[str, Any], str]) -> None:
    import psycopg

    report, database = topology_report
    assert "error" not in report, report["error"]
    first, second = report["first"], report["second"]

    # A worker node was killed mid-run, and the run still succeeded (retries on the head).
    assert report["killed"], f"no item ran on the second node ({report['marked_pids']} pids)"
    assert max(attempts for _, attempts, _ in first["steps"].values()) == 2
    assert first["code"] == 0, first["output"]
    assert first["status"] == "succeeded"

    # The run is visible through the server's API with the token, and not without it.
    assert report["api_status"] == 200
    assert [first["id"], "succeeded"] in report["api_runs"]
    assert report["api_without_token"] == 401

    # A second client (other process, other folder, same server) gets every step from cache.
    assert second["code"] == 0, second["output"]
    assert second["status"] == "succeeded"
    assert second["steps"].keys() == first["steps"].keys()
    assert len(first["steps"]) == ITEMS + 4  # numbers, the map, its 1,000 items, table, fit
    mapped = "1_featurize"
    for name, (status, _, outputs) in second["steps"].items():
        # The map's own row collects its items' outputs; every step that runs code is a hit.
        assert status == ("succeeded" if name == mapped else "cached"), name
        assert outputs == first["steps"][name][2], name

    # A model registered and served through the server answers a prediction.
    assert report["register"]["code"] == 0, report["register"]["output"]
    assert report["predict"].get("code") == 200, report["predict"]
    assert report["predict"]["body"]["predictions"] == [0, 1]
    assert report["predict"]["body"]["model"] == "topo"

    with psycopg.connect(database) as db:
        items = db.execute(
            "SELECT run_id, count(*), count(DISTINCT name) FROM step_runs"
            " WHERE name LIKE '%featurize[%' GROUP BY run_id ORDER BY run_id"
        ).fetchall()
        blobs = db.execute(
            "SELECT DISTINCT a.key FROM artifacts a JOIN step_io io ON io.artifact_key = a.key"
            " WHERE io.direction = 'out' AND a.data IS NULL"
        ).fetchall()
    # 1,000 item step runs per run, each recorded once (no duplicate from a retried batch).
    assert sorted(items) == sorted([(first["id"], ITEMS, ITEMS), (second["id"], ITEMS, ITEMS)])
    # Every output blob is in the bucket under its content address, with those bytes.
    keys = {key for (key,) in blobs}
    assert len(keys) >= ITEMS // MARK_EVERY
    bucket = report["bucket"]
    for key in keys:
        assert bucket.get(f"artifacts/{key[:2]}/{key[2:4]}/{key}") == key


def main() -> None:
    work, store_url = Path(sys.argv[1]), sys.argv[2]
    try:
        report = scenario(work, store_url)
    except Exception:
        import traceback

        report = {"error": traceback.format_exc()}
    print("REPORT " + json.dumps(report, default=str))


if __name__ == "__main__":
    main()
