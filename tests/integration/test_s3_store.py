"""The artifact store on S3, against a real S3 endpoint on loopback: moto's standalone server
(``moto_server``, the one s3fs tests itself against) in a subprocess.

Credentials and the endpoint reach the store only through the standard chain
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``). Faults are made
by a TCP proxy between the store and the server: answering 503 SlowDown, resetting
connections, or slowing uploads so a writer can be killed in the middle of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qflow.errors import ArtifactIntegrityError, ArtifactNotFoundError, StoreError
from qflow.store import MetadataStore
from qflow.store.artifacts import ArtifactRef, ArtifactStore
from qflow.store.doctor import check

pytestmark = pytest.mark.integration
boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
QFLOW = Path(sys.executable).parent / "qflow"
REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _moto_server(**env: str) -> Iterator[str]:
    """``moto_server`` on a free loopback port; yields its endpoint URL."""
    if not MOTO_SERVER.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, "moto_server exited"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with _moto_server() as endpoint:
        yield endpoint


@dataclass
class Bucket:
    name: str
    endpoint: str
    client: Any

    def url(self, prefix: str = "artifacts") -> str:
        return f"s3://{self.name}/{prefix}"

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))


def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    """The standard chain only: keys and endpoint in the environment, no config files."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "FSSPEC_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "qflow-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "qflow-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)


@pytest.fixture
def bucket(moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Bucket:
    _aws_env(monkeypatch, tmp_path, moto)
    name = f"qflow-{os.urandom(4).hex()}"
    client = boto3.client("s3", endpoint_url=moto)
    client.create_bucket(Bucket=name)
    return Bucket(name, moto, client)


class FaultyProxy:
    """A TCP proxy on loopback in front of ``target``.

    The first ``fail`` connections fail (``mode`` "503": an S3 SlowDown answer; "reset": a TCP
    reset), later ones are piped through; uploads are held to ``rate`` bytes/s overall."""

    def __init__(self, target: str, *, fail: int = 0, mode: str = "503", rate: int = 0) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.fail = fail
        self.mode = mode
        self.rate = rate
        self.injected = 0
        self.sent_up = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="faulty-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                failing = self.fail > 0
                if failing:
                    self.fail -= 1
                    self.injected += 1
            if failing:
                self._fail(client)
                continue
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            for source, sink, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pipe, args=(source, sink, up), daemon=True, name="proxy-pipe"
                ).start()

    def _fail(self, client: socket.socket) -> None:
        with client:
            if self.mode == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                return
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            client.sendall(
                b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )

    def _pipe(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while chunk := source.recv(256 * 1024):
                if up and self.rate:
                    with self._lock:
                        time.sleep(len(chunk) / self.rate)
                        self.sent_up += len(chunk)
                elif up:
                    self.sent_up += len(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxies() -> Iterator[list[FaultyProxy]]:
    made: list[FaultyProxy] = []
    yield made
    for proxy in made:
        proxy.close()


def _object_key(store: ArtifactStore, key: str) -> str:
    return f"artifacts/{key[:2]}/{key[2:4]}/{key}"


def test_values_round_trip_under_their_content_address(bucket: Bucket, tmp_path: Path) -> None:
    store = ArtifactStore(bucket.url())
    array = np.arange(1000.0).reshape(10, 100)
    ref = store.put(array)
    assert bucket.keys() == [_object_key(store, ref.key)]
    assert store.exists(ref.key) and store.local_path(ref.key) is None
    np.testing.assert_array_equal(store.get(ref), array)  # type: ignore[arg-type]
    assert store.put(array) == ref and len(bucket.keys()) == 1  # stored once

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    loaded = store.get(store.put_path(folder))
    assert isinstance(loaded, Path) and (loaded / "sub" / "a.txt").read_text() == "a"

    raw = bucket.client.get_object(Bucket=bucket.name, Key=_object_key(store, ref.key))
    assert hashlib.sha256(raw["Body"].read()).hexdigest() == ref.key


def test_a_big_blob_goes_up_in_parts(bucket: Bucket) -> None:
    store = ArtifactStore(bucket.url())
    data = np.random.default_rng(3).bytes(20 * MiB)
    ref = store.put_bytes(data)
    head = bucket.client.head_object(Bucket=bucket.name, Key=_object_key(store, ref.key))
    assert head["ContentLength"] == 20 * MiB
    # A multipart upload's ETag is "<md5 of the parts' md5s>-<number of parts>": 8 MiB parts.
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert store.get(ref) == data
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def test_a_writer_killed_mid_upload_leaves_nothing_under_the_content_address(
    bucket: Bucket, proxies: list[FaultyProxy], tmp_path: Path
) -> None:
    slow = FaultyProxy(bucket.endpoint, rate=8 * MiB)
    proxies.append(slow)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(np.random.default_rng(5).bytes(40 * MiB))
    key = hashlib.sha256(blob.read_bytes()).hexdigest()
    code = (
        "import sys; from qflow.store.artifacts import ArtifactStore; "
        "ArtifactStore(sys.argv[1]).put_path(sys.argv[2])"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code, bucket.url(), str(blob)],
        env={**os.environ, "AWS_ENDPOINT_URL_S3": slow.endpoint},
    )
    try:
        while slow.sent_up < 12 * MiB:  # a third of the upload
            assert writer.poll() is None, "the writer ended before it was killed"
            time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL

    uploads = bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [f"artifacts/{key[:2]}/{key[2:4]}/{key}"]
    assert bucket.keys() == []  # the part uploaded so far is not an object
    store = ArtifactStore(bucket.url())
    metadata = MetadataStore(f"sqlite:///{tmp_path / 'qflow.db'}")
    # (moto dates every upload 2010-11-10, so the age filter is not exercised here)
    (problem,) = check(metadata, store, upload_age=0)[0]
    assert problem.kind == "upload" and problem.name == uploads[0]["Key"]
    metadata.dispose()
    assert not store.exists(key)
    ref = ArtifactRef(key, "file", 40 * MiB, "pathlib.Path", False)
    assert not store.intact(ref)
    with pytest.raises(ArtifactNotFoundError, match=rf"bucket '{bucket.name}'"):
        store.read_bytes(key)

    again = store.put_path(blob)  # the next publish writes it whole
    assert again.key == key and store.intact(again)
    assert hashlib.sha256(store.read_bytes(key)).hexdigest() == key


@pytest.mark.parametrize("mode", ["503", "reset"])
def test_transient_errors_are_retried(
    bucket: Bucket,
    proxies: list[FaultyProxy],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    flaky = FaultyProxy(bucket.endpoint, fail=3, mode=mode)
    proxies.append(flaky)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", flaky.endpoint)
    store = ArtifactStore(bucket.url())
    ref = store.put({"answer": 42, "mode": mode})
    assert flaky.injected == 3 and flaky.fail == 0
    assert store.get(ref) == {"answer": 42, "mode": mode}
    assert bucket.keys() == [_object_key(store, ref.key)]


def test_a_corrupt_object_is_refused_and_repaired_by_the_next_publish(bucket: Bucket) -> None:
    store = ArtifactStore(bucket.url())
    ref = store.put_bytes(b"x" * 1000)
    name = _object_key(store, ref.key)
    bucket.client.put_object(Bucket=bucket.name, Key=name, Body=b"y" * 1000)  # same size
    assert not store.intact(ref)
    with pytest.raises(ArtifactIntegrityError, match=r"hashes to .* not to its key"):
        store.get(ref)
    assert store.put_bytes(b"x" * 1000) == ref
    assert store.get(ref) == b"x" * 1000


def test_a_missing_bucket_is_named_with_the_key_and_the_cause(
    moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_env(monkeypatch, tmp_path, moto)
    store = ArtifactStore("s3://qflow-no-such-bucket/runs")
    with pytest.raises(StoreError) as info:
        store.put(np.arange(3), name="0_load")
    message = str(info.value)
    assert "Output '0_load' could not be written" in message
    assert "bucket 'qflow-no-such-bucket'" in message and "key 'runs/" in message
    assert "bucket does not exist" in message and "create the bucket" in message
    assert "ndarray" not in message  # the value is not blamed


@dataclass
class Guarded:
    """A moto server that checks credentials (IAM), a user's real keys, and a bucket."""

    endpoint: str
    key: str
    secret: str
    bucket: str = "qflow-guarded"


@pytest.fixture(scope="module")
def guarded() -> Iterator[Guarded]:
    # The first three requests (making the user, its policy and its keys) need no credentials;
    # every later one is checked.
    with _moto_server(INITIAL_NO_AUTH_ACTION_COUNT="3") as endpoint:
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="qflow")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="qflow", PolicyName="s3", PolicyDocument=json.dumps(policy))
        keys = iam.create_access_key(UserName="qflow")["AccessKey"]
        server = Guarded(endpoint, keys["AccessKeyId"], keys["SecretAccessKey"])
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=server.key,
            aws_secret_access_key=server.secret,
        ).create_bucket(Bucket=server.bucket)
        yield server


def test_credentials_come_from_the_environment(
    guarded: Guarded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_env(monkeypatch, tmp_path, guarded.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", guarded.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", guarded.secret)
    store = ArtifactStore(f"s3://{guarded.bucket}/env")
    ref = store.put({"from": "environment"})
    assert store.get(ref) == {"from": "environment"}


def test_credentials_and_endpoint_come_from_an_aws_profile(
    guarded: Guarded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_env(monkeypatch, tmp_path, guarded.endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name)
    config = tmp_path / "aws-config"
    config.write_text(f"[profile qflow]\nregion = us-east-1\nendpoint_url = {guarded.endpoint}\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[qflow]\naws_access_key_id = {guarded.key}\naws_secret_access_key = {guarded.secret}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "qflow")
    store = ArtifactStore(f"s3://{guarded.bucket}/profile")
    ref = store.put({"from": "profile"})
    assert pickle.loads(pickle.dumps(store)).get(ref) == {"from": "profile"}


def test_refused_credentials_are_named_with_the_bucket_key_and_cause(
    guarded: Guarded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_env(monkeypatch, tmp_path, guarded.endpoint)  # keys the server does not know
    store = ArtifactStore(f"s3://{guarded.bucket}/artifacts")
    with pytest.raises(StoreError) as info:
        store.put_bytes(b"secret")
    message = str(info.value)
    assert f"bucket '{guarded.bucket}'" in message and "key 'artifacts/" in message
    assert "PermissionError" in message and "AWS_ACCESS_KEY_ID" in message
    assert "Output 'bytes' could not be written" in message
    key = hashlib.sha256(b"secret").hexdigest()
    with pytest.raises(StoreError, match=r"cannot read .*bucket 'qflow-guarded'.*Permission"):
        store.get(ArtifactRef(key, "bytes", 6, "builtins.bytes", False))


def _put_in_child(store: ArtifactStore, queue: Any) -> None:
    ref = store.put(np.arange(7))
    queue.put((ref.key, ref.size))


def test_a_store_made_before_a_fork_works_in_the_child(bucket: Bucket) -> None:
    store = ArtifactStore(bucket.url())
    first = store.put({"before": "fork"})  # the parent's file system (and its event loop) exist
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_put_in_child, args=(store, queue))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    key, size = queue.get(timeout=10)
    np.testing.assert_array_equal(
        store.get(ArtifactRef(key, "npy", size, "numpy.ndarray", False)),  # type: ignore[arg-type]
        np.arange(7),
    )
    assert store.get(first) == {"before": "fork"}  # the parent's own still works


def _outputs(project: Path) -> tuple[dict[str, dict[str, tuple[str, int]]], set[str]]:
    """Each step's outputs as (key, size), and the keys of those kept as blobs (not inline)."""
    import qflow as qf

    (run,) = qf.Client(project).runs()
    assert run.status == "succeeded"
    outputs = {
        step.name: {name: (ref.key, ref.size) for name, ref in step.outputs.items()}
        for step in run.steps
    }
    blobs = {ref.key for step in run.steps for ref in step.outputs.values() if ref.inline is None}
    assert isinstance(run.step("4_evaluate").load(), dict)  # read back from that store
    return outputs, blobs


def test_the_example_gives_the_same_artifacts_on_s3_and_local_disk(
    bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    results = {}
    for label, executor, prefix in [
        ("local disk", "local", None),
        ("s3 local executor", "local", "local"),
        ("s3 parallel executor", "parallel", "parallel"),
    ]:
        project = tmp_path / label.replace(" ", "_")
        shutil.copytree(
            REPO / "examples" / "classification",
            project,
            ignore=shutil.ignore_patterns(".qflow", "__pycache__"),
        )
        if prefix:
            monkeypatch.setenv("QFLOW_ARTIFACTS", bucket.url(prefix))
        else:
            monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
        done = subprocess.run(
            [str(QFLOW), "run", "logistic_regression", "--project", str(project), "-e", executor],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs, blobs = _outputs(project)
        results[label] = outputs
        local_blobs = project / ".qflow" / "artifacts"
        on_disk = {p.name for p in local_blobs.rglob("*") if p.is_file()}
        if prefix:
            assert blobs, "every output was inline: the S3 store was not exercised"
            in_bucket = {k.rsplit("/", 1)[1] for k in bucket.keys(f"{prefix}/")}
            assert blobs <= in_bucket
            assert not on_disk & blobs
        else:
            assert blobs <= on_disk

    local = results["local disk"]
    assert sorted(local) == [
        "0_load",
        "1_split",
        "2_FitLogisticRegression",
        "3_predict",
        "4_evaluate",
    ]
    assert results["s3 local executor"] == local
    assert results["s3 parallel executor"] == local


# -- GCS, through gcsfs, against gcp-storage-emulator --------------------------------------
# Not Google's service: a Python emulator of its JSON API (uploads, resumable uploads, reads),
# behind the faulty proxy (two 503 answers first, which gcsfs retries).
# It checks no credentials, so refused credentials are tested on S3 only. gcsfs's experimental
# bucket-type probe speaks gRPC, which the emulator does not, so it is turned off for the test.

GCS_EMULATOR = Path(sys.executable).parent / "gcp-storage-emulator"
_GCS_SCRIPT = """
import json, multiprocessing, sys
import numpy as np
from qflow.errors import StoreError
from qflow.store.artifacts import ArtifactStore

url, options = sys.argv[1], {"token": "anon"}
store = ArtifactStore(url, storage_options=options)
ref = store.put(np.arange(12.0))
big = np.random.default_rng(11).bytes(20 << 20)
big_ref = store.put_bytes(big)

def child(queue):
    queue.put(store.put({"in": "child"}).key)

context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
process.join(120)
try:
    ArtifactStore("gs://qflow-no-such-bucket/x", storage_options=options).put_bytes(b"x")
    missing = ""
except StoreError as exc:
    missing = str(exc)
print(json.dumps({
    "where": store.backend.where(ref.key),
    "array": store.get(ref).tolist(),
    "big": store.get(big_ref) == big,
    "big_key": big_ref.key,
    "child_exit": process.exitcode,
    "child_key": queue.get(timeout=10) if process.exitcode == 0 else "",
    "missing": missing,
}))
"""


def test_gcs_store_through_gcsfs_against_an_emulator(
    tmp_path: Path, proxies: list[FaultyProxy]
) -> None:
    pytest.importorskip("gcsfs")
    if not GCS_EMULATOR.exists():
        pytest.skip("gcp-storage-emulator is not installed")
    port = _free_port()
    command = [str(GCS_EMULATOR), "start", "-H", "127.0.0.1", "--port", str(port), "-M", "-q"]
    emulator = subprocess.Popen(
        [*command, "--default-bucket", "qflow-gcs"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        flaky = FaultyProxy(f"http://127.0.0.1:{port}", fail=2, mode="503")  # retried by gcsfs
        proxies.append(flaky)
        env = {
            **os.environ,
            "STORAGE_EMULATOR_HOST": flaky.endpoint,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }
        done = subprocess.run(
            [sys.executable, "-c", _GCS_SCRIPT, "gs://qflow-gcs/artifacts"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    assert flaky.injected == 2 and flaky.fail == 0
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["where"].startswith("gs://qflow-gcs/artifacts/")
    assert "bucket 'qflow-gcs', key 'artifacts/" in result["where"]
    assert result["array"] == np.arange(12.0).tolist()
    assert result["big"] is True
    assert result["child_exit"] == 0 and len(result["child_key"]) == 64
    assert "bucket 'qflow-no-such-bucket'" in result["missing"]
    assert "FileNotFoundError" in result["missing"] and "create the bucket" in result["missing"]


def test_a_run_with_a_missing_bucket_fails_naming_the_bucket_not_the_value(
    moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws_env(monkeypatch, tmp_path, moto)
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.setenv("QFLOW_ARTIFACTS", "s3://qflow-missing-bucket/runs")
    project = tmp_path / "classification"
    shutil.copytree(
        REPO / "examples" / "classification",
        project,
        ignore=shutil.ignore_patterns(".qflow", "__pycache__"),
    )
    done = subprocess.run(
        [str(QFLOW), "run", "logistic_regression", "--project", str(project), "-e", "parallel"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert "bucket 'qflow-missing-bucket'" in output and "bucket does not exist" in output
    assert "cannot be stored" not in output and "fork-safe" not in output
    assert "Traceback" not in output
